"""A tract's commits read back whole from the log, on demand, with a bounded cache of decoded events.

The commit view keeps hashes, parents and positions; a commit's payload,
config and metadata are read from the log by its record's number when
`compile`, `get_commit`, `log` or a config read needs them. Every read is
checked by the log (checksum, decoding, tract, number) and found to hash to
the record hash the view remembered when it folded the commit (without one,
chained to the record before it instead), and to be that commit: a record
damaged since is a `CorruptLogError` naming the tract and its number, never a
wrong answer.

The cache keeps the most recently used decoded commits: at most
`CACHE_ENTRIES` of them, weighing at most `CACHE_BYTES` as records in the log
(a decoded commit takes two to three times its record). It always keeps the
newest one, however large. Commits of a batch not written yet are held apart
until the batch is written or forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from events import CommitCreated, CorruptLogError, Record
from events.opening import AnyLog
from tract.errors import storage_errors

CACHE_ENTRIES = 4096
CACHE_BYTES = 16 * 1024 * 1024


class EventCache:
    """Decoded commits of one tract of `log`, by their records' numbers (an `EventSource` for the view)."""

    def __init__(self, log: AnyLog, tract_id: str, *, entries: int = CACHE_ENTRIES, budget: int = CACHE_BYTES) -> None:
        self._log = log
        self._tract_id = tract_id
        self._entries = entries
        self._budget = budget
        self._cached: OrderedDict[int, tuple[CommitCreated, int]] = OrderedDict()
        self._bytes = 0
        self._staged: dict[int, CommitCreated] = {}

    # -- reading (the view's EventSource) --------------------------------------

    def cached(self, position: int) -> CommitCreated | None:
        """The commit of record `position` if it is cached (or staged); nothing is read."""
        hit = self._cached.get(position)
        if hit is not None:
            self._cached.move_to_end(position)
            return hit[0]
        return self._staged.get(position)

    def commit(self, position: int, record_hash: bytes | None, commit_hash: str) -> CommitCreated:
        """The commit of record `position`, from the cache or read from the log and checked."""
        event = self.cached(position)
        if event is not None:
            return event
        with storage_errors():
            record = self._log.read_record(self._tract_id, position, expected_hash=record_hash)
            event = self._commit_of(record, position, commit_hash)
        self._keep(position, event)
        return event

    def read(self, wanted: Sequence[tuple[int, bytes | None, str]]) -> Iterator[tuple[int, CommitCreated]]:
        """(position, commit) of written records (position, record hash, commit hash), read from the
        log and checked, in order, and not kept: a caller that reads many once owns what it gets."""
        commits = {position: commit for position, _, commit in wanted}
        known = {position: digest for position, digest, _ in wanted if digest is not None}
        with storage_errors():
            for record in self._log.read_known(self._tract_id, known) if known else ():
                yield record.number, self._commit_of(record, record.number, commits[record.number])
            for position in sorted(commits.keys() - known.keys()):  # folded without its hash: chained instead
                record = self._log.read_record(self._tract_id, position)
                yield position, self._commit_of(record, position, commits[position])

    def _commit_of(self, record: Record, position: int, commit_hash: str) -> CommitCreated:
        event: object = record.event
        if not isinstance(event, CommitCreated) or event.commit_hash != commit_hash:
            raise CorruptLogError(
                f"the record is not commit {commit_hash}, which the tract folded from it",
                position=position,
                kind="wrong record",
                tract_id=self._tract_id,
            )
        return event

    # -- what the writer tells it ----------------------------------------------

    def remember(self, position: int, event: CommitCreated, size: int | None = None) -> None:
        """A commit just written as record `position` (`size` bytes, if known): the next compile renders it."""
        if self._staged:
            self._staged.pop(position, None)
        self._keep(position, event, size)

    def stage(self, position: int, event: CommitCreated) -> None:
        """A commit of a batch not written yet, to be record `position` once it is."""
        self._staged[position] = event

    def forget_after(self, position: int) -> None:
        """Drop what is held of records past `position` (a batch that was not written)."""
        for number in [number for number in self._staged if number > position]:
            del self._staged[number]
        for number in [number for number in self._cached if number > position]:
            self._bytes -= self._cached.pop(number)[1]

    # -- the bound -------------------------------------------------------------

    def _keep(self, position: int, event: CommitCreated, size: int | None = None) -> None:
        if size is None:
            size = self._log.record_length(self._tract_id, position)
        cached = self._cached
        old = cached.pop(position, None)
        if old is not None:
            self._bytes -= old[1]
        cached[position] = (event, size)
        self._bytes += size
        while (len(cached) > self._entries or self._bytes > self._budget) and len(cached) > 1:
            _, (_, dropped) = cached.popitem(last=False)
            self._bytes -= dropped

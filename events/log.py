"""The append-only event log of one directory (or of memory): the file backend.

Every tract in the log is its own hash chain: its records are numbered 1, 2,
3, ... and each carries the hash of the tract's record before it, so the
hash of a tract's last record (its chain head) commits to its whole history.
`append` writes a batch of one tract as one unit: a reader or a reopen after
a crash sees all of it or none of it. Opening a log reads only what its
index (`events.tract_index`) does not cover yet; reading a tract reads that
tract's records, each checked (checksum, tract, number, chain) as it is read.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from events.errors import (
    ConcurrentWriteError,
    CorruptLogError,
    LogFormatError,
    ReadOnlyError,
    RecordTooLargeError,
    StorageError,
)
from events.framing import (
    FILE_HEADER,
    FIRST_FORMAT,
    FLAG_BATCH_END,
    FORMAT_VERSION,
    FRAME_HEADER,
    LOG_FILE,
    MAX_RECORD_BYTES,
    START,
    Checkpoint,
    Frame,
    FrameScanner,
    TornTail,
    check_file_header,
    file_header,
    record_hash,
    seal_frame,
)
from events.global_order import GlobalReader
from events.records import decode_owner
from events.roundtrip import encode_record
from events.storage import FileStorage, MemoryStorage, sync_directory
from events.tract_index import IndexMismatch, TractIndex
from events.tract_reads import TractReader
from events.types import AnyEvent, Record
from events.verify import Anchor, Progress, VerifyReport, verify_storage

SyncMode = Literal["always", "batch"]
BATCH_SYNC_INTERVAL = 0.05
"""With sync="batch", the longest a written record waits for its fsync (seconds)."""
SAVE_INDEX_AFTER = 4 * 1024 * 1024
"""A writer saves the index once this many bytes of log are indexed only in memory."""

_NO_HEADER = bytes(FRAME_HEADER.size)


class EventLog:
    """Append a tract's events, read a tract's records back checked, or every record in log order."""

    def __init__(
        self, storage: FileStorage | MemoryStorage, *, readonly: bool, sync: SyncMode, directory: Path | None
    ) -> None:
        self._storage = storage
        self._directory = directory
        self.readonly = readonly
        self.sync_mode: SyncMode = sync
        self.version = FORMAT_VERSION
        self.torn_tail: TornTail | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._frozen = False
        """A replay's prefix: it never takes in more records."""
        self._index = TractIndex(directory)
        self._heads: dict[str, bytes] = {}
        """The hash of each tract's last record, once known (needed to append after it)."""
        self._saved_end = FILE_HEADER.size
        self._sync_timer: threading.Timer | None = None
        self._unsynced = False
        self._failed: BaseException | None = None
        self._failure_unreported = False

    @classmethod
    def memory(cls) -> EventLog:
        log = cls(MemoryStorage(), readonly=False, sync="always", directory=None)
        log._storage.write(file_header(), 0)
        return log

    @classmethod
    def open(cls, directory: str | Path, *, readonly: bool = False, sync: SyncMode = "always") -> EventLog:
        """Open (a writer creates it if missing) the log in `directory`.

        Only the records its index does not cover yet are scanned (all of them the
        first time, or when the index is missing or disagrees with the log).
        """
        if sync not in ("always", "batch"):
            raise ValueError(f"sync must be 'always' or 'batch', not {sync!r}")
        directory = Path(directory)
        path = directory / LOG_FILE
        if readonly and not path.exists():
            raise LogFormatError(f"{directory}: no tract log here (missing {LOG_FILE})")
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        storage = FileStorage(path, readonly=readonly)
        log = cls(storage, readonly=readonly, sync=sync, directory=directory)
        try:
            if storage.size() == 0 and not readonly:
                storage.write(file_header(), 0)
                storage.sync()
                sync_directory(directory)
            log.version = check_file_header(storage.read(0, FILE_HEADER.size), str(path))
            if log.version == FIRST_FORMAT:
                if not readonly:
                    raise LogFormatError(
                        f"{directory}: this log has format {FIRST_FORMAT} (one hash chain for the whole log); "
                        "open it with readonly=True to read and verify it, or convert it with "
                        "`tract export` and `tract import` to write to it (its chain heads then change)"
                    )
                log._index = TractIndex(None)
            else:
                log._resume_index()
            log._catch_up()
            if log.torn_tail is not None and not readonly:
                log._cut_torn_tail(str(path))
            if not readonly and log._index.covered.end - log._saved_end > SAVE_INDEX_AFTER:
                log._save_index()
        except BaseException:
            storage.close()
            raise
        return log

    def _resume_index(self) -> None:
        """Start from the saved index if it names a record this log really holds; else from nothing."""
        assert self._directory is not None
        index = TractIndex.load(self._directory)
        if index is None:
            return
        reader = GlobalReader(self._storage, self.version, Checkpoint(0, 0, self._storage.size(), b""))
        owner = reader.owner_of(index.covered)
        if owner is not None and index.agrees_with(*owner):
            self._index, self._saved_end = index, index.covered.end

    # -- what the log holds ----------------------------------------------------

    def tract_ids(self) -> list[str]:
        """Every tract with a record, in the order each was created."""
        return list(self._index.tracts)

    def tract_length(self, tract_id: str) -> int:
        """How many records the tract has (0 for a tract never written)."""
        return self._index.count(tract_id)

    def tract_head(self, tract_id: str) -> bytes:
        """The hash of the tract's last record (its chain head), read back and checked if need be."""
        head = self._heads.get(tract_id)
        if head is None:
            head = self._heads[tract_id] = self._reader().head(tract_id)
        return head

    def read_tract(self, tract_id: str, first: int = 1, last: int | None = None) -> Iterator[Record]:
        """The tract's records numbered `first` to `last` (default: its last), each checked as it is read.

        A record that is not what the index says sends the reader to rebuild the index from
        the log once; a record that is damaged in the log raises `CorruptLogError` naming
        the tract and the record's number."""
        count = self._index.count(tract_id)
        return self._reader().read(tract_id, max(first, 1), count if last is None else min(last, count))

    def read_hashed(
        self,
        tract_id: str,
        first: int = 1,
        last: int | None = None,
        *,
        linked: bool = True,
        expected: Callable[[int], bytes | None] | None = None,
    ) -> Iterator[tuple[Record, bytes]]:
        """`read_tract`'s records, each with its chain hash (what a later `read_record` can expect).

        `linked=False` does not read back the record before `first` to chain it to;
        `expected(number)` gives the hash a record must have, when the caller remembers it from
        an earlier read (a record that has another is damaged: `CorruptLogError` naming the
        tract and its number, after one rebuild of the index from the log)."""
        count = self._index.count(tract_id)
        last = count if last is None else min(last, count)
        return self._reader().read_hashed(tract_id, max(first, 1), last, linked=linked, expected=expected)

    def read_known(self, tract_id: str, wanted: Mapping[int, bytes]) -> Iterator[Record]:
        """The tract's records numbered in `wanted`, in order, each checked and found to hash to the
        hash given for it (remembered from an earlier read); the records between them are not read
        for their own sake. One that differs, or is missing, is `CorruptLogError` naming the tract
        and its number (after one rebuild of the index from the log)."""
        return self._reader().read_known(tract_id, wanted)

    def read_record(self, tract_id: str, number: int, *, expected_hash: bytes | None = None) -> Record:
        """One record of the tract, checked (checksum, decoding, tract, number) and then either found
        to hash to `expected_hash` (remembered from an earlier read) or, without one, chained to the
        tract's record before it. A record that fails is `CorruptLogError` naming the tract and `number`."""
        if not 1 <= number <= self._index.count(tract_id):
            raise StorageError(f"tract {tract_id!r} has no record {number}")
        if expected_hash is not None:
            for record in self.read_known(tract_id, {number: expected_hash}):
                return record
        for record, _ in self.read_hashed(tract_id, number, number):
            return record
        raise StorageError(f"tract {tract_id!r} has no record {number}")  # the index lost it in a rebuild

    def record_length(self, tract_id: str, number: int) -> int:
        """Bytes the tract's record takes in the log, as the index says (unchecked): what a cache of
        decoded records weighs it by."""
        return self._index.locate(tract_id, number)[1]

    def _reader(self) -> TractReader:
        return TractReader(self._storage, self._index, self.version, self._end_checkpoint().end, self._rebuild_index)

    def global_reader(self) -> GlobalReader:
        """A reader of every record up to now, in log order, with a file handle of its own: it keeps
        working outside this log's lock, and after this log is closed, until it is closed."""
        return GlobalReader(self._storage.duplicate(), self.version, self._end_checkpoint())

    def prefix(self, tract_id: str, number: int) -> EventLog:
        """A read-only log that holds the tract's records up to `number` (sharing this one's file
        through a handle of its own): what a replay reads. Its log-order reader (what analytics
        and exports read) ends with that record too, so they show the log as it stood then
        (a record in the middle of a batch: up to the batch before it, as a reader saw it then).
        The whole-log position of that end is not known here: its checkpoint says 0."""
        view = EventLog(self._storage.duplicate(), readonly=True, sync=self.sync_mode, directory=None)
        view.version, view._frozen = self.version, True
        view._index = self._index.capped(tract_id, number)
        count = view._index.count(tract_id)
        if count == 0:
            view._index.covered = START
        else:
            offset, length = view._index.locate(tract_id, count)
            view._index.covered = Checkpoint(0, offset, offset + length, b"")
            view._index.covered = Checkpoint(0, offset, offset + length, view.tract_head(tract_id))
        return view

    def frames(self) -> Iterator[Frame]:
        """Every whole record as framed in the file (position in the log, batch flag, raw bytes), in order."""
        return iter(FrameScanner(self._storage.read, self._index.covered.end, FILE_HEADER.size, 1))

    def _end_checkpoint(self) -> Checkpoint:
        return self._index.covered

    @property
    def size(self) -> int:
        """Bytes of whole records in the log (the file's header included)."""
        return self._index.covered.end

    # -- catching up -----------------------------------------------------------

    def refresh(self) -> None:
        """Take in the records appended since the last look (by another process).

        A record that cannot be trusted raises `CorruptLogError`; the log then stays
        at the end of the last whole batch before it."""
        if not self._closed and not self._frozen:
            self._catch_up()

    def _catch_up(self) -> None:
        """Index the whole batches past what the index covers; if they do not follow on from it, rebuild."""
        try:
            self._index_from(self._index)
        except IndexMismatch:
            self._rebuild_index()

    def _rebuild_index(self) -> TractIndex:
        """Index the whole log from its first record; numbers that are not dense are damage."""
        index = TractIndex(self._directory if self.version != FIRST_FORMAT else None)
        try:
            self._index_from(index)
        except IndexMismatch as error:
            raise CorruptLogError(*error.args[:1], **error.args[1]) from None
        self._index, self._heads, self._saved_end = index, {}, FILE_HEADER.size
        return index

    def _index_from(self, index: TractIndex) -> None:
        """Index the whole batches after `index.covered`, one batch at a time (all of it or none)."""
        covered = index.covered
        scanner = FrameScanner(self._storage.read, self._storage.size(), covered.end, covered.position + 1)
        numbered = self.version != FIRST_FORMAT
        batch: list[tuple[str, int, Frame]] = []
        last: Frame | None = None
        try:
            for frame in scanner:
                tract_id, number = decode_owner(frame.body, frame.position, frame.offset)
                batch.append((tract_id, number, frame))
                if not frame.batch_end:
                    continue
                for tract_id, number, framed in batch:
                    if not numbered:
                        number = index.count(tract_id) + 1
                    try:
                        index.add(tract_id, number, framed.offset, framed.end - framed.offset)
                    except IndexMismatch as error:
                        where = {"position": framed.position, "kind": "position mismatch", "offset": framed.offset}
                        raise IndexMismatch(f"{error} (the tract's numbers are not dense)", where) from None
                    self._heads.pop(tract_id, None)
                batch.clear()
                last = frame
        finally:
            if last is not None:
                index.covered = Checkpoint(last.position, last.offset, last.end, record_hash(last.record, self.version))
        self.torn_tail = scanner.torn

    # -- writing -------------------------------------------------------------

    def append(self, tract_id: str, events: Sequence[AnyEvent], *, expected: int | None = None) -> int:
        """Write `events` (all of tract `tract_id`) as one atomic batch; returns the number of the last one.

        `expected` is how many records of the tract the caller knows of: if the tract has
        more, another writer got there first (`ConcurrentWriteError`, nothing written).
        Every record is checked to read back as itself before any is written
        (`InvalidEventError` otherwise, and nothing is written).
        """
        if self.readonly:
            raise ReadOnlyError("this log is open read-only")
        if self._closed:
            raise StorageError("this log is closed")
        if not events:
            return self._index.count(tract_id)
        with self._lock:
            self._raise_if_failed()
            prev = self.tract_head(tract_id)  # first: an index that does not hold is rebuilt here
            count = self._index.count(tract_id)
            if expected is not None and expected != count:
                raise ConcurrentWriteError(
                    f"tract {tract_id!r} has {count} records, not the {expected} this writer knew of: "
                    "another writer appended to it"
                )
            out = bytearray()
            frames: list[tuple[int, int]] = []
            last_index = len(events) - 1
            for index, event in enumerate(events):
                start = len(out)
                out += _NO_HEADER  # reserved; filled in once the record is encoded behind it
                out.append(FLAG_BATCH_END if index == last_index else 0)
                encode_record(Record(count + 1 + index, prev, event), out, index)
                # After the round-trip check: something that is not an event, or an event whose
                # tract_id is not a string, is an InvalidEventError naming the field at fault.
                if event.tract_id != tract_id:
                    raise ValueError(f"a batch holds the events of one tract ({tract_id!r}), not {event.tract_id!r}")
                length, prev = seal_frame(out, start)
                if length > MAX_RECORD_BYTES:
                    raise RecordTooLargeError(
                        f"{type(event).__name__} encodes to {length} bytes; a record holds at most "
                        f"{MAX_RECORD_BYTES} bytes"
                    )
                frames.append((start, len(out) - start))
            covered = self._index.covered
            self._storage.write(out, covered.end)
            for number, (start, length) in enumerate(frames, count + 1):
                self._index.add(tract_id, number, covered.end + start, length)
            self._heads[tract_id] = prev
            start, _ = frames[-1]
            self._index.covered = Checkpoint(
                covered.position + len(frames), covered.end + start, covered.end + len(out), prev
            )
            self._unsynced = True
            self._after_write()
            if not self._unsynced and self._index.covered.end - self._saved_end > SAVE_INDEX_AFTER:
                self._save_index_quietly()
            return count + len(frames)

    def _save_index(self) -> None:
        """Remember where every record is, so the next open reads only what comes after."""
        self._index.save()
        self._saved_end = self._index.covered.end

    def _save_index_quietly(self) -> None:
        """Save the index of a long-running writer (the log is durable up to it), so that a crash costs
        a scan of at most the last few MB. The batch is already acknowledged-to-be: an index that cannot
        be written now (a full disk) is a cache left stale, tried again later and at `close()`, which
        reports the failure."""
        try:
            self._save_index()
        except OSError:
            return

    def _after_write(self) -> None:
        if self.sync_mode == "always":
            self._sync()
        elif self._sync_timer is None:
            self._sync_timer = threading.Timer(BATCH_SYNC_INTERVAL, self._background_sync)
            self._sync_timer.daemon = True
            self._sync_timer.start()

    def _sync(self) -> None:
        """fdatasync what was appended. If it fails or is interrupted, the records are written but not
        known durable (and a retried fsync may "succeed" without writing them): writes are refused
        until the log is reopened."""
        try:
            self._storage.sync()
        except BaseException as error:
            self._failed = error
            raise
        self._unsynced = False

    def _background_sync(self) -> None:
        with self._lock:
            self._sync_timer = None
            if self._closed or self._failed is not None or not self._unsynced:
                return
            try:
                self._sync()
            except BaseException:  # noqa: BLE001 - kept, not lost in this thread: the next append, flush or close raises it
                self._failure_unreported = True

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            self._failure_unreported = False
            error = self._failed
            raise StorageError(
                f"an earlier write or sync failed ({str(error) or type(error).__name__}); reopen the log to continue"
            ) from error

    @property
    def failed(self) -> bool:
        """Did a sync fail (or was one interrupted)? Then nothing past the last good sync is known durable."""
        return self._failed is not None

    def flush(self) -> None:
        """Make every appended record durable now; raises if an earlier sync failed."""
        with self._lock:
            if self._closed or self.readonly:
                return
            self._raise_if_failed()
            if self._unsynced:
                self._sync()

    def _cut_torn_tail(self, where: str) -> None:
        torn = self.torn_tail
        assert torn is not None
        self._storage.truncate(torn.offset)
        self._storage.sync()
        warnings.warn(
            f"{where}: cut off a torn tail at byte {torn.offset} (from position {torn.position}): {torn.reason}",
            RuntimeWarning,
            stacklevel=3,
        )

    def verify(self, *, anchor: Anchor | None = None, progress: Progress | None = None) -> VerifyReport:
        """Check every record of the log as stored (see `events.verify`)."""
        return verify_storage(self._storage, anchor=anchor, progress=progress)

    def close(self) -> None:
        """Sync what is pending, save the index (once the log is durable up to it) and release the
        file (and the lock), also when that sync fails; a background sync failure nobody was told
        of yet is raised here."""
        with self._lock:
            if self._closed:
                return
            if self._sync_timer is not None:
                self._sync_timer.cancel()
                self._sync_timer = None
            try:
                if not self.readonly and self._failed is None:
                    if self._unsynced:
                        self._sync()
                    if self._directory is not None:
                        self._save_index()
            finally:
                self._storage.close()
                self._closed = True
            if self._failure_unreported:
                self._raise_if_failed()

    @property
    def closed(self) -> bool:
        return self._closed

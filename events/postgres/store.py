"""`PostgresLog`: the event log's storage interface over a PostgreSQL store.

The same API, semantics, record bytes and hashes as the file log (`events.log.EventLog`); what
differs is how writers coordinate. There is no store-wide lock: an append is one statement (so one
transaction, one round trip) that moves the tract's row in `tracts` from the length and head the
writer knew to the new ones and inserts the batch's records, only if that row moved. Writers of
different tracts touch different rows and never wait for each other; of two writers of one tract,
the second finds the length changed and is refused (`ConcurrentWriteError` naming the tract), and
the primary key (tract, number) would refuse a second record at one place anyway.

What a handle knows of a tract (its length and head) is read when first asked and kept until
`refresh()`, like the file log's index: a reader sees a fixed state between refreshes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from events.errors import ConcurrentWriteError, ReadOnlyError, RecordTooLargeError, StorageError
from events.framing import FLAG_BATCH_END, FORMAT_VERSION, GENESIS_HASH, MAX_RECORD_BYTES, Frame, body_hash
from events.postgres.audit import verify_store, verify_tracts
from events.postgres.global_reader import StoreReader, TractEnd
from events.postgres.reads import checked, damage, stored_rows
from events.postgres.schema import prepare, tables
from events.postgres.session import Session
from events.postgres.settings import StoreSettings, driver
from events.roundtrip import encode_record
from events.types import AnyEvent, Record
from events.verify import Anchor, Progress, VerifyReport

_MOVE_NEW = """
INSERT INTO {tracts} (tract_id, length, head) VALUES (%(tract)s, %(length)s, %(head)s)
ON CONFLICT (tract_id) DO NOTHING RETURNING 1"""
_MOVE_KNOWN = """
UPDATE {tracts} SET length = %(length)s, head = %(head)s
WHERE tract_id = %(tract)s AND length = %(expected)s AND head = %(prev)s RETURNING 1"""
_APPEND = """
WITH moved AS ({move})
INSERT INTO {records} (tract_id, number, batch_end, body)
SELECT %(tract)s, u.number, u.number = %(length)s, u.body
FROM unnest(%(numbers)s::bigint[], %(bodies)s::bytea[]) AS u(number, body)
WHERE EXISTS (SELECT FROM moved)"""
LENGTHS_KEPT = 100_000
"""Record sizes remembered from reads (what `record_length` answers without a query)."""


class PostgresLog:
    """Append a tract's events to a PostgreSQL store, read a tract's records back checked, or every record."""

    def __init__(
        self, session: Session, store_id: str, *, readonly: bool, only: Mapping[str, int] | None = None
    ) -> None:
        self._session = session
        self._settings = session.settings
        self._tracts_table, self._records_table = tables(self._settings.schema)
        self._store_id = store_id
        self.readonly = readonly
        self.sync_mode = "always"
        self.version = FORMAT_VERSION
        self.torn_tail = None
        self.failed = False
        """Never: a failed append was not committed, and the next call reconnects."""
        self._only = dict(only) if only is not None else None
        """A replay's prefix: just this tract, up to this many records."""
        self._lengths: dict[str, int] = dict(only or {})
        self._heads: dict[str, bytes] = {}
        self._sizes: dict[tuple[str, int], int] = {}
        self._written = 0
        self._closed = False

    @classmethod
    def open(cls, location: str, *, readonly: bool = False, sync: str = "always") -> PostgresLog:
        """Open the store at a postgresql:// URL (a writer creates its tables if missing).

        `sync` belongs to the file log: every append here is a committed transaction, so only
        "always" (the default) is taken."""
        if sync != "always":
            raise ValueError(
                f"sync={sync!r} belongs to the file log: every append to a PostgreSQL store is a committed "
                "transaction (sync='always')"
            )
        settings = StoreSettings.parse(location)
        session = Session(settings, readonly=readonly)
        try:
            with session.lock, session.failures():
                store_id = prepare(session.connection, settings, readonly=readonly)
        except BaseException:
            session.close()
            raise
        return cls(session, store_id, readonly=readonly)

    @property
    def where(self) -> str:
        """The server, database and schema (no credentials)."""
        return self._settings.where

    @property
    def cache_key(self) -> str:
        """A directory name for this store's local caches (the analytics database)."""
        return self._settings.cache_key

    # -- what the store holds ----------------------------------------------------

    def tract_ids(self) -> list[str]:
        """Every tract with a record, in the order each was created."""
        if self._only is not None:
            return [tract_id for tract_id, count in self._only.items() if count]
        return [row[0] for row in self._session.rows(f"SELECT tract_id FROM {self._tracts_table} ORDER BY created")]

    def tract_length(self, tract_id: str) -> int:
        """How many records the tract has (0 for a tract never written), as of the first look since `refresh()`."""
        count = self._lengths.get(tract_id)
        if count is None:
            rows = self._session.rows(f"SELECT length FROM {self._tracts_table} WHERE tract_id = %s", (tract_id,))
            count = self._lengths[tract_id] = int(rows[0][0]) if rows else 0
        return count

    def tract_head(self, tract_id: str) -> bytes:
        """The hash of the tract's last record (its chain head), read back and checked."""
        head = self._heads.get(tract_id)
        if head is None:
            count = self.tract_length(tract_id)
            head = self._heads[tract_id] = GENESIS_HASH if count == 0 else self._hash_of(tract_id, count)
        return head

    def _hash_of(self, tract_id: str, number: int) -> bytes:
        for row_number, body, _ in stored_rows(self._session, self._records_table, tract_id, number, number):
            return checked(tract_id, row_number, body, None)[1]
        raise AssertionError("unreachable: one record was asked for")

    def read_tract(self, tract_id: str, first: int = 1, last: int | None = None) -> Iterator[Record]:
        """The tract's records numbered `first` to `last` (default: its last), each checked as it is read."""
        for record, _ in self.read_hashed(tract_id, first, last):
            yield record

    def read_hashed(
        self,
        tract_id: str,
        first: int = 1,
        last: int | None = None,
        *,
        linked: bool = True,
        expected: Callable[[int], bytes | None] | None = None,
    ) -> Iterator[tuple[Record, bytes]]:
        """`read_tract`'s records with their chain hashes; see `EventLog.read_hashed`."""
        count = self.tract_length(tract_id)
        last = count if last is None else min(last, count)
        first = max(first, 1)
        return self._hashed(tract_id, first, last, linked, expected)

    def _hashed(
        self, tract_id: str, first: int, last: int, linked: bool, expected: Callable[[int], bytes | None] | None
    ) -> Iterator[tuple[Record, bytes]]:
        if first > last:
            return
        prev: bytes | None = GENESIS_HASH if first == 1 else self._hash_of(tract_id, first - 1) if linked else None
        for number, body, _ in stored_rows(self._session, self._records_table, tract_id, first, last):
            record, prev = checked(tract_id, number, body, prev)
            if expected is not None and (remembered := expected(number)) is not None and prev != remembered:
                raise damage(tract_id, number, "hash mismatch", "the record is not the one read before")
            self._remember_size(tract_id, number, len(body))
            yield record, prev

    def read_known(self, tract_id: str, wanted: Mapping[int, bytes]) -> Iterator[Record]:
        """The tract's records numbered in `wanted`, in order, each checked and found to hash as given."""
        numbers = sorted(wanted)
        rows = {
            int(number): bytes(body)
            for number, body in self._session.rows(
                f"SELECT number, body FROM {self._records_table} WHERE tract_id = %s AND number = ANY(%s)",
                (tract_id, numbers),
            )
        }
        for number in numbers:
            body = rows.get(number)
            if body is None:
                raise damage(
                    tract_id, number, "missing record", f"the store has no row for record {number} of the tract"
                )
            record, digest = checked(tract_id, number, body, None)
            if digest != wanted[number]:
                raise damage(tract_id, number, "hash mismatch", "the record is not the one read before")
            self._remember_size(tract_id, number, len(body))
            yield record

    def read_record(self, tract_id: str, number: int, *, expected_hash: bytes | None = None) -> Record:
        """One record of the tract, checked; see `EventLog.read_record`."""
        if not 1 <= number <= self.tract_length(tract_id):
            raise StorageError(f"tract {tract_id!r} has no record {number}")
        if expected_hash is not None:
            return next(iter(self.read_known(tract_id, {number: expected_hash})))
        return next(iter(self.read_hashed(tract_id, number, number)))[0]

    def record_length(self, tract_id: str, number: int) -> int:
        """Bytes the record's body takes: what a cache of decoded records weighs it by."""
        size = self._sizes.get((tract_id, number))
        if size is None:
            rows = self._session.rows(
                f"SELECT length(body) FROM {self._records_table} WHERE tract_id = %s AND number = %s",
                (tract_id, number),
            )
            size = int(rows[0][0]) if rows else 0
        return size

    def _remember_size(self, tract_id: str, number: int, size: int) -> None:
        if len(self._sizes) >= LENGTHS_KEPT:
            self._sizes.clear()
        self._sizes[(tract_id, number)] = size

    @property
    def size(self) -> int:
        """Bytes of records this handle has appended: what grows by exactly one append's records."""
        return self._written

    def global_reader(self) -> StoreReader:
        """A reader of every record up to now, tract by tract, with a connection of its own
        (see `events.postgres.global_reader` for why no event committed late is missed)."""
        if self._only is not None:
            ends = [TractEnd(t, count, self.tract_head(t)) for t, count in self._only.items() if count]
        else:
            rows = self._session.rows(f"SELECT tract_id, length, head FROM {self._tracts_table} ORDER BY created")
            ends = [TractEnd(tract_id, int(length), bytes(head)) for tract_id, length, head in rows]
        return StoreReader(self._settings, self._store_id, ends)

    def prefix(self, tract_id: str, number: int) -> PostgresLog:
        """A read-only log of the tract alone, up to record `number`, on a connection of its own: what a
        replay reads. Its global reader holds that tract alone too (there is no one order of commits
        across a store's tracts to cut the others at)."""
        count = min(number, self.tract_length(tract_id))
        view = PostgresLog(
            Session(self._settings, readonly=True), self._store_id, readonly=True, only={tract_id: count}
        )
        if count == self.tract_length(tract_id) and tract_id in self._heads:
            view._heads[tract_id] = self._heads[tract_id]
        return view

    def frames(self) -> Iterator[Frame]:
        """Every record as the file log would frame it (flags byte, then the body), tract by tract: what
        an export reads. Positions count records in that order; there are no byte offsets."""
        position = 0
        for tract_id in self.tract_ids():
            for _, body, batch_end in stored_rows(
                self._session, self._records_table, tract_id, 1, self.tract_length(tract_id)
            ):
                position += 1
                flags = bytes([FLAG_BATCH_END if batch_end else 0])
                yield Frame(position, 0, 0, memoryview(flags + body))

    # -- writing -------------------------------------------------------------

    def append(self, tract_id: str, events: Sequence[AnyEvent], *, expected: int | None = None) -> int:
        """Write `events` (all of tract `tract_id`) as one transaction; returns the number of the last one.

        `expected` is how many records of the tract the caller knows of: if the store holds another
        number, or another writer appends to the tract first, `ConcurrentWriteError` (nothing written)."""
        if self.readonly:
            raise ReadOnlyError("this log is open read-only")
        if self._closed:
            raise StorageError("this log is closed")
        if not events:
            return self.tract_length(tract_id)
        with self._session.lock:
            if expected is None or self.tract_length(tract_id) != expected:
                self._forget(tract_id)  # what this handle knew may be old: look again
            count = self.tract_length(tract_id)
            if expected is not None and expected != count:
                raise _conflict(tract_id, count, expected)
            prev = start = self.tract_head(tract_id)
            bodies: list[bytes] = []
            for index, event in enumerate(events):
                out = bytearray()
                encode_record(Record(count + 1 + index, prev, event), out, index)
                if event.tract_id != tract_id:
                    raise ValueError(f"a batch holds the events of one tract ({tract_id!r}), not {event.tract_id!r}")
                if len(out) + 1 > MAX_RECORD_BYTES:
                    raise RecordTooLargeError(
                        f"{type(event).__name__} encodes to {len(out) + 1} bytes; a record holds at most "
                        f"{MAX_RECORD_BYTES} bytes"
                    )
                body = bytes(out)
                prev = body_hash(body)
                bodies.append(body)
            length = count + len(bodies)
            move = (_MOVE_NEW if count == 0 else _MOVE_KNOWN).format(tracts=self._tracts_table)
            params = {
                "tract": tract_id, "length": length, "head": prev, "expected": count, "prev": start,
                "numbers": list(range(count + 1, length + 1)), "bodies": bodies,
            }  # fmt: skip
            try:
                written = self._session.execute(_APPEND.format(move=move, records=self._records_table), params)
            except driver().errors.LockNotAvailable:
                raise ConcurrentWriteError(
                    f"tract {tract_id!r} is being appended to by another writer (its row stayed locked)"
                ) from None
            except driver().errors.UniqueViolation:
                written = 0
            except BaseException:
                self._forget(tract_id)  # a lost connection: the append may or may not have committed
                raise
            if written != len(bodies):
                self._forget(tract_id)
                raise _conflict(tract_id, self.tract_length(tract_id), count)
            self._lengths[tract_id], self._heads[tract_id] = length, prev
            self._written += sum(len(body) + 1 for body in bodies)
            return length

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Appends made in the block commit together when it ends, or none of them (an import)."""
        if self.readonly:
            raise ReadOnlyError("this log is open read-only")
        try:
            with self._session.transaction():
                yield
        except BaseException:
            self._lengths.clear()
            self._heads.clear()
            raise

    def _forget(self, tract_id: str) -> None:
        self._lengths.pop(tract_id, None)
        self._heads.pop(tract_id, None)

    # -- the rest of the storage interface -------------------------------------

    def refresh(self) -> None:
        """Take in what other writers appended since the last look."""
        if not self._closed and self._only is None:
            self._lengths.clear()
            self._heads.clear()

    def flush(self) -> None:
        """Nothing to do: every acknowledged append is a committed transaction."""

    def verify(self, *, anchor: Anchor | None = None, progress: Progress | None = None) -> VerifyReport:
        """Check every tract of the store (see `events.postgres.audit`)."""
        return verify_store(self._session, anchor=anchor, progress=progress)

    def verify_tracts(self, tract_ids: list[str]) -> VerifyReport:
        """Walk these tracts as `verify` does, inside the transaction this handle is in (an import's)."""
        return verify_tracts(self._session, tract_ids)

    def close(self) -> None:
        self._closed = True
        self._session.close()

    @property
    def closed(self) -> bool:
        return self._closed


def _conflict(tract_id: str, count: int, expected: int) -> ConcurrentWriteError:
    return ConcurrentWriteError(
        f"tract {tract_id!r} has {count} records, not the {expected} this writer knew of: another writer appended to it"
    )

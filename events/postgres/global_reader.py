"""Every record of a store, tract by tract, from an opaque cursor on: how projections catch up.

The gap problem: rows numbered by one global sequence become visible in commit order, not in
sequence order, so a reader that resumes "after sequence N" skips a row that a slower transaction
committed later with a smaller number. Here there is no global sequence to resume from. The reader
takes the `tracts` table (each tract's length and chain head) in one statement, which sees a
snapshot of whole transactions; a tract's length and its records are written by the same
transaction, so every record up to each length is committed and visible. The cursor is each
tract's delivered count (with the hash of that record): the next reader delivers, per tract, the
records after its count up to its new length. A transaction that commits late shows up as a
longer tract in a later snapshot, and its records are delivered then: nothing is skipped, and a
tract's records always arrive in order, whatever order their transactions got their ids in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import msgspec

from events.framing import GENESIS_HASH
from events.postgres.reads import damage, hashed
from events.postgres.schema import tables
from events.postgres.session import Session
from events.postgres.settings import StoreSettings
from events.types import Record


class StoreCursor(msgspec.Struct, frozen=True, array_like=True):
    """How far a reader got: the store, and each tract's delivered count and that record's hash."""

    store_id: str
    tracts: list[tuple[str, int, bytes]]


_cursor_decoder = msgspec.msgpack.Decoder(StoreCursor)


@dataclass(frozen=True)
class StoreEnd:
    """Where a reader ends; `end` (its number of records) grows as the store does."""

    end: int


@dataclass(frozen=True)
class TractEnd:
    tract_id: str
    length: int
    head: bytes


class StoreReader:
    """A read-only handle on the store's records up to the tract lengths it was made with."""

    def __init__(self, settings: StoreSettings, store_id: str, tracts: list[TractEnd]) -> None:
        self._settings = settings
        self._store_id = store_id
        self._tracts = tracts
        self._session: Session | None = None
        """A connection of its own, made when reading starts: it reads outside the log's lock."""
        self.until = StoreEnd(sum(tract.length for tract in tracts))

    @property
    def cursor(self) -> bytes:
        return msgspec.msgpack.encode(
            StoreCursor(self._store_id, [(t.tract_id, t.length, t.head) for t in self._tracts])
        )

    def resume_point(self, cursor: bytes | None) -> Mapping[str, tuple[int, bytes]] | None:
        """Each tract's (count, hash) the cursor names, if reading can resume after it here: same store,
        no tract past this reader's end, and every named record in the store with that hash. Else None."""
        if cursor is None:
            return None
        try:
            decoded = _cursor_decoder.decode(cursor)
        except msgspec.DecodeError:
            return None
        lengths = {tract.tract_id: tract.length for tract in self._tracts}
        named = {tract_id: (count, digest) for tract_id, count, digest in decoded.tracts}
        if decoded.store_id != self._store_id or any(count > lengths.get(t, 0) for t, (count, _) in named.items()):
            return None
        if not named:
            return named
        _, records = tables(self._settings.schema)
        found = self._reader_session().rows(
            f"SELECT r.tract_id, sha256(r.body) FROM {records} r "
            "JOIN unnest(%s::text[], %s::bigint[]) AS c(tract_id, number) USING (tract_id, number)",
            (list(named), [count for count, _ in named.values()]),
        )
        hashes = {tract_id: bytes(digest) for tract_id, digest in found}
        return named if all(hashes.get(t) == digest for t, (_, digest) in named.items()) else None

    def read(self, after: Mapping[str, tuple[int, bytes]] | None = None) -> Iterator[Record]:
        """The records after `after` (from `resume_point`) up to this reader's end, tract by tract
        (in the order tracts were created), each checked and chained as it is read."""
        _, records = tables(self._settings.schema)
        session = self._reader_session()
        for tract in self._tracts:
            count, start = (after or {}).get(tract.tract_id, (0, GENESIS_HASH))
            last = start
            for record, last in hashed(session, records, tract.tract_id, count + 1, tract.length, start):  # noqa: B007 - read after the loop
                yield record
            if tract.length > count and last != tract.head:  # the cursor will name this head
                detail = "the tract's row names another chain head than its records"
                raise damage(tract.tract_id, tract.length, "head mismatch", detail)

    def _reader_session(self) -> Session:
        if self._session is None:
            self._session = Session(self._settings, readonly=True)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

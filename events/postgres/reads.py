"""A tract's records read back from the store, each checked as the file log checks its own.

The store's rows are believed for nothing but where to look: each body must decode, belong to the
tract, carry the number of its row (so no row was moved or swapped) and, read in order, name the hash
of the record before it. A row that is not there is a missing record. Every failure is a
`CorruptLogError` naming the tract and the record's number.
"""

from __future__ import annotations

from collections.abc import Iterator

from events.errors import CorruptLogError
from events.framing import body_hash
from events.postgres.session import Session
from events.records import decode_record
from events.types import Record

PAGE_ROWS = 500
"""Records fetched per statement: few round trips, bounded memory (a record is at most 64 MiB, most are small)."""


def damage(tract_id: str, number: int, kind: str, detail: str) -> CorruptLogError:
    return CorruptLogError(detail, position=number, kind=kind, tract_id=tract_id)


def checked(tract_id: str, number: int, body: bytes, prev: bytes | None) -> tuple[Record, bytes]:
    """The record stored as row (tract_id, number), checked; `prev` None skips the chain check."""
    record = decode_record(body, number, None, tract_id)
    if record.event.tract_id != tract_id:
        raise damage(tract_id, number, "wrong tract", f"the record belongs to tract {record.event.tract_id!r}")
    if record.number != number:
        raise damage(tract_id, number, "position mismatch", f"record says position {record.number}")
    if prev is not None and record.prev_hash != prev:
        raise damage(tract_id, number, "broken chain", "previous-record hash does not match the tract's record before")
    return record, body_hash(body)


def stored_rows(
    session: Session, records: str, tract_id: str, first: int, last: int
) -> Iterator[tuple[int, bytes, bool]]:
    """(number, body, batch end) of the tract's rows `first` to `last`, in order; a missing one is damage."""
    number = first
    while number <= last:
        upto = min(last, number + PAGE_ROWS - 1)
        rows = session.rows(
            f"SELECT number, body, batch_end FROM {records} WHERE tract_id = %s AND number BETWEEN %s AND %s "
            "ORDER BY number",
            (tract_id, number, upto),
        )
        for row_number, body, batch_end in rows:
            if row_number != number:
                break
            yield number, bytes(body), bool(batch_end)
            number += 1
        if number <= upto:
            raise damage(tract_id, number, "missing record", f"the store has no row for record {number} of the tract")


def hashed(
    session: Session, records: str, tract_id: str, first: int, last: int, prev: bytes | None
) -> Iterator[tuple[Record, bytes]]:
    """(record, its chain hash) for `first` to `last`, each checked and chained to the one before."""
    for number, body, _ in stored_rows(session, records, tract_id, first, last):
        record, prev = checked(tract_id, number, body, prev)
        yield record, prev

"""`verify` over a store: every tract's rows walked in one snapshot, checked as the file log's records are.

Each tract's rows are read in number order and go through the same walk as a log file's records
(`events.verify`): decoding, the tract's numbering and hash chain, commit hashes, refs, anchors.
Before that, each row must hold the body of its own place: a body of another tract or number is
a moved or reordered row. Then the `tracts` row must agree with the records walked: a record
missing in the middle breaks the numbering, one deleted from the end leaves the tract shorter than
its row says, one inserted past the end longer. Kinds beyond the file log's: missing record,
wrong tract, extra record, head mismatch, unlisted tract, unfinished batch (a tract's last row
not marked as a batch's end: its export would not import). As on files, only an anchor catches the
loss of a tract's newest records when its row was rewritten to match.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from events.errors import CorruptLogError
from events.framing import FLAG_BATCH_END, FORMAT_VERSION
from events.postgres.schema import tables
from events.postgres.session import Session
from events.records import decode_owner
from events.verify import Anchor, Problem, Progress, RecordWalk, VerifyReport

PROGRESS_EVERY = 50_000


def verify_store(session: Session, *, anchor: Anchor | None = None, progress: Progress | None = None) -> VerifyReport:
    """Verify every tract of the store, in one read-only snapshot, without writing anything."""
    tracts_table, records = tables(session.settings.schema)
    with session.lock, session.failures():
        connection = session.connection
        with connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            listed = connection.execute(
                f"SELECT tract_id, length, head FROM {tracts_table} ORDER BY created"
            ).fetchall()
            walk = RecordWalk(anchor, FORMAT_VERSION)
            problem = walk_tracts(connection, records, listed, walk, progress)
            if problem is None:
                problem = _unlisted(connection, records, tracts_table)
            return walk.report(problem if problem is not None else walk.missing_anchor())


def verify_tracts(session: Session, tract_ids: list[str]) -> VerifyReport:
    """Walk just these tracts on the session's connection, inside the transaction it is in (an import's)."""
    tracts_table, records = tables(session.settings.schema)
    with session.lock, session.failures():
        connection = session.connection
        listed = connection.execute(
            f"SELECT tract_id, length, head FROM {tracts_table} WHERE tract_id = ANY(%s) ORDER BY created", (tract_ids,)
        ).fetchall()
        walk = RecordWalk(None, FORMAT_VERSION)
        return walk.report(walk_tracts(connection, records, listed, walk, None))


def walk_tracts(
    connection: Any, records: str, listed: Iterable[tuple[str, int, bytes]], walk: RecordWalk, progress: Progress | None
) -> Problem | None:
    """Walk each listed tract's rows (on `connection`, inside its transaction); the first problem found."""
    position = 0
    for tract_id, length, head in listed:
        number, ends_batch = 0, True
        with connection.cursor(name="tract_verify", binary=True) as rows:
            rows.itersize = 500
            rows.execute(
                f"SELECT number, body, batch_end FROM {records} WHERE tract_id = %s ORDER BY number", (tract_id,)
            )
            for row_number, body, batch_end in rows:
                number += 1
                ends_batch = bool(batch_end)
                position += 1
                problem = _misplaced(tract_id, number, int(row_number), bytes(body))
                if problem is None:
                    problem = walk.check(position, None, memoryview(bytes([FLAG_BATCH_END]) + bytes(body)))
                if problem is not None:
                    return problem
                if progress is not None and position % PROGRESS_EVERY == 0:
                    progress(position)
        problem = _disagreeing_row(tract_id, number, int(length), bytes(head), walk)
        if problem is not None:
            return problem
        if not ends_batch:  # what an export, and so an import, needs: every batch whole
            detail = "the tract's last record does not end a batch (its batch is unfinished)"
            return Problem(number, "unfinished batch", detail, None, tract_id)
    return None


def _misplaced(tract_id: str, number: int, row_number: int, body: bytes) -> Problem | None:
    if row_number != number:
        detail = f"the store has no row for record {number} of the tract (the next row is {row_number})"
        return Problem(number, "missing record", detail, None, tract_id)
    try:
        owner, said = decode_owner(body, number, 0)
    except CorruptLogError as error:
        return Problem(number, error.kind, error.detail, None, tract_id)
    if owner != tract_id:
        return Problem(number, "wrong tract", f"the row holds a record of tract {owner!r}", None, tract_id)
    if said != number:
        return Problem(number, "position mismatch", f"the row holds the tract's record {said}", None, tract_id)
    return None


def _disagreeing_row(tract_id: str, walked: int, length: int, head: bytes, walk: RecordWalk) -> Problem | None:
    """The tracts row's length and head against what was walked."""
    if walked < length:
        detail = f"the tract's row says {length} records, the store holds {walked}"
        return Problem(walked + 1, "missing record", detail, None, tract_id)
    if walked > length:
        detail = f"the tract's row says {length} records, the store holds {walked}: records past its head"
        return Problem(length + 1, "extra record", detail, None, tract_id)
    if walk.heads[tract_id][1] != head:
        return Problem(length, "head mismatch", "the tract's row names another chain head", None, tract_id)
    return None


def _unlisted(connection: Any, records: str, tracts_table: str) -> Problem | None:
    row = connection.execute(
        f"SELECT r.tract_id, min(r.number) FROM {records} r LEFT JOIN {tracts_table} t USING (tract_id) "
        "WHERE t.tract_id IS NULL GROUP BY r.tract_id LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return Problem(int(row[1]), "unlisted tract", "records of a tract the store does not list", None, row[0])

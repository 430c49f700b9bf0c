"""A log as JSON lines, and back, byte for byte.

Each line is one record: its tract's number for it, whether it closes a
batch, the hash of the tract's record before it, its own hash, and the event
(tagged with its type). An export holds every tract, or one. Importing
re-encodes every record and checks it hashes to what the export says, so
each imported tract has the very same chain heads as the original.

An export of a format-1 log (one chain for the whole log) imports too: its
records are renumbered in their tracts and chained anew, so the chain heads
change (that is how such a log is converted to the current format).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from events.errors import InvalidEventError, LogFormatError, StorageError
from events.framing import FIRST_FORMAT, FORMAT_VERSION, LOG_FILE, record_hash
from events.log import EventLog
from events.postgres.store import PostgresLog
from events.records import decode_record
from events.storage import sync_directory
from events.types import AnyEvent
from events.verify import Progress, TractHead


class ExportedRecord(msgspec.Struct, frozen=True):
    position: int
    """The record's number in its tract (format 1: its place in the whole log)."""
    batch_end: bool
    prev_hash: str
    record_hash: str
    event: AnyEvent
    format: int = FIRST_FORMAT
    """The format of the log it came from: 1 in exports written before formats were named."""


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(ExportedRecord)


def exported_records(log: EventLog | PostgresLog, tract_id: str | None = None) -> Iterator[ExportedRecord]:
    """Every whole record of the log (or of one tract), in log order, with its framing facts."""
    if tract_id is not None and log.version == FIRST_FORMAT:
        raise LogFormatError(
            f"a log of format {FIRST_FORMAT} chains all its tracts as one: export it whole (import converts it)"
        )
    for frame in log.frames():
        record = decode_record(frame.body, frame.position, frame.offset)
        if tract_id is None or record.event.tract_id == tract_id:
            yield ExportedRecord(
                position=record.number,
                batch_end=frame.batch_end,
                prev_hash=record.prev_hash.hex(),
                record_hash=record_hash(frame.record, log.version).hex(),
                event=record.event,
                format=log.version,
            )


def write_jsonl(records: Iterable[ExportedRecord], out: IO[bytes], progress: Progress | None = None) -> int:
    count = 0
    for count, record in enumerate(records, 1):
        out.write(_line_encoder.encode(record))
        out.write(b"\n")
        if progress is not None and count % 50_000 == 0:
            progress(count)
    return count


def import_jsonl(
    lines: Iterable[bytes], directory: str | Path, progress: Progress | None = None
) -> dict[str, TractHead]:
    """Rebuild a log in a new `directory` from an export; returns each tract's chain head.

    Fails, naming the line or position, on any mismatch. The log is built in a
    hidden directory beside `directory`, verified, and renamed into place only
    when whole, so a failed import leaves nothing behind.
    """
    target = Path(directory)
    _check_new(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.import-", dir=target.parent))
    try:
        log = EventLog.open(staging)
        try:
            _import_lines(log, lines, progress)
            report = log.verify()
            if not report.ok:
                raise LogFormatError(f"the imported log does not verify: {report.problem}")
        finally:
            log.close()
        staging.rename(target)
        sync_directory(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report.heads


def _check_new(target: Path) -> None:
    if (target / LOG_FILE).exists():
        raise LogFormatError(f"{target} already holds a log; import into a new directory")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise LogFormatError(f"{target} is not an empty directory; import into a new one")


def import_lines_into(
    log: PostgresLog, lines: Iterable[bytes], progress: Progress | None = None
) -> dict[str, TractHead]:
    """Import an export into a PostgreSQL store as one transaction: every record, each tract walked
    as `verify` walks it, or nothing (its tracts must be new to the store); returns their chain heads."""
    with log.transaction():
        imported = _import_lines(log, lines, progress)
        report = log.verify_tracts(imported)
        if not report.ok:
            raise LogFormatError(f"the imported tracts do not verify: {report.problem}")
    return report.heads


def _import_lines(log: EventLog | PostgresLog, lines: Iterable[bytes], progress: Progress | None) -> list[str]:
    """Append the export's batches; returns the tracts imported, in order."""
    imported: dict[str, None] = {}
    batch: list[ExportedRecord] = []
    whole_log = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _line_decoder.decode(line)
        except msgspec.DecodeError as error:
            raise LogFormatError(f"line {number}: not an exported record ({error})") from None
        if record.format > FORMAT_VERSION:
            raise LogFormatError(
                f"line {number}: exported from a log of format {record.format}, newer than this library"
            )
        if record.format == FIRST_FORMAT:
            whole_log += 1
            expected = whole_log
        else:
            expected = log.tract_length(record.event.tract_id) + len(batch) + 1
        if batch and record.event.tract_id != batch[0].event.tract_id:
            raise LogFormatError(f"line {number}: a batch mixes tracts")
        if record.position == 1 and record.format != FIRST_FORMAT and log.tract_length(record.event.tract_id):
            raise LogFormatError(f"line {number}: tract {record.event.tract_id!r} already exists here")
        if record.position != expected:
            raise LogFormatError(f"line {number}: position {record.position} is out of order")
        batch.append(record)
        imported[record.event.tract_id] = None
        if record.batch_end:
            _append_batch(log, batch)
            batch = []
        if progress is not None and number % 50_000 == 0:
            progress(number)
    if batch:
        raise LogFormatError(f"the export ends inside a batch (position {batch[0].position} onwards)")
    return list(imported)


def _append_batch(log: EventLog | PostgresLog, batch: list[ExportedRecord]) -> None:
    tract_id, checked = batch[0].event.tract_id, batch[0].format != FIRST_FORMAT
    where = f"tract {tract_id!r} positions {batch[0].position}-{batch[-1].position}"
    if checked and batch[0].prev_hash != log.tract_head(tract_id).hex():
        raise StorageError(f"{where}: previous-record hash does not match the imported chain")
    try:
        log.append(tract_id, [record.event for record in batch])
    except InvalidEventError as error:
        raise LogFormatError(f"{where}: {error}") from None
    if checked:
        # Every record of the batch, not just its ends: each hashes as exported and names the hash
        # of the one before it (a record's hash is what the next one names as its previous).
        after_first = log.read_tract(tract_id, batch[0].position + 1, batch[-1].position)
        hashes = [record.prev_hash.hex() for record in after_first]
        hashes.append(log.tract_head(tract_id).hex())
        # `previous` runs one ahead of `hashes` (it starts with the batch's first link): zip stops at `hashes`.
        for record, previous, digest in zip(batch, [batch[0].prev_hash, *hashes], hashes, strict=False):
            if (record.prev_hash, record.record_hash) != (previous, digest):
                raise StorageError(
                    f"tract {tract_id!r} position {record.position}: re-encoded record does not hash as exported"
                )

"""The whole log as JSON lines, and back, byte for byte.

Each line is one record: its position, whether it closes a batch, the hash
of the record before it, its own hash, and the event (tagged with its type).
Importing re-encodes every record and checks it hashes to what the export
says, so an imported log has the very same chain head as the original.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from events.errors import InvalidEventError, LogError, LogFormatError
from events.framing import LOG_FILE
from events.log import Checkpoint, EventLog
from events.records import decode_record
from events.storage import sync_directory
from events.types import AnyEvent
from events.verify import Progress


class ExportedRecord(msgspec.Struct, frozen=True):
    position: int
    batch_end: bool
    prev_hash: str
    record_hash: str
    event: AnyEvent


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(ExportedRecord)


def exported_records(log: EventLog) -> Iterator[ExportedRecord]:
    """Every whole record of the log, with its framing facts."""
    for frame in log.frames():
        record = decode_record(frame.body, frame.position, frame.offset)
        yield ExportedRecord(
            position=record.position,
            batch_end=frame.batch_end,
            prev_hash=record.prev_hash.hex(),
            record_hash=hashlib.sha256(frame.record).hexdigest(),
            event=record.event,
        )


def write_jsonl(records: Iterable[ExportedRecord], out: IO[bytes], progress: Progress | None = None) -> int:
    count = 0
    for count, record in enumerate(records, 1):
        out.write(_line_encoder.encode(record))
        out.write(b"\n")
        if progress is not None and count % 50_000 == 0:
            progress(count)
    return count


def import_jsonl(lines: Iterable[bytes], directory: str | Path, progress: Progress | None = None) -> Checkpoint:
    """Rebuild a log in a new `directory` from an export; returns its chain head.

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
            head = log.checkpoint()
        finally:
            log.close()
        staging.rename(target)
        sync_directory(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return head


def _check_new(target: Path) -> None:
    if (target / LOG_FILE).exists():
        raise LogFormatError(f"{target} already holds a log; import into a new directory")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise LogFormatError(f"{target} is not an empty directory; import into a new one")


def _import_lines(log: EventLog, lines: Iterable[bytes], progress: Progress | None) -> None:
    batch: list[ExportedRecord] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _line_decoder.decode(line)
        except msgspec.DecodeError as error:
            raise LogFormatError(f"line {number}: not an exported record ({error})") from None
        if record.position != log.head_position + len(batch) + 1:
            raise LogFormatError(f"line {number}: position {record.position} is out of order")
        batch.append(record)
        if record.batch_end:
            _append_batch(log, batch)
            batch = []
        if progress is not None and number % 50_000 == 0:
            progress(number)
    if batch:
        raise LogFormatError(f"the export ends inside a batch (position {batch[0].position} onwards)")


def _append_batch(log: EventLog, batch: list[ExportedRecord]) -> None:
    if batch[0].prev_hash != log.head_hash.hex():
        raise LogError(f"position {batch[0].position}: previous-record hash does not match the imported chain")
    try:
        log.append([record.event for record in batch])
    except InvalidEventError as error:
        raise LogFormatError(f"position {batch[error.index].position}: {error}") from None
    if log.head_hash.hex() != batch[-1].record_hash:
        raise LogError(
            f"positions {batch[0].position}-{batch[-1].position}: re-encoded records do not hash as exported"
        )

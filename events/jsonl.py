"""The whole log as JSON lines, and back, byte for byte.

Each line is one record: its position, whether it closes a batch, the hash
of the record before it, its own hash, and the event (tagged with its type).
Importing re-encodes every record and checks it hashes to what the export
says, so an imported log has the very same chain head as the original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from events.errors import LogError, LogFormatError
from events.log import EventLog
from events.records import decode_record
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


def import_jsonl(lines: Iterable[bytes], directory: str | Path, progress: Progress | None = None) -> EventLog:
    """Rebuild a log in a new `directory` from an export; fails, naming the line, on any mismatch."""
    log = EventLog.open(directory)
    try:
        if log.head_position:
            raise LogFormatError(
                f"{directory} already holds a log with {log.head_position} records; import into a new directory"
            )
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
        return log
    except BaseException:
        log.close()
        raise


def _append_batch(log: EventLog, batch: list[ExportedRecord]) -> None:
    if batch[0].prev_hash != log.head_hash.hex():
        raise LogError(f"position {batch[0].position}: previous-record hash does not match the imported chain")
    log.append([record.event for record in batch])
    if log.head_hash.hex() != batch[-1].record_hash:
        raise LogError(
            f"positions {batch[0].position}-{batch[-1].position}: re-encoded records do not hash as exported"
        )

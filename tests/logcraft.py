"""Crafting logs a forger could write: valid framing and checksums around bad bytes, valid
framing, chain and commit hashes around events that do not hold together, or an index beside
the log that says something else than the log (its checksum recomputed).

Records are crafted as the current format writes them: each tract is its own chain, a record
carries its number in its tract and the hash of the tract's record before it, and a record's
hash is the SHA-256 of its body (the bytes after the frame's flags byte).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from events import (
    GENESIS_HASH,
    LOG_FILE,
    CommitCreated,
    Compression,
    Event,
    EventLog,
    Record,
    TractCreated,
    sealed_commit,
)
from events.framing import FILE_HEADER, FLAG_BATCH_END, FRAME_HEADER, FrameScanner, seal_frame
from events.tract_index import CATALOGUE_FILE, INDEX_DIR

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
INDEX_MAGIC = b"TRACTIDX1\n"
"""How the index catalogue starts (then a crc32 of the MessagePack body, then the body)."""
_CRC = struct.Struct("<I")


def framed(body: bytes, *, batch_end: bool = True) -> bytes:
    """One frame around a record body, with the flags byte and both checksums right."""
    out = bytearray(FRAME_HEADER.size)
    out.append(FLAG_BATCH_END if batch_end else 0)
    out += body
    seal_frame(out, 0)
    return bytes(out)


def encoded(number: int, prev_hash: bytes, event: Any) -> bytes:
    """A record body as the log encodes it (`event` may be a struct or a hand-made dict)."""
    return msgspec.msgpack.encode([number, prev_hash, event])


def body_hash(record: bytes) -> bytes:
    """The chain hash of a framed record (flags byte first): the hash of its body alone."""
    return hashlib.sha256(record[1:]).digest()


class RawRecord(NamedTuple):
    offset: int
    end: int
    record: bytes
    """The record's bytes, flags byte first."""
    position: int
    """Its place in the whole log (1 first)."""


def frames(directory: Path) -> list[RawRecord]:
    """Every whole record in the log file, in log order (found by its framing alone: whatever
    the records hold, and whatever the index says)."""
    data = (directory / LOG_FILE).read_bytes()
    scanner = FrameScanner(lambda offset, n: data[offset : offset + n], len(data), FILE_HEADER.size, 1)
    return [RawRecord(f.offset, f.end, bytes(f.record), f.position) for f in scanner]


def owner(raw: RawRecord) -> str | None:
    """The tract a record says it belongs to; None if it does not say."""
    try:
        tract_id = msgspec.msgpack.decode(raw.record[1:])[2]["tract_id"]
    except (msgspec.DecodeError, LookupError, TypeError):
        return None
    return tract_id if isinstance(tract_id, str) else None


def tract_records(directory: Path, tract_id: str) -> list[RawRecord]:
    """The tract's records that say they are its, number 1 first."""
    return [raw for raw in frames(directory) if owner(raw) == tract_id]


def record_of(directory: Path, tract_id: str, number: int) -> RawRecord:
    return tract_records(directory, tract_id)[number - 1]


def record_hash(directory: Path, tract_id: str, number: int) -> bytes:
    """The chain hash of the tract's record `number` (what its record `number + 1` names as previous)."""
    return GENESIS_HASH if number == 0 else body_hash(record_of(directory, tract_id, number).record)


def append_bytes(directory: Path, data: bytes) -> None:
    with open(directory / LOG_FILE, "ab") as handle:
        handle.write(data)


def replace_record(directory: Path, tract_id: str, number: int, body: bytes) -> RawRecord:
    """Put a validly framed `body` where the tract's record `number` was (the rest of the file
    untouched); returns where the record was."""
    raw = record_of(directory, tract_id, number)
    path = directory / LOG_FILE
    data = path.read_bytes()
    path.write_bytes(data[: raw.offset] + framed(body) + data[raw.end :])
    return raw


# -- the index beside the log ---------------------------------------------------------------------


def catalogue(directory: Path) -> list[Any]:
    """The saved catalogue as plain data: [covered checkpoint (a dict), [[tract id, count], ...]]."""
    data = (directory / INDEX_DIR / CATALOGUE_FILE).read_bytes()
    assert data.startswith(INDEX_MAGIC), "the index catalogue format changed: update logcraft"
    body = data[len(INDEX_MAGIC) + _CRC.size :]
    assert _CRC.unpack_from(data, len(INDEX_MAGIC))[0] == zlib.crc32(body)
    return msgspec.msgpack.decode(body)


def write_catalogue(directory: Path, value: list[Any]) -> None:
    """Replace the catalogue with `value`, its checksum recomputed (a forgery no checksum catches)."""
    body = msgspec.msgpack.encode(value)
    (directory / INDEX_DIR / CATALOGUE_FILE).write_bytes(INDEX_MAGIC + _CRC.pack(zlib.crc32(body)) + body)


def forge_count(directory: Path, tract_id: str, count: int) -> None:
    """Make the catalogue say the tract has `count` records (nothing else changed)."""
    covered, tracts = catalogue(directory)
    assert tract_id in [t for t, _ in tracts]
    write_catalogue(directory, [covered, [[t, count if t == tract_id else n] for t, n in tracts]])


def forge_index(directory: Path, tract_id: str, records: list[RawRecord]) -> None:
    """Make the index say the tract's records are `records` (its .idx file and its count) and that
    it covers the log's last record, named as it really is (place and hash), checksums recomputed:
    a forgery no checksum catches."""
    last = frames(directory)[-1]
    covered = {"position": last.position, "offset": last.offset, "end": last.end, "record_hash": body_hash(last.record)}
    _, tracts = catalogue(directory)
    write_pairs(directory, tract_id, records)
    write_catalogue(directory, [covered, [[t, len(records) if t == tract_id else n] for t, n in tracts]])


def pairs_path(directory: Path, tract_id: str) -> Path:
    return directory / INDEX_DIR / (hashlib.sha256(tract_id.encode()).hexdigest()[:32] + ".idx")


def write_pairs(directory: Path, tract_id: str, records: list[RawRecord]) -> None:
    """Make the tract's index file list `records` (offset and length, little-endian u64 each)."""
    pairs_path(directory, tract_id).write_bytes(
        b"".join(struct.pack("<QQ", raw.offset, raw.end - raw.offset) for raw in records)
    )


# -- whole events, sealed -------------------------------------------------------------------------


class Forger:
    """Appends events with the log's own `append` (so framing and chains are right) and seals
    every commit (so its hashes are right), whatever the events say."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = EventLog.open(directory)
        self.clock = START
        self.position = 0
        """Records in the whole log so far: the place of the last one written."""

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def append(self, *events: Event) -> int:
        """Write `events` (all of one tract) as one batch; returns the tract's number of the last."""
        number = self.log.append(events[0].tract_id, list(events))
        self.position += len(events)
        return number

    def append_unreadable(self, event: Event) -> int:
        """Write an event the log's own `append` refuses because it would not read back (a field
        out of its type's range), framed and chained as `append` would; returns its number."""
        tract_id = event.tract_id
        number = self.log.tract_length(tract_id) + 1
        body = msgspec.msgpack.encode(Record(number, self.log.tract_head(tract_id), event))
        self.log.close()
        append_bytes(self.directory, framed(body))
        self.log = EventLog.open(self.directory)
        self.position += 1
        return number

    def tract(self, tract_id: str) -> int:
        return self.append(TractCreated(tract_id=tract_id, created_at=self.now()))

    def commit_event(
        self,
        tract_id: str,
        text: str,
        parent: str | None,
        *,
        operation: str = "append",
        response_to: str | None = None,
        merge_parent: str | None = None,
        content: dict[str, Any] | None = None,
        branch: str = "main",
        compression: Compression | msgspec.UnsetType = msgspec.UNSET,
    ) -> CommitCreated:
        return sealed_commit(
            tract_id=tract_id,
            created_at=self.now(),
            parent_hash=parent,
            content=content if content is not None else {"content_type": "dialogue", "role": "user", "text": text},
            content_type=(content or {}).get("content_type", "dialogue"),
            operation=operation,
            response_to=response_to,
            merge_parent=merge_parent,
            compression=compression,
            token_count=len(text.split()) + 1,
            tokenizer="tiktoken:o200k_base",
            branch=branch,
        )

    def commit(self, tract_id: str, text: str, parent: str | None, **fields: Any) -> str:
        event = self.commit_event(tract_id, text, parent, **fields)
        self.append(event)
        return event.commit_hash

    def close(self) -> None:
        self.log.close()

"""The byte layout of the log file and the scan that finds its whole records.

File: a 12-byte header (magic, format version), then frames. A frame is
``length | crc32(record) | crc32(length, crc) | record``; a record is one
flags byte (batch end) followed by the msgpack-encoded `Record`. The header
checksum lets a damaged length field be told apart from a write the OS never
finished, so a torn tail is never confused with corruption in the middle.

Format 2 (written now) chains each tract's records and hashes a record's
MessagePack body alone, so a tract's chain heads do not depend on how a
backend frames or orders records. Format 1 chained the whole log and hashed
the flags byte too; its logs stay readable and verifiable.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from events.errors import CorruptLogError, LogFormatError

LOG_FILE = "events.log"
GENESIS_HASH = bytes(32)
"""What the first record names as the hash of the record before it."""
MAGIC = b"TRACTLOG"
FORMAT_VERSION = 2
FIRST_FORMAT = 1
"""The whole-log chain of the first format: read and verified, never written."""
FILE_HEADER = struct.Struct("<8sI")
FRAME_HEADER = struct.Struct("<III")
_LENGTH_CRC = struct.Struct("<II")
FLAG_BATCH_END = 0x01
MAX_RECORD_BYTES = 64 * 1024 * 1024
READ_CHUNK = 8 * 1024 * 1024
"""How much of the log is read at a time."""


def file_header() -> bytes:
    return FILE_HEADER.pack(MAGIC, FORMAT_VERSION)


def check_file_header(data: bytes, where: str) -> int:
    """The log's format version, or `LogFormatError` if `data` does not start a log this library reads."""
    if len(data) < FILE_HEADER.size:
        raise LogFormatError(f"{where}: too short to be a tract log ({len(data)} bytes)")
    magic, version = FILE_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise LogFormatError(f"{where}: not a tract log (bad magic {magic!r})")
    if version > FORMAT_VERSION:
        raise LogFormatError(
            f"{where}: log format version {version} is newer than this library "
            f"supports ({FORMAT_VERSION}); upgrade tract-context to read it"
        )
    return int(version)


def body_hash(body: bytes | memoryview) -> bytes:
    """The chain hash of a record in the current format: SHA-256 of its body (the record without
    the flags byte, which says how it was framed, not what it is), in every backend."""
    return hashlib.sha256(body).digest()


def record_hash(record: bytes | memoryview, version: int = FORMAT_VERSION) -> bytes:
    """The chain hash of a framed record (flags byte first), as its log's format defines it."""
    return body_hash(record[1:]) if version >= FORMAT_VERSION else hashlib.sha256(record).digest()


def seal_frame(out: bytearray, start: int) -> tuple[int, bytes]:
    """Fill in the header reserved at `start` for the record that follows it to the end of
    `out` (framing in place, without copying the record); returns (length, record hash)."""
    with memoryview(out) as view, view[start + FRAME_HEADER.size :] as record:
        length = len(record)
        crc = zlib.crc32(record)
        digest = body_hash(record[1:])
    FRAME_HEADER.pack_into(out, start, length, crc, zlib.crc32(_LENGTH_CRC.pack(length, crc)))
    return length, digest


class Checkpoint(msgspec.Struct, frozen=True):
    """A place in the log file: the record at `position` (in the whole log) starts at byte
    `offset`, its batch ends at byte `end`, and it hashes to `record_hash`. Enough to resume
    reading after it, and to tell whether a file really holds that record there."""

    position: int
    offset: int
    end: int
    record_hash: bytes


START = Checkpoint(0, FILE_HEADER.size, FILE_HEADER.size, GENESIS_HASH)
"""Before the first record."""


class Frame(NamedTuple):
    position: int
    offset: int
    end: int
    record: memoryview

    @property
    def batch_end(self) -> bool:
        return bool(self.record[0] & FLAG_BATCH_END)

    @property
    def body(self) -> memoryview:
        return self.record[1:]


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes after the last whole batch that a crash (or a write in flight) left."""

    offset: int
    position: int
    reason: str


class FrameScanner:
    """Yields whole frames of complete batches from `offset` to the end of the data.

    `read(offset, n)` returns up to n bytes at offset. After iteration, `end`
    is the offset just past the last complete batch and `torn` describes any
    trailing bytes that do not form one. Damage before the tail raises
    `CorruptLogError` naming the record's position.
    """

    def __init__(self, read: Callable[[int, int], bytes], size: int, offset: int, position: int) -> None:
        self._read = read
        self._size = size
        self.end = offset
        self.next_position = position
        self.torn: TornTail | None = None

    def __iter__(self) -> Iterator[Frame]:
        buf = memoryview(b"")
        buf_start = self.end
        offset, position = self.end, self.next_position
        pending: list[Frame] = []
        header_size, size, unpack, crc32 = FRAME_HEADER.size, self._size, FRAME_HEADER.unpack_from, zlib.crc32
        while offset < size:
            rel = offset - buf_start
            if len(buf) - rel < header_size:
                buf, buf_start, rel = self._refill(offset, header_size)
                if len(buf) < header_size:
                    self._tear("partial frame header")
                    break
            length, crc, header_crc = unpack(buf, rel)
            end = offset + header_size + length
            if end <= size and length:
                if len(buf) - rel < header_size + length:
                    buf, buf_start, rel = self._refill(offset, header_size + length)
                record = buf[rel + header_size : rel + header_size + length]
                if crc32(record) == crc:  # the happy path: one checksum per record
                    pending.append(Frame(position, offset, end, record))
                    offset, position = end, position + 1
                    if record[0] & FLAG_BATCH_END:
                        yield from pending
                        pending.clear()
                        self.end, self.next_position = offset, position
                    continue
            self._tear(self._diagnose(offset, position, length, crc, header_crc, end))
            break
        if pending and self.torn is None:
            self._tear("batch never finished")

    def _diagnose(self, offset: int, position: int, length: int, crc: int, header_crc: int, end: int) -> str:
        """Why the frame at `offset` is not whole: a torn tail (returns the reason) or damage (raises).

        The header's own checksum tells a damaged length field from a write the
        OS never finished, so corruption in the middle is never cut off as a tail.
        """
        if zlib.crc32(_LENGTH_CRC.pack(length, crc)) != header_crc:
            if self._all_zero(offset):
                return "zero-filled tail"
            raise CorruptLogError("damaged frame header", position=position, kind="bad header", offset=offset)
        if end > self._size:
            return "record cut short"
        if end == self._size:
            return "last record fails its checksum"
        raise CorruptLogError("record fails its checksum", position=position, kind="bad checksum", offset=offset)

    def _refill(self, offset: int, need: int) -> tuple[memoryview, int, int]:
        data = self._read(offset, min(max(READ_CHUNK, need), self._size - offset))
        return memoryview(data), offset, 0

    def _all_zero(self, offset: int) -> bool:
        while offset < self._size:
            chunk = self._read(offset, min(READ_CHUNK, self._size - offset))
            if chunk.count(0) != len(chunk):
                return False
            offset += len(chunk)
        return True

    def _tear(self, reason: str) -> None:
        """Everything from the end of the last complete batch on is torn."""
        self.torn = TornTail(offset=self.end, position=self.next_position, reason=reason)

"""Every record of a log file in the order it was written, from a checkpoint on.

Projections that span tracts (the analytics database) catch up through this:
they remember the `Checkpoint` of the last record they applied, and hand it
back. To them it is an opaque cursor; here it names a record that must really
be in this file, at that place, with that hash, or the reader starts over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar

import msgspec

from events.errors import StorageError
from events.framing import START, Checkpoint, FrameScanner, record_hash
from events.records import decode_owner, decode_record
from events.storage import FileStorage, MemoryStorage
from events.types import Record

_cursor_decoder = msgspec.msgpack.Decoder(Checkpoint)


Resume = TypeVar("Resume")


class ReaderEnd(Protocol):
    @property
    def end(self) -> int:
        """How far the reader reaches: it grows as the log does."""
        ...


class LogReader(Protocol[Resume]):
    """What a projection spanning tracts reads either backend through (`GlobalReader` here, the
    store's `StoreReader`): a fixed end, an opaque cursor naming it, and the records after a resume
    point. The resume point's type is the backend's own; the projection only hands it back."""

    @property
    def until(self) -> ReaderEnd: ...

    @property
    def cursor(self) -> bytes: ...

    def resume_point(self, cursor: bytes | None) -> Resume | None: ...

    def read(self, after: Resume = ...) -> Iterator[Record]: ...

    def close(self) -> None: ...


class GlobalReader:
    """A read-only handle on a log's whole records up to `until` (fixed when it was made)."""

    def __init__(self, storage: FileStorage | MemoryStorage, version: int, until: Checkpoint) -> None:
        self._storage = storage
        self._version = version
        self.until = until

    @property
    def cursor(self) -> bytes:
        """Where this reader ends, as the opaque bytes a projection stores and hands back to `read`."""
        return msgspec.msgpack.encode(self.until)

    def resume_point(self, cursor: bytes | None) -> Checkpoint | None:
        """The checkpoint a stored cursor names if reading can resume after it here; None if the reader
        must start over (no cursor, one of another log, or a format-1 log, which is read from the start)."""
        if cursor is None or self._version < 2:
            return None
        try:
            checkpoint = _cursor_decoder.decode(cursor)
        except msgspec.DecodeError:
            return None
        return checkpoint if self.contains(checkpoint) else None

    def contains(self, checkpoint: Checkpoint) -> bool:
        """Is the record `checkpoint` names really in this log (up to `until`), at that place, with that hash?"""
        return checkpoint == START or self.owner_of(checkpoint) is not None

    def owner_of(self, checkpoint: Checkpoint) -> tuple[str, int] | None:
        """(tract id, number) of the record `checkpoint` names, if it is really in this log (up to
        `until`) at that place with that hash; else None."""
        if checkpoint.position == 0 or checkpoint.end > self.until.end:
            return None
        scanner = FrameScanner(self._storage.read, checkpoint.end, checkpoint.offset, checkpoint.position)
        try:
            frames = list(scanner)
            if len(frames) != 1 or record_hash(frames[0].record, self._version) != checkpoint.record_hash:
                return None
            return decode_owner(frames[0].body, checkpoint.position, checkpoint.offset)
        except StorageError:
            return None

    def read(self, after: Checkpoint = START) -> Iterator[Record]:
        """The records after `after` (from `resume_point`) up to `until`, numbered in their tracts.

        Format-1 records carry their place in the whole log instead: read from the start,
        they are numbered here by counting each tract's records."""
        scanner = FrameScanner(self._storage.read, self.until.end, after.end, after.position + 1)
        if self._version >= 2:
            for frame in scanner:
                yield decode_record(frame.body, frame.position, frame.offset)
            return
        assert after == START, "format-1 logs are read in global order from the start"
        counts: dict[str, int] = {}
        for frame in scanner:
            record = decode_record(frame.body, frame.position, frame.offset)
            tract_id = record.event.tract_id
            counts[tract_id] = number = counts.get(tract_id, 0) + 1
            yield Record(number, record.prev_hash, record.event)

    def close(self) -> None:
        self._storage.close()

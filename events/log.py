"""The append-only, hash-chained event log.

Positions are dense from 1. Each record carries the SHA-256 of the record
before it, so the hash of the last record (the chain head) commits to the
whole history. `append` writes a batch as one unit: a reader or a reopen
after a crash sees all of it or none of it.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import warnings
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from events.errors import (
    LogError,
    LogFormatError,
    LogReadOnlyError,
    RecordTooLargeError,
)
from events.framing import (
    FILE_HEADER,
    FLAG_BATCH_END,
    FRAME_HEADER,
    GENESIS_HASH,
    LOG_FILE,
    MAX_RECORD_BYTES,
    READ_CHUNK,
    Frame,
    FrameScanner,
    TornTail,
    check_file_header,
    file_header,
    seal_frame,
)
from events.records import decode_record
from events.roundtrip import encode_record
from events.storage import FileStorage, MemoryStorage, sync_directory
from events.types import Event, Record
from events.verify import Progress, VerifyReport, verify_storage

SyncMode = Literal["always", "batch"]
Apply = Callable[[Record], None]
BATCH_SYNC_INTERVAL = 0.05
"""With sync="batch", the longest a written record waits for its fsync (seconds)."""

_NO_HEADER = bytes(FRAME_HEADER.size)


class Checkpoint(msgspec.Struct, frozen=True):
    """Where a reader of the log got to: enough to resume without rescanning."""

    position: int
    offset: int
    end: int
    record_hash: bytes


class EventLog:
    """Append events, read them back in order, and know the chain head."""

    def __init__(self, storage: FileStorage | MemoryStorage, *, readonly: bool, sync: SyncMode) -> None:
        self._storage = storage
        self.readonly = readonly
        self.sync_mode: SyncMode = sync
        self.torn_tail: TornTail | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._end = FILE_HEADER.size
        self._next_position = 1
        self._last_hash = GENESIS_HASH
        self._index_base = 1
        self._offsets = array("Q")
        self._sync_timer: threading.Timer | None = None
        self.resumed = False
        self._frozen = False
        self._unsynced = False
        self._failed: BaseException | None = None
        self._failure_unreported = False

    @classmethod
    def memory(cls) -> EventLog:
        log = cls(MemoryStorage(), readonly=False, sync="always")
        log._storage.write(file_header(), 0)
        return log

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        readonly: bool = False,
        sync: SyncMode = "always",
        resume: Checkpoint | None = None,
        fold: Callable[[bool], Apply] | None = None,
    ) -> EventLog:
        """Open (a writer creates it if missing) the log in `directory`.

        `resume` lets the scan start after a known record instead of from the
        start; it is ignored unless that record is really there with that hash.
        `fold(resumed)` returns a function that is handed every record the open
        scans (all of them, or those after `resume` when it was used), so a view
        is built in the same pass that checks the log.
        """
        if sync not in ("always", "batch"):
            raise ValueError(f"sync must be 'always' or 'batch', not {sync!r}")
        directory = Path(directory)
        path = directory / LOG_FILE
        if readonly and not path.exists():
            raise LogFormatError(f"{directory}: no tract log here (missing {LOG_FILE})")
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        storage = FileStorage(path, readonly=readonly)
        log = cls(storage, readonly=readonly, sync=sync)
        try:
            if storage.size() == 0 and not readonly:
                storage.write(file_header(), 0)
                storage.sync()
                sync_directory(directory)
            check_file_header(storage.read(0, FILE_HEADER.size), str(path))
            log.resumed = resume is not None and log._resume(resume)
            log.refresh(fold(log.resumed) if fold is not None else None)
            if log.torn_tail is not None and not readonly:
                log._cut_torn_tail(str(path))
        except BaseException:
            storage.close()
            raise
        return log

    # -- reading -------------------------------------------------------------

    @property
    def head_position(self) -> int:
        """Position of the last whole record (0 for an empty log)."""
        return self._next_position - 1

    @property
    def head_hash(self) -> bytes:
        """Hash of the last whole record: the chain head an auditor writes down."""
        return self._last_hash

    def checkpoint(self) -> Checkpoint:
        position = self.head_position
        if position == 0:
            return Checkpoint(0, FILE_HEADER.size, FILE_HEADER.size, GENESIS_HASH)
        return Checkpoint(position, self._offset_of(position), self._end, self._last_hash)

    def refresh(self, apply: Apply | None = None) -> int:
        """Pick up records appended since the last scan (by another process); returns the new head position.

        With `apply`, each new record is also decoded and handed to it, in the same
        single pass that checks and indexes it. A record that cannot be trusted
        raises `LogCorruptError`; the log then stays at the end of the last whole
        batch before it (`apply` may have been handed the records of the batch
        before the bad one: a caller that must not keep half a batch compares).
        """
        if self._frozen:
            return self.head_position
        scanner = FrameScanner(self._storage.read, self._storage.size(), self._end, self._next_position)
        last: Frame | None = None
        offsets = self._offsets
        try:
            for last in scanner:
                position, offset, _, raw = last
                offsets.append(offset)
                if apply is not None:
                    apply(decode_record(raw[1:], position, offset))
        except BaseException:
            # The scanner's end is that of the last batch it handed over in full.
            self._take_in(scanner.end, scanner.next_position, None)
            raise
        self._take_in(scanner.end, scanner.next_position, last)
        self.torn_tail = scanner.torn
        return self.head_position

    def _take_in(self, end: int, next_position: int, last: Frame | None) -> None:
        """Advance to the batch ending at `end` (whose last frame is `last`, or is read back here)."""
        del self._offsets[next_position - self._index_base :]
        if next_position == self._next_position:
            return
        if last is None:
            self._last_hash = self._record_hash(next_position - 1, end)
        else:
            self._last_hash = hashlib.sha256(last.record).digest()
        self._end, self._next_position = end, next_position

    def _record_hash(self, position: int, end: int) -> bytes:
        """The chain hash of the record at `position`, which ends at byte `end`, read back from the file."""
        if position == 0:
            return GENESIS_HASH
        start = self._offset_of(position) + FRAME_HEADER.size
        return hashlib.sha256(self._storage.read(start, end - start)).digest()

    def read(self, from_position: int = 1, to_position: int | None = None) -> Iterator[Record]:
        """Records from `from_position` to `to_position` (inclusive; default the head), in order.

        Every record up to the head was checked (framing, checksums) when it
        was scanned or appended, so reading goes straight from the offset
        index to the decoder, a few megabytes at a time.
        """
        last = self.head_position if to_position is None else min(to_position, self.head_position)
        position = max(from_position, 1)
        if position > last:
            return
        self._offset_of(position)  # make sure the index reaches back that far
        offsets, base = self._offsets, self._index_base
        while position <= last:
            start = offsets[position - base]
            # The chunk: whole records from `position` up to about READ_CHUNK bytes (at least one).
            stop = max(position, min(last, bisect.bisect_left(offsets, start + READ_CHUNK) - 1 + base))
            end = self._end if stop == self.head_position else offsets[stop + 1 - base]
            data = memoryview(self._storage.read(start, end - start))
            for current in range(position, stop + 1):
                record_start = offsets[current - base] - start + FRAME_HEADER.size + 1
                record_end = end - start if current == stop else offsets[current + 1 - base] - start
                yield decode_record(data[record_start:record_end], current, offsets[current - base])
            position = stop + 1

    def prefix(self, position: int) -> EventLog:
        """A read-only log of this one's records up to `position`, sharing its storage."""
        position = max(0, min(position, self.head_position))
        view = EventLog(self._storage.duplicate(), readonly=True, sync=self.sync_mode)
        view._frozen = True
        if position == self.head_position:
            view._end, view._last_hash = self._end, self._last_hash
        else:
            view._end = self._offset_of(position + 1)
            view._last_hash = self._record_hash(position, view._end)
        view._next_position = position + 1
        view._index_base, view._offsets = self._index_base, self._offsets
        return view

    def verify(self, *, anchor: tuple[int, str] | None = None, progress: Progress | None = None) -> VerifyReport:
        """Check every record of the log as stored (see `events.verify`)."""
        return verify_storage(self._storage, anchor=anchor, progress=progress)

    def frames(self) -> Iterator[Frame]:
        """Every whole record as framed on disk (position, batch flag, raw bytes), from the start."""
        return iter(FrameScanner(self._storage.read, self._end, FILE_HEADER.size, 1))

    def _offset_of(self, position: int) -> int:
        if position < self._index_base:
            self._index_from_start()
        return self._offsets[position - self._index_base]

    def _index_from_start(self) -> None:
        scanner = FrameScanner(self._storage.read, self._end, FILE_HEADER.size, 1)
        self._offsets = array("Q", (item.offset for item in scanner))
        self._index_base = 1

    def contains(self, checkpoint: Checkpoint) -> bool:
        """Is the record `checkpoint` names really in this log, at that place, with that hash?"""
        if checkpoint.position == 0:
            return checkpoint.record_hash == GENESIS_HASH
        if checkpoint.end > self._storage.size():
            return False
        scanner = FrameScanner(self._storage.read, checkpoint.end, checkpoint.offset, checkpoint.position)
        try:
            frames = list(scanner)
        except LogError:
            return False
        return len(frames) == 1 and hashlib.sha256(frames[0].record).digest() == checkpoint.record_hash

    def _resume(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.position == 0 or not self.contains(checkpoint):
            return False
        self._end, self._next_position = checkpoint.end, checkpoint.position + 1
        self._last_hash = checkpoint.record_hash
        self._index_base = checkpoint.position
        self._offsets = array("Q", [checkpoint.offset])
        return True

    # -- writing -------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> int:
        """Write `events` as one atomic batch; returns the position of the last one.

        Every record is checked to read back as itself before any is written
        (`InvalidEventError` otherwise, and nothing is written).
        """
        if self.readonly:
            raise LogReadOnlyError("this log is open read-only")
        if self._closed:
            raise LogError("this log is closed")
        if not events:
            return self.head_position
        with self._lock:
            self._raise_if_failed()
            out = bytearray()
            starts: list[int] = []
            prev = self._last_hash
            position = self._next_position
            last_index = len(events) - 1
            for index, event in enumerate(events):
                start = len(out)
                out += _NO_HEADER  # reserved; filled in once the record is encoded behind it
                out.append(FLAG_BATCH_END if index == last_index else 0)
                encode_record(Record(position, prev, event), out, index)
                length, prev = seal_frame(out, start)
                if length > MAX_RECORD_BYTES:
                    raise RecordTooLargeError(
                        f"{type(event).__name__} encodes to {length} bytes; a record holds at most "
                        f"{MAX_RECORD_BYTES} bytes"
                    )
                starts.append(self._end + start)
                position += 1
            self._storage.write(out, self._end)
            self._end += len(out)
            self._next_position = position
            self._last_hash = prev
            self._offsets.extend(starts)
            self._unsynced = True
            self._after_write()
            return self.head_position

    def _after_write(self) -> None:
        if self.sync_mode == "always":
            self._sync()
        elif self._sync_timer is None:
            self._sync_timer = threading.Timer(BATCH_SYNC_INTERVAL, self._background_sync)
            self._sync_timer.daemon = True
            self._sync_timer.start()

    def _sync(self) -> None:
        """fdatasync what was appended. If it fails or is interrupted, the records are written but not
        known durable (and a retried fsync may "succeed" without writing them): writes are refused
        until the log is reopened."""
        try:
            self._storage.sync()
        except BaseException as error:
            self._failed = error
            raise
        self._unsynced = False

    def _background_sync(self) -> None:
        with self._lock:
            self._sync_timer = None
            if self._closed or self._failed is not None or not self._unsynced:
                return
            try:
                self._sync()
            except BaseException:  # noqa: BLE001 - kept, not lost in this thread: the next append, flush or close raises it
                self._failure_unreported = True

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            self._failure_unreported = False
            error = self._failed
            raise LogError(
                f"an earlier write or sync failed ({str(error) or type(error).__name__}); reopen the log to continue"
            ) from error

    @property
    def failed(self) -> bool:
        """Did a sync fail (or was one interrupted)? Then nothing past the last good sync is known durable."""
        return self._failed is not None

    def flush(self) -> None:
        """Make every appended record durable now; raises if an earlier sync failed."""
        with self._lock:
            if self._closed or self.readonly:
                return
            self._raise_if_failed()
            if self._unsynced:
                self._sync()

    def _cut_torn_tail(self, where: str) -> None:
        torn = self.torn_tail
        assert torn is not None
        self._storage.truncate(torn.offset)
        self._storage.sync()
        warnings.warn(
            f"{where}: cut off a torn tail at byte {torn.offset} (from position {torn.position}): {torn.reason}",
            RuntimeWarning,
            stacklevel=3,
        )

    def close(self) -> None:
        """Sync what is pending and release the file (and the lock), also when that sync fails;
        a background sync failure nobody was told of yet is raised here."""
        with self._lock:
            if self._closed:
                return
            if self._sync_timer is not None:
                self._sync_timer.cancel()
                self._sync_timer = None
            try:
                if not self.readonly and self._failed is None and self._unsynced:
                    self._sync()
            finally:
                self._storage.close()
                self._closed = True
            if self._failure_unreported:
                self._raise_if_failed()

    @property
    def closed(self) -> bool:
        return self._closed

"""Where log bytes live: a file with an OS lock, or a buffer in memory.

Both offer the same few operations, so the log above them is one piece of
code whether it is durable or not.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from events.errors import LogLockedError
from events.files import open_regular


class MemoryStorage:
    """Log bytes in a bytearray; nothing survives the process."""

    def __init__(self) -> None:
        self._data = bytearray()

    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])

    def write(self, data: bytes | bytearray, end: int) -> None:
        self._data += data

    def truncate(self, size: int) -> None:
        del self._data[size:]

    def duplicate(self) -> MemoryStorage:
        """The same bytes (there is no handle to lose when the original is closed)."""
        return self

    def sync(self) -> None:
        """Nothing to make durable."""

    def close(self) -> None:
        """Nothing to release."""


class FileStorage:
    """An append-only file. Writers hold an exclusive lock on the directory's LOCK file."""

    def __init__(self, path: Path, *, readonly: bool) -> None:
        self.path = path
        self._lock_fd: int | None = None
        if readonly:
            self._fd = open_regular(path, os.O_RDONLY)
            return
        self._lock_fd = _take_lock(path.parent / "LOCK")
        try:
            self._fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def duplicate(self) -> FileStorage:
        """A read-only handle of its own on the same file: closing either leaves the other working."""
        twin = FileStorage.__new__(FileStorage)
        twin.path, twin._lock_fd, twin._fd = self.path, None, os.dup(self._fd)
        return twin

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def write(self, data: bytes | bytearray, end: int) -> None:
        """Append all of data after byte `end` (the current end), or cut the file back there and raise."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BaseException:
            os.ftruncate(self._fd, end)
            raise

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _take_lock(lock_path: Path) -> int:
    fd = open_regular(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LogLockedError(
            f"{lock_path.parent} is already open for writing (held by pid {holder}); "
            "open it with readonly=True to read while it is written"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def sync_directory(path: Path) -> None:
    """Make a new or renamed entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

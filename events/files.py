"""Opening the files of a log directory: regular files only, and never a wait.

A FIFO, socket, device or directory where the log, its lock or a projection
file belongs would make a plain `open` block (a FIFO with no writer), fail
with an obscure errno (a socket), or read and write something that is not a
file at all (a device). Each is refused at once, naming the path and what it
is. Symbolic links are followed: what counts is the file a link leads to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from events.errors import NotRegularFileError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_regular(path: Path) -> None:
    """Raise `NotRegularFileError` if `path` exists and is not a regular file (a missing path is fine)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    _refuse_irregular(path, mode)


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` for a file of the log directory that refuses, without blocking, anything but a regular file.

    The path is checked before opening (so no device is ever opened) and the
    descriptor after (so a file swapped in between is caught too).
    """
    check_regular(path)
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    try:
        _refuse_irregular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_irregular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise NotRegularFileError(f"{path} is {kind}, not a regular file (tract opens only regular files there)")

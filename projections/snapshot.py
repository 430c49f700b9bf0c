"""Snapshots of the commit view, so opening a long log replays only its tail.

A snapshot names the log record it reflects (position, offset, hash) and
carries a CRC-32 of its body, so a damaged one is never believed. It is
written to a temporary file, fsynced and renamed into place, so a crash
leaves the old snapshot or the new one, never half of one. Anything that does
not decode, or was taken of another log, is reported and ignored: the cost
of a bad snapshot is a full replay, never a wrong answer.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import msgspec

from events import Checkpoint
from events.files import open_regular
from events.storage import sync_directory
from projections.bulk import paused_gc
from projections.commit_view import ViewState

SNAPSHOT_FILE = "snapshot.bin"
_MAGIC = b"TRACTSNAP2\n"
_CRC = struct.Struct("<I")


class Snapshot(msgspec.Struct):
    checkpoint: Checkpoint
    state: ViewState


_decoder = msgspec.msgpack.Decoder(Snapshot)


def save_snapshot(directory: Path, checkpoint: Checkpoint, state: ViewState) -> None:
    """Replace the snapshot atomically; on any failure (a full disk) no temporary file is left."""
    path = directory / SNAPSHOT_FILE
    temporary = path.with_name(SNAPSHOT_FILE + ".tmp")
    body = msgspec.msgpack.encode(Snapshot(checkpoint, state))
    data = _MAGIC + _CRC.pack(zlib.crc32(body)) + body
    fd = open_regular(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(directory)


def load_snapshot(directory: Path) -> Snapshot | None:
    path = directory / SNAPSHOT_FILE
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    if not data.startswith(_MAGIC):
        warnings.warn(
            f"{path}: not a snapshot this version wrote; rebuilding from the log", RuntimeWarning, stacklevel=2
        )
        return None
    header = len(_MAGIC) + _CRC.size
    body = memoryview(data)[header:]
    if len(data) < header or _CRC.unpack_from(data, len(_MAGIC))[0] != zlib.crc32(body):
        warnings.warn(f"{path}: snapshot fails its checksum; rebuilding from the log", RuntimeWarning, stacklevel=2)
        return None
    try:
        with paused_gc():
            return _decoder.decode(body)
    except msgspec.DecodeError as error:
        warnings.warn(f"{path}: unreadable snapshot ({error}); rebuilding from the log", RuntimeWarning, stacklevel=2)
        return None

"""Every error tract raises comes from one tree, rooted here at the lowest layer: `TractError`.

The log's errors are defined once, here; `tract.errors` re-exports them beside
the SDK's own, and `projections` derives its errors from them, so a caller (and
the CLI) catches `TractError` for anything tract refused or could not do, and
`StorageError` for what went wrong with the storage under it.
"""

from __future__ import annotations


class TractError(Exception):
    """Base of every error tract raises."""


class StorageError(TractError):
    """The log, or a file beside it (index, analytics database), could not be opened, read or written:
    a full disk, a failed fsync, a file that is not a regular file. `position` names the record when
    known: its number in `tract_id`, or its place in the whole log when `tract_id` is None (a scan met
    it before its tract could be known); `offset` is its byte offset in the log file."""

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        kind: str | None = None,
        tract_id: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.position = position
        self.kind = kind
        self.tract_id = tract_id
        self.offset = offset


class CorruptLogError(StorageError):
    """A record that cannot be trusted (not a torn tail, which is recovered on open); `detail` says
    what is wrong with it, and the message where it is."""

    position: int
    kind: str

    def __init__(
        self, message: str, *, position: int, kind: str, offset: int | None = None, tract_id: str | None = None
    ) -> None:
        where = f"position {position}" if tract_id is None else f"tract {tract_id!r} position {position}"
        if offset is not None:
            where += f", byte offset {offset}"
        super().__init__(f"{message} ({where}, {kind})", position=position, kind=kind, tract_id=tract_id, offset=offset)
        self.detail = message


class LogLockedError(StorageError):
    """Another process has the log open for writing."""


class ConcurrentWriteError(StorageError):
    """A tract gained records the appender did not expect: another writer got there first."""


class LogFormatError(StorageError):
    """Not a tract log, or one written by a newer format version."""


class RecordTooLargeError(StorageError):
    """An event whose encoding does not fit one log record."""


class NotRegularFileError(StorageError):
    """A file of the log directory that is a FIFO, socket, device or directory: refused, never opened."""


class ReadOnlyError(TractError):
    """A write to a log or tract opened read-only (or to a read-only view of one)."""


class InvalidEventError(TractError, ValueError):
    """An event that would not read back as itself; nothing was written.

    `field` names the event's field at fault (None when no single field is),
    `index` the event's place in the batch that was being appended.
    """

    def __init__(self, message: str, *, event_type: str, field: str | None, index: int) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.field = field
        self.index = index

"""What can go wrong with a log, each naming where."""

from __future__ import annotations


class LogError(Exception):
    """Base of every error raised by the event log."""


class LogCorruptError(LogError):
    """A record that cannot be trusted; `detail` says what is wrong with it.

    `position` is the record's number in its tract when `tract_id` is given (it was read as
    one of that tract's records), else its place in the whole log (found by a scan of the
    file, before its tract could be known); `offset` is its byte offset in the file when known.
    """

    def __init__(
        self, message: str, *, position: int, kind: str, offset: int | None = None, tract_id: str | None = None
    ) -> None:
        where = f"position {position}" if tract_id is None else f"tract {tract_id!r} position {position}"
        if offset is not None:
            where += f", byte offset {offset}"
        super().__init__(f"{message} ({where}, {kind})")
        self.detail = message
        self.position = position
        self.kind = kind
        self.offset = offset
        self.tract_id = tract_id


class LogLockedError(LogError):
    """Another writer holds the log."""


class ConcurrentWriteError(LogError):
    """A tract gained records the appender did not expect: another writer got there first."""


class LogFormatError(LogError):
    """Not a log, or a log written by a newer format version."""


class LogReadOnlyError(LogError):
    """A write was attempted on a log opened read-only."""


class InvalidEventError(LogError, ValueError):
    """An event that would not read back as itself; nothing was written.

    `field` names the event's field at fault (None when no single field is),
    `index` the event's place in the batch that was being appended.
    """

    def __init__(self, message: str, *, event_type: str, field: str | None, index: int) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.field = field
        self.index = index


class RecordTooLargeError(LogError):
    """An event whose encoding does not fit the record format."""


class NotRegularFileError(LogError):
    """A file of the log directory that is a FIFO, socket, device or directory: refused, never opened."""

"""Every exception the SDK raises; all derive from `TractError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import events
from projections.analytics import AnalyticsStorageError


class TractError(Exception):
    """Base of every tract error."""


class ContentValidationError(TractError, ValueError):
    """Content that does not validate against its content type."""


class EncodingError(TractError):
    """A tokenizer encoding that is not shipped and cannot be loaded, or a damaged rank file."""


class InvalidArgumentError(TractError, ValueError):
    """An argument out of its allowed values (an operation, priority, strategy, operator...)."""


class InvalidJSONError(TractError, ValueError):
    """A generation config, metadata or payload that is not plain JSON."""


class EditTargetError(TractError, ValueError):
    """An EDIT without a valid target commit."""


class CommitNotFoundError(TractError, LookupError):
    """No commit with that hash in this tract's log."""


class BudgetExceededError(TractError):
    """A commit would push the compiled context over a REJECT budget."""


class UsageError(TractError, ValueError):
    """Usage that cannot be recorded: unknown shape, nothing to record it for."""


class QueryError(TractError, ValueError):
    """An analytics query that was refused (not read-only) or failed."""


class ReadOnlyError(TractError):
    """A writing method called on a read-only view."""


class DetachedHeadError(ReadOnlyError):
    """A commit while HEAD is detached (after checkout of a commit): create a branch first."""


class BranchError(TractError, ValueError):
    """An invalid, duplicate or missing branch name, or deleting the current branch."""


class MergeConflictError(TractError):
    """Both sides of a merge edited or annotated the same commits; `conflicts` names them."""

    def __init__(self, message: str, *, conflicts: list[str]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


class RenderError(TractError, ValueError):
    """A context that cannot be rendered in a provider's format (a tool result without its call,
    a call without its result, no user turn to start with); `commit_hash` names the message."""

    def __init__(self, message: str, *, commit_hash: str | None = None) -> None:
        super().__init__(message)
        self.commit_hash = commit_hash


class TractClosedError(TractError):
    """The tract was closed."""


class StorageError(TractError):
    """The log, or a file beside it (index, analytics database), could not be opened, read or written:
    a full disk, a failed fsync, a file that is not a regular file. `position` names the record when
    known: its number in tract `tract_id`, or (`tract_id` None) its place in the whole log."""

    def __init__(
        self, message: str, *, position: int | None = None, kind: str | None = None, tract_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.position = position
        self.kind = kind
        self.tract_id = tract_id


class CorruptLogError(StorageError):
    """A damaged record (not a torn tail, which is recovered on open)."""


class LogLockedError(StorageError):
    """Another process has the log open for writing."""


class LogFormatError(StorageError):
    """Not a tract log, or one written by a newer version."""


class RecordTooLargeError(StorageError):
    """An event too large for one log record."""


_FROM_LOG: dict[type[events.LogError], type[StorageError]] = {
    events.LogCorruptError: CorruptLogError,
    events.LogLockedError: LogLockedError,
    events.LogFormatError: LogFormatError,
    events.RecordTooLargeError: RecordTooLargeError,
}


# The public argument an event field is made from, where their names differ, and the error
# each argument's bad values raise (InvalidArgumentError for the rest).
_ARGUMENT_OF_FIELD = {
    "content_type": "content",
    "target_hash": "commit_hash",
    "token_count": "tokenizer",
    "prompt_tokens": "usage",
    "completion_tokens": "usage",
    "total_tokens": "usage",
}
_ERROR_OF_ARGUMENT: dict[str, type[TractError]] = {
    "content": ContentValidationError,
    "metadata": InvalidJSONError,
    "generation_config": InvalidJSONError,
    "usage": UsageError,
}


def refused_argument(error: events.InvalidEventError) -> TractError:
    """The error naming the caller's argument that became the event field the log refused."""
    argument = _ARGUMENT_OF_FIELD.get(error.field or "", error.field)
    kind = _ERROR_OF_ARGUMENT.get(argument or "", InvalidArgumentError)
    return kind(f"{argument or 'an argument'} cannot be stored: {error}")


@contextmanager
def storage_errors() -> Iterator[None]:
    """Re-raise the log's own errors (and the OS's, and those of the projections' files) as the SDK's,
    keeping position and kind; an event the log refused becomes the error naming the argument it came from."""
    try:
        yield
    except events.InvalidEventError as error:
        raise refused_argument(error) from None
    except events.LogError as error:
        kind = _FROM_LOG.get(type(error), StorageError)
        raise kind(
            str(error),
            position=getattr(error, "position", None),
            kind=getattr(error, "kind", None),
            tract_id=getattr(error, "tract_id", None),
        ) from error
    except OSError as error:
        raise StorageError(f"{error.strerror or error}: {error.filename or 'log'}") from error
    except AnalyticsStorageError as error:
        raise StorageError(str(error)) from error

"""Every exception the SDK raises; all derive from `TractError`.

The storage's errors (`StorageError` and those under it, `ReadOnlyError`) are the log's own
classes, defined once in `events.errors` and re-exported here beside the SDK's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from events.errors import (
    ConcurrentWriteError,
    CorruptLogError,
    InvalidEventError,
    LogFormatError,
    LogLockedError,
    NotRegularFileError,
    ReadOnlyError,
    RecordTooLargeError,
    StorageError,
    TractError,
)

__all__ = [
    "BranchError",
    "BudgetExceededError",
    "CommitNotFoundError",
    "ConcurrentWriteError",
    "ContentValidationError",
    "CorruptLogError",
    "DetachedHeadError",
    "EditTargetError",
    "EncodingError",
    "InvalidArgumentError",
    "InvalidJSONError",
    "LogFormatError",
    "LogLockedError",
    "MergeConflictError",
    "NotRegularFileError",
    "QueryError",
    "ReadOnlyError",
    "RecordTooLargeError",
    "RenderError",
    "StorageError",
    "TractClosedError",
    "TractError",
    "UsageError",
    "refused_argument",
    "storage_errors",
]


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


def refused_argument(error: InvalidEventError) -> TractError:
    """The error naming the caller's argument that became the event field the log refused."""
    argument = _ARGUMENT_OF_FIELD.get(error.field or "", error.field)
    kind = _ERROR_OF_ARGUMENT.get(argument or "", InvalidArgumentError)
    return kind(f"{argument or 'an argument'} cannot be stored: {error}")


@contextmanager
def storage_errors() -> Iterator[None]:
    """An event the log refused becomes the error naming the caller's argument it came from, and
    the OS's errors the storage let through become `StorageError`s; tract's own errors pass as they are."""
    try:
        yield
    except InvalidEventError as error:
        raise refused_argument(error) from None
    except OSError as error:
        raise StorageError(f"{error.strerror or error}: {error.filename or 'log'}") from error

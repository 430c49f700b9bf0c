"""One error tree: every exception class a layer defines derives from `TractError`, and the storage's
errors are the same classes whichever package a caller imports them from."""

from __future__ import annotations

import inspect

import events
import events.errors
import projections.query_limits
import tract
import tract.errors


def exception_classes(module: object) -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__.startswith(("events", "projections", "tract"))
    }


def test_every_error_of_every_layer_is_a_tract_error() -> None:
    defined = {
        **exception_classes(events.errors),
        **exception_classes(projections.query_limits),
        **exception_classes(tract.errors),
        **exception_classes(tract),
    }
    assert len(defined) > 20
    assert [name for name, cls in defined.items() if not issubclass(cls, tract.TractError)] == []


def test_the_storage_errors_are_defined_once() -> None:
    for name in ("TractError", "StorageError", "CorruptLogError", "LogLockedError", "LogFormatError",
                 "ConcurrentWriteError", "RecordTooLargeError", "NotRegularFileError", "ReadOnlyError"):  # fmt: skip
        assert getattr(tract, name) is getattr(events, name) is getattr(events.errors, name), name
    assert issubclass(projections.query_limits.AnalyticsStorageError, tract.StorageError)

"""Early checks of what callers pass, each naming the argument.

The log refuses any event that would not read back as itself, whatever method
made it (`events.roundtrip`; `storage_errors` names the argument). These checks
come first where they can say more, or where a wrong type would otherwise fail
somewhere else first: a dict lookup, a comparison, a path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tract.errors import InvalidArgumentError

MEMORY = ":memory:"


def text(value: Any, argument: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{argument} must be a string, not {type(value).__name__}")
    return value


def optional_text(value: Any, argument: str) -> str | None:
    return None if value is None else text(value, argument)


def storable_text(value: Any, argument: str) -> str:
    """A non-empty string that UTF-8 can store (no lone surrogates)."""
    checked = text(value, argument)
    if not checked:
        raise InvalidArgumentError(f"{argument} must not be empty")
    try:
        checked.encode()
    except UnicodeEncodeError as error:
        raise InvalidArgumentError(f"{argument} cannot be stored: {error}") from None
    return checked


def one_of(value: Any, allowed: tuple[str, ...], argument: str) -> str:
    if not (isinstance(value, str) and value in allowed):
        raise InvalidArgumentError(f"{argument} must be one of {', '.join(allowed)}, not {shown(value)}")
    return value


def shown(value: Any) -> str:
    """A value as an error message can show it: strings briefly, anything else by its type."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return f"a {type(value).__name__}"


def flag(value: Any, argument: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{argument} must be True or False, not {type(value).__name__}")
    return value


def log_directory(path: Any) -> Path | None:
    """The log directory `path` names, or None for an in-memory tract."""
    if path is None:
        return None
    try:
        directory = Path(path)
        encoded = os.fsencode(directory)
    except (TypeError, UnicodeError) as error:
        raise InvalidArgumentError(f"path must name a directory (str or os.PathLike): {error}") from None
    if b"\0" in encoded:
        raise InvalidArgumentError("path must not contain a NUL byte")
    return None if str(directory) == MEMORY else directory

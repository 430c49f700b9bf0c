"""What the commands share: opening a log to read it, the argument types, chain heads as text,
progress on stderr, and files written whole or not at all."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO

from events import Anchor
from events.postgres import StoreSettings, is_store_url
from tract.errors import TractError, storage_errors
from tract.tract import Tract

USAGE_EXIT = 2
"""Exit status of a command given arguments it cannot take (argparse's, and the convention)."""


class CommandLineError(TractError):
    """Arguments the command cannot take: printed as one line, exit status 2."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1, not {text!r}")
    return int(text)


def limit(text: str) -> int | None:
    """An argparse type for `-n`: a whole number of at least 1, or `all` (None: no limit)."""
    return None if text == "all" else positive_int(text)


def point_in_time(text: str) -> int | datetime:
    """An argparse type for `--at`: a position in the tract (its N-th record), or an ISO time."""
    if text.isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes a position in the tract or an ISO time such as 2026-11-25T10:00:00+00:00, not {text!r}"
        ) from None


def anchor(text: str) -> Anchor:
    """An argparse type for `--anchor`: TRACT:POSITION:HASH (a tract's chain head), or
    POSITION:HASH (a whole-log position of a format-1 log). The full hash: a prefix proves less."""
    parts = text.rsplit(":", 2)
    if len(parts) < 2 or not parts[-2].isdigit() or len(parts[-1]) != 64 or parts[0] == "":
        raise argparse.ArgumentTypeError(
            f"takes TRACT:POSITION:HASH (a chain head as printed by verify, export or import), not {text!r}"
        )
    return (parts[0] if len(parts) == 3 else None), int(parts[-2]), parts[-1]


def anchor_text(tract_id: str, position: int, digest: str) -> str:
    """A chain head as `verify --anchor` takes it back."""
    return f"{tract_id}:{position}:{digest}"


def existing(directory: str | Path) -> Path | str:
    """A log directory that exists, or a store's URL (its server says whether it holds a store)."""
    if isinstance(directory, str) and is_store_url(directory):
        return directory
    path = Path(directory)
    if not path.is_dir():
        raise TractError(f"{directory}: no such log directory")
    return path


def shown(location: str | Path) -> str:
    """A log directory as given, or a store's URL without its credentials, for printing."""
    return (
        StoreSettings.parse(location).where if isinstance(location, str) and is_store_url(location) else str(location)
    )


def reader(args: argparse.Namespace) -> Tract:
    """The log opened read-only (folding it may take a while on a long log)."""
    return open_readonly(args.directory, getattr(args, "tract", None))


def open_readonly(directory: str | Path, tract_id: str | None) -> Tract:
    path = existing(directory)
    if sys.stderr.isatty():
        print(f"\rreading {shown(path)}…", end="", file=sys.stderr, flush=True)
    try:
        return Tract.open(path, tract_id=tract_id, readonly=True)
    finally:
        end_progress()


def progress(label: str) -> Callable[[int], None] | None:
    """A progress line on stderr, only when a person is watching it."""
    if not sys.stderr.isatty():
        return None
    return lambda count: print(f"\r{label} {count:,} records…", end="", file=sys.stderr, flush=True)


def end_progress() -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)


@contextmanager
def output_file(target: Path) -> Iterator[IO[bytes]]:
    """A file that becomes `target` only once completely written (on any failure, a full disk,
    nothing is left and an earlier `target` is untouched). A target that is not a regular file
    (/dev/stdout, a pipe) is written directly."""
    if target.exists() and not target.is_file():
        with open(target, "wb") as out:
            yield out
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            with storage_errors():
                out.flush()
                os.fsync(out.fileno())
        with storage_errors():
            os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

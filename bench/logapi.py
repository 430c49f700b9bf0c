"""The few log operations the benchmark needs, on either generation of `events.EventLog`.

The benchmark compares the code before the storage redesign (one hash chain
for the whole log, a `snapshot.bin` beside it) with the code after it (one
chain per tract, an `index/` beside it) in the same run. Both logs are written
and read here through their public interface: the newer one's
`append(tract_id, events, expected=)`, `read_tract` and `global_reader`, the
older one's `append(events)` and `read(first, last)`. Everything else the
benchmark does goes through `from tract import Tract`, which both share.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from events import LOG_FILE, Event, EventLog, Record

PER_TRACT_LOG = hasattr(EventLog, "read_tract")
"""True for the per-tract log (index beside it), False for the whole-log chain (snapshot beside it)."""
SNAPSHOT_FILE = "snapshot.bin"
INDEX_DIR = "index"
ANALYTICS_FILES = ("analytics.duckdb", "analytics.duckdb.wal")


def append(log: EventLog, tract_id: str, events: Sequence[Event]) -> int:
    """Write one tract's events as one atomic batch; returns how many records the log (or tract) holds."""
    if PER_TRACT_LOG:
        return log.append(tract_id, events)
    return log.append(events)  # type: ignore[call-arg, arg-type]


def read_tract(log: EventLog, tract_id: str, first: int = 1, last: int | None = None) -> Iterator[Record]:
    """The tract's records `first` to `last` (numbered in the tract), as the log checks and decodes them."""
    if PER_TRACT_LOG:
        yield from log.read_tract(tract_id, first, last)
        return
    number = 0
    for record in log.read(1):  # type: ignore[attr-defined]
        if record.event.tract_id != tract_id:
            continue
        number += 1
        if last is not None and number > last:
            return
        if number >= first:
            yield record


def record_number(record: Record) -> int:
    """The record's number in its tract (per-tract log) or its place in the whole log (older log)."""
    return int(getattr(record, "number", None) or getattr(record, "position"))  # noqa: B009


def tract_ids(log: EventLog) -> list[str]:
    """Every tract in the log, in the order each was created."""
    if PER_TRACT_LOG:
        return log.tract_ids()
    seen: dict[str, None] = {}
    for record in log.read(1):  # type: ignore[attr-defined]
        seen.setdefault(record.event.tract_id, None)
    return list(seen)


def catch_up(analytics: Any, log: EventLog) -> None:
    """Bring an `Analytics` projection up to the log (through a global reader where the log has one)."""
    if not PER_TRACT_LOG:
        analytics.catch_up(log)
        return
    reader = log.global_reader()
    try:
        analytics.catch_up(reader)
    finally:
        reader.close()


def copy_tract(source: Path, tract_id: str, destination: Path, batch: int = 10_000) -> int:
    """Write the tract's events, unchanged, as the only tract of a new log; returns the record count."""
    reader = EventLog.open(source, readonly=True)
    writer = EventLog.open(destination, sync="batch")
    try:
        pending: list[Event] = []
        copied = 0
        for record in read_tract(reader, tract_id):
            pending.append(record.event)
            if len(pending) >= batch:
                append(writer, tract_id, pending)
                copied, pending = copied + len(pending), []
        if pending:
            append(writer, tract_id, pending)
            copied += len(pending)
        writer.flush()
        return copied
    finally:
        writer.close()
        reader.close()


# -- the files beside the log ---------------------------------------------------------------------


def file_bytes(path: Path) -> tuple[int, int]:
    """(apparent size, bytes allocated on disk) of a file, or of every file under a directory."""
    if not path.exists():
        return 0, 0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def disk_usage(directory: Path) -> dict[str, tuple[int, int]]:
    """The log and each projection file beside it: name -> (apparent bytes, allocated bytes)."""
    analytics = [file_bytes(directory / name) for name in ANALYTICS_FILES]
    return {
        "log": file_bytes(directory / LOG_FILE),
        "snapshot": file_bytes(directory / SNAPSHOT_FILE),
        "index": file_bytes(directory / INDEX_DIR),
        "analytics": (sum(a for a, _ in analytics), sum(b for _, b in analytics)),
    }


@contextmanager
def projections_aside(directory: Path) -> Iterator[None]:
    """Hide the snapshot or index (whichever the code keeps) so an open reads the whole log; restore it after."""
    moved: list[tuple[Path, Path]] = []
    for name in (SNAPSHOT_FILE, INDEX_DIR):
        path = directory / name
        if path.exists():
            aside = directory / (name + ".aside")
            path.rename(aside)
            moved.append((path, aside))
    try:
        yield
    finally:
        for path, aside in moved:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            aside.rename(path)


def remove_analytics(directory: Path) -> None:
    for name in ANALYTICS_FILES:
        (directory / name).unlink(missing_ok=True)

"""Data for the scale scenarios, built fast: many tracts in one directory, and single grown tracts.

Runs inside `scale_child.py`, against the checkout under measurement. Events
are written with the log directly (`workload.EventFactory`), except where
the public API is what is measured: the tracts of the many-tracts directory
that are timed while it grows go through `Tract.open` / `commit` / `close`.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from events import EventLog
from tract import Tract

import logapi
from workload import (
    START,
    ContentCache,
    EventFactory,
    apply_to_tract,
    check_written,
    iter_steps,
    text_pool,
    write_events,
    write_tract,
)

POOL_SEED = 5


def tract_name(index: int) -> str:
    return f"tract-{index:05d}"


def sample_starts(tracts: int, group: int) -> list[int]:
    """Where the timed groups of `group` tracts begin: the first tract, a quarter, half, three quarters, the last.

    Groups never overlap, and the last one ends with the directory's last tract."""
    starts: list[int] = []
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        start = max(0, min(round(share * tracts), tracts - group))
        if not starts or start >= starts[-1] + group:
            starts.append(start)
    return starts


def timed_tract(directory: Path, index: int, commits: int, pool: list[str]) -> tuple[float, float]:
    """One new tract through the public API: (seconds to open it, seconds to close it); commits not timed."""
    began = time.perf_counter()
    t = Tract.open(directory, tract_id=tract_name(index), sync="batch")
    opened = time.perf_counter() - began
    apply_to_tract(t, iter_steps(commits, seed=1000 + index, pool=pool))
    began = time.perf_counter()
    t.close()
    return opened, time.perf_counter() - began


def write_direct(directory: Path, indexes: range, commits: int, pool: list[str], contents: ContentCache) -> None:
    """Tracts written with the log directly, one atomic batch each (each its own start time, so its own hashes)."""
    log = EventLog.open(directory, sync="batch")
    try:
        for index in indexes:
            factory = EventFactory(tract_name(index), START + timedelta(days=1, seconds=index), contents)
            write_events(log, factory.tract_id, factory.events(iter_steps(commits, seed=1000 + index, pool=pool)))
        log.flush()
    finally:
        log.close()


def build_many(directory: str, tracts: int, commits: int, group: int) -> dict[str, Any]:
    """A directory of `tracts` tracts x `commits` commits, grown one tract after the other.

    The tracts of each sample group are written through the public API, each open and close
    timed; before a group, one writer open + close of the previous tract brings the snapshot or
    index up to date (as the previous tract's own close would have). The tracts between groups
    are written with the log directly: through the API the old code takes minutes for this.
    """
    path = Path(directory)
    pool = text_pool(POOL_SEED)
    contents = ContentCache()
    began = time.perf_counter()
    samples: list[dict[str, Any]] = []
    done = 0
    for start in sample_starts(tracts, group):
        if start > done:
            write_direct(path, range(done, start), commits, pool, contents)
            Tract.open(path, tract_id=tract_name(start - 1), sync="batch").close()
        timed = [timed_tract(path, index, commits, pool) for index in range(start, start + group)]
        samples.append({"before": start, "open": [o for o, _ in timed], "close": [c for _, c in timed]})
        done = start + group
    if done < tracts:  # sample_starts ends with the last tract; kept for safety
        write_direct(path, range(done, tracts), commits, pool, contents)
        Tract.open(path, tract_id=tract_name(tracts - 1), sync="batch").close()
    check_written(path, tract_name(tracts // 3))
    return {"samples": samples, "seconds": time.perf_counter() - began, "measured": tract_name(tracts // 3)}


def build_tract(directory: str, tract_id: str, commits: int, seed: int) -> dict[str, Any]:
    """One tract of `commits` workload commits, alone in a new log; then one writer open + close
    (untimed by the figures), which leaves the snapshot or index a real writer would."""
    path = Path(directory)
    began = time.perf_counter()
    events = write_tract(path, EventFactory(tract_id), iter_steps(commits, seed=seed, pool=text_pool(POOL_SEED)))
    written = time.perf_counter() - began
    check_written(path, tract_id)
    began = time.perf_counter()
    Tract.open(path, tract_id=tract_id, sync="batch").close()
    return {"events": events, "seconds": written, "first_open_close": time.perf_counter() - began}


def copy_tract(source: str, tract_id: str, destination: str) -> dict[str, Any]:
    """The tract's records, unchanged, as the only tract of a new log (then one writer open + close)."""
    copied = logapi.copy_tract(Path(source), tract_id, Path(destination))
    Tract.open(destination, tract_id=tract_id, sync="batch").close()
    return {"events": copied}

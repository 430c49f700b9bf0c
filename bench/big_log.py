"""The big log: one tract of a million commits (100,000 with --quick), written fast, then opened,
replayed, projected into analytics, queried, measured for memory and size."""

from __future__ import annotations

import cProfile
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from events import LOG_FILE, EventLog
from projections import CommitView
from projections.analytics import ANALYTICS_FILE, Analytics
from tract import Tract

import logapi
from floors import Floors
from report import Figure, Scale, collected, fmt, profiled, progress, timed, with_gc_disabled
from sqlite_store import SqliteHistory, count_tokens_raw
from workload import (
    SKIP_EVERY,
    START,
    TEXT_POOL,
    EventFactory,
    Step,
    check_factory,
    check_written,
    iter_steps,
    text_pool,
    write_tract,
)

QUERY = ("temperature", ">", 0.5)
BIG_TRACT = "bench-tract"


@dataclass
class BigLog:
    directory: Path
    sqlite_path: Path
    events: int
    commits: int
    build_seconds: float
    sqlite_build_seconds: float


def build_big_log(scale: Scale, root: Path) -> BigLog:
    """The same big workload twice: tract events appended in large batches, sqlite3 rows in one transaction."""
    pool = text_pool(seed=5)
    factory = EventFactory(BIG_TRACT)
    directory = root / "big"
    check_factory(root)
    progress(f"big log: writing {scale.big_commits:,} commits")
    began = time.perf_counter()
    events = write_tract(directory, factory, iter_steps(scale.big_commits, seed=6, pool=pool))
    build_seconds = time.perf_counter() - began
    check_written(directory, BIG_TRACT)
    progress(f"big log: {events:,} events in {build_seconds:.1f} s; loading the same rows into sqlite3")
    tokens = {text: factory.content("user", text)[2] for text in pool}
    store = SqliteHistory(root / "big.sqlite", synchronous="NORMAL", count_tokens=lambda text: tokens.get(text, 1))
    sqlite_seconds = timed(lambda: store.bulk_load(iter_steps(scale.big_commits, seed=6, pool=pool), START))
    store.close()
    return BigLog(directory, root / "big.sqlite", events, scale.big_commits, build_seconds, sqlite_seconds)


def open_readonly(directory: Path) -> float:
    """Seconds for Tract.open(readonly=True): the tract's records read and folded (or a snapshot loaded)."""
    collected()
    start = time.perf_counter()
    t = Tract.open(directory, readonly=True)
    elapsed = time.perf_counter() - start
    t.close()
    del t
    collected()
    return elapsed


def bench_open(scale: Scale, big: BigLog, floors: Floors) -> list[Figure]:
    replay = bench_replay(scale, big, floors)
    return [bench_projected_open(scale, big), replay]


def bench_replay(scale: Scale, big: BigLog, floors: Floors) -> Figure:
    """Opening without the files beside the log (snapshot or index), each run next to a sample of msgspec
    decoding alone: every record is scanned, checked and decoded."""
    rates: list[float] = []
    with logapi.projections_aside(big.directory):
        for run in range(scale.heavy_runs):
            progress(f"replay without snapshot or index, run {run + 1}/{scale.heavy_runs}")
            rates.append(big.events / open_readonly(big.directory))
            floors.sample_decoder()
    return Figure(
        f"full replay without snapshot or index ({big.events:,} events)", "rate", rates, 300_000, ">= 300,000/s",
        unit="events", floor=floors.msgspec_decode, floor_name="msgspec decode alone",
        note=(
            f"Tract.open(readonly=True) with neither snapshot nor index beside the log: frame scan, CRC and hash "
            "chain, msgpack decode, fold into the commit view. The log was written directly with EventLog.append in "
            f"batches of 10,000 valid events ({big.build_seconds:.1f} s; see EventFactory), {TEXT_POOL:,} distinct "
            "texts."
        ),
        diagnose=lambda: diagnose_open(big.directory, projected=False),
    )  # fmt: skip


def bench_projected_open(scale: Scale, big: BigLog) -> Figure:
    """Opening with the files a writer's close() leaves beside the log (a snapshot, or an index)."""
    progress("writing the snapshot or index (open as writer, close)")
    t = Tract.open(big.directory, sync="batch")
    close_seconds = timed(t.close)
    del t
    times: list[float] = []
    for run in range(scale.heavy_runs):
        progress(f"open with snapshot or index, run {run + 1}/{scale.heavy_runs}")
        times.append(open_readonly(big.directory))
    usage = logapi.disk_usage(big.directory)
    beside = "a snapshot" if usage["snapshot"][0] else "an index"
    size = usage["snapshot"][0] + usage["index"][0]
    return Figure(
        f"open {big.events:,}-event log with snapshot or index", "time", times, 0.5, "< 0.5 s",
        note=(
            f"Tract.open(readonly=True) with {beside} of {size / 1e6:,.1f} MB beside the log (written by close() in "
            f"{close_seconds:.1f} s). sqlite3 has nothing to load on open, so no comparison."
        ),
        diagnose=lambda: diagnose_open(big.directory, projected=True),
    )  # fmt: skip


def diagnose_open(directory: Path, *, projected: bool) -> str:
    def run(profiler: cProfile.Profile) -> None:
        profiler.enable()
        Tract.open(directory, readonly=True).close()
        profiler.disable()

    with nullcontext() if projected else logapi.projections_aside(directory):
        report = profiled(run)
        plain = open_readonly(directory)
        without_gc = with_gc_disabled(lambda: Tract.open(directory, readonly=True).close())
    return f"{report}\nwall time {plain:.2f} s; with the cyclic GC disabled {without_gc:.2f} s"


def bench_analytics(scale: Scale, big: BigLog, floors: Floors) -> list[Figure]:
    catch_up = bench_catch_up(scale, big, floors)
    return [bench_query(scale, big), catch_up]


def bench_catch_up(scale: Scale, big: BigLog, floors: Floors) -> Figure:
    """The DuckDB projection built from nothing, each run next to a sample of msgspec decoding alone."""
    times: list[float] = []
    decode_times: list[float] = []
    for run in range(scale.heavy_runs):
        progress(f"analytics catch-up, run {run + 1}/{scale.heavy_runs}")
        logapi.remove_analytics(big.directory)
        log = EventLog.open(big.directory, readonly=True)
        analytics = Analytics(big.directory / ANALYTICS_FILE)
        collected()
        times.append(timed(partial(logapi.catch_up, analytics, log)))
        analytics.close()
        log.close()
        decode_times.append(big.events / floors.sample_decoder())
    return Figure(
        f"analytics catch-up of {big.events:,} events",
        "time",
        times,
        5.0,
        "< 5 s",
        floor=decode_times,
        floor_name="msgspec decode alone",
        note=(
            f"projections.analytics.Analytics(path).catch_up(log) into a fresh analytics.duckdb. For reference, "
            f"sqlite3 executemany of the same rows in one transaction took {big.sqlite_build_seconds:.1f} s."
        ),
        diagnose=lambda: profiled(lambda p: profile_catch_up(p, big.directory)),
    )


def bench_query(scale: Scale, big: BigLog) -> Figure:
    """query_by_config through the public API once the projection is current, next to sqlite3's json_extract.

    A second, selective query (about 1% of the commits match) shows what the
    scan costs apart from turning every match into a CommitInfo.
    """
    progress("query_by_config once caught up")
    times: list[float] = []
    selective: list[float] = []
    field, operator, _ = QUERY
    with Tract.open(big.directory, sync="batch") as t:
        matches = len(t.query_by_config(*QUERY))  # also connects DuckDB and checks the projection is current
        few = len(t.query_by_config(field, operator, 0.99))
        for _ in range(scale.heavy_runs):
            collected()
            times.append(timed(partial(t.query_by_config, *QUERY)))
            selective.append(timed(partial(t.query_by_config, field, operator, 0.99)))
    sqlite: list[float] = []
    store = SqliteHistory(big.sqlite_path, synchronous="NORMAL", count_tokens=count_tokens_raw())
    for _ in range(scale.heavy_runs):
        collected()
        sqlite.append(timed(partial(store.query_by_config, *QUERY)))
    store.close()
    return Figure(
        f'query_by_config("temperature", ">", 0.5) over {big.commits:,} commits',
        "time",
        times,
        0.05,
        "< 50 ms",
        sqlite=sqlite,
        note=(
            f"{matches:,} matching commits, returned as CommitInfo. The same query with > 0.99 ({few:,} matches) "
            f"takes {fmt(statistics.median(selective), 'time')}: the scan, nearly without building results. "
            "sqlite3: SELECT * ... WHERE json_extract(generation_config, '$.temperature') > 0.5, rows as tuples."
        ),
        diagnose=lambda: profiled(lambda p: profile_query(p, big.directory)),
    )


def profile_catch_up(profiler: cProfile.Profile, directory: Path) -> None:
    path = directory / "profile.duckdb"
    path.unlink(missing_ok=True)
    log = EventLog.open(directory, readonly=True)
    analytics = Analytics(path)
    profiler.enable()
    logapi.catch_up(analytics, log)
    profiler.disable()
    analytics.close()
    log.close()
    path.unlink(missing_ok=True)


def profile_query(profiler: cProfile.Profile, directory: Path) -> None:
    with Tract.open(directory, sync="batch") as t:
        t.query_by_config(*QUERY)
        profiler.enable()
        t.query_by_config(*QUERY)
        profiler.disable()


def deep_size(value: object, seen: set[int]) -> int:
    """Bytes of a JSON-like value and everything in it, counting objects already in `seen` once."""
    if value is None or isinstance(value, bool) or id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(key, seen) + deep_size(item, seen) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        size += sum(deep_size(item, seen) for item in value)
    return size


def fold_under_tracemalloc(directory: Path, events: int) -> tuple[CommitView, int]:
    """Fold the first `events` events into a fresh CommitView; returns it and the bytes it holds."""
    log = EventLog.open(directory, readonly=True)
    try:
        collected()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        view = CommitView()
        view.apply_records(logapi.read_tract(log, BIG_TRACT, 1, events))
        collected()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return view, held
    finally:
        log.close()


def bench_memory(scale: Scale, big: BigLog) -> Figure:
    """Python heap the commit view keeps per commit, measured with tracemalloc, content payloads subtracted."""
    events = scale.memory_commits * (SKIP_EVERY + 1) // SKIP_EVERY
    progress(f"memory: folding {events:,} events under tracemalloc")
    view, held = fold_under_tracemalloc(big.directory, events)
    commits = len(view.state.commits)
    seen: set[int] = set()
    content = sum(deep_size(stored_content(stored), seen) for stored in view.state.commits.values())
    per_commit = (held - content) / commits
    return Figure(
        "memory per commit in the commit view, content excluded", "bytes", [per_commit], 500, "< 500 B",
        note=(
            f"tracemalloc: bytes still allocated after decoding and folding the first {events:,} events "
            f"({commits:,} commits, the rest SKIP annotations) of the big log into a fresh projections.CommitView, "
            f"minus the deep size of the content payload dicts ({content / commits:,.0f} B per commit), divided by "
            "the commits. Python heap, not RSS. sqlite3 keeps nothing resident per row, so no comparison."
        ),
        diagnose=lambda: memory_breakdown(view),
    )  # fmt: skip


def stored_content(stored: object) -> object:
    """The content payload a commit view entry holds (None once the view leaves content in the log)."""
    return getattr(getattr(stored, "event", None), "content", None)


def memory_breakdown(view: CommitView) -> str:
    """Average bytes per commit by what holds them (each shared object counted once, where first seen)."""
    commits = view.state.commits
    seen: set[int] = set()
    parts: dict[str, int] = {"dict slot in ViewState.commits": sys.getsizeof(commits)}
    for stored in commits.values():
        event = getattr(stored, "event", None)
        deep_size(stored_content(stored), seen)  # excluded from the figure: mark as seen, do not count
        shells = {"StoredCommit": stored, "CommitCreated struct": event}
        for name, obj in shells.items():
            parts[name] = parts.get(name, 0) + (sys.getsizeof(obj) if id(obj) not in seen else 0)
            seen.add(id(obj))
        for name in ("commit_hash", "parent_hash", "content_hash", "tract_id", "tokenizer", "content_type",
                     "operation", "response_to", "created_at", "generation_config", "metadata"):  # fmt: skip
            value = getattr(event, name, None)
            size = sys.getsizeof(value) if value is not None and id(value) not in seen else 0
            if name == "generation_config":
                size = deep_size(value, seen)
            seen.add(id(value))
            parts[name] = parts.get(name, 0) + size
    lines = [f"average bytes per commit over {len(commits):,} commits (sys.getsizeof, shared objects once):"]
    total = sum(parts.values())
    for name, size in sorted(parts.items(), key=lambda item: -item[1]):
        lines.append(f"  {size / len(commits):7.1f} B  {size / total:6.1%}  {name}")
    lines.append(f"  {total / len(commits):7.1f} B  total (tracemalloc also sees annotations and allocator slack)")
    return "\n".join(lines)


def log_size_figure(big: BigLog, batch_log: Path, batch_steps: Sequence[Step]) -> Figure:
    store = SqliteHistory(big.sqlite_path, synchronous="NORMAL", count_tokens=count_tokens_raw())
    sqlite_bytes = store.size_bytes()
    store.close()
    log_bytes = (big.directory / LOG_FILE).stat().st_size
    commits_in_batch = sum(step.kind != "skip" for step in batch_steps)
    batch_per_commit = (batch_log / LOG_FILE).stat().st_size / commits_in_batch
    return Figure(
        "log size on disk per commit", "bytes", [log_bytes / big.commits], sqlite=[sqlite_bytes / big.commits],
        note=(
            f"events.log of the big log ({log_bytes / 1e6:,.0f} MB for {big.commits:,} commits, SKIP annotations "
            f"included; snapshot and analytics.duckdb not counted); the log written through Tract.commit in the "
            f"batch run: {batch_per_commit:,.0f} B per commit. sqlite3: database after a WAL checkpoint."
        ),
    )  # fmt: skip

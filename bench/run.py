"""Benchmark tract side by side with its floor and with the obvious sqlite3 alternative.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/run.py             # full run: a 1,000,000-commit log, a few minutes
    .venv/bin/python bench/run.py --quick     # 100,000 commits and fewer runs: under a minute
    .venv/bin/python bench/run.py --profile   # also cProfile every figure that misses its target
    .venv/bin/python bench/run.py --code DIR  # measure the checkout in DIR (e.g. a worktree of an older commit)

The many-tracts and grown-tract scenarios, which compare two checkouts side
by side, are in `bench/scale.py`.

Every figure is measured on the same generated workload three ways:

- tract, through its public API (plus `events.EventLog` / `projections.*`
  where a figure is about one layer, e.g. the analytics catch-up; see
  `logapi.py` for the log calls, which work on the code before and after
  the per-tract storage);
- the floor: what the hardware and the libraries tract builds on can do at
  best (a raw write+fdatasync loop, raw tiktoken, raw msgspec);
- the obvious alternative: stdlib sqlite3, one row per commit with a JSON
  config column, WAL mode, one INSERT + COMMIT per commit, json_extract
  queries, and the whole history re-read on every compile.

Values are medians of several runs. Ratios are oriented so that > 1 always
means tract does better ("x faster" or "x smaller"). Everything lives in one
temporary directory (honours $TMPDIR) that is deleted at exit: nothing is
cached between runs. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import codepath

codepath.use(codepath.code_argument(sys.argv[1:]))  # before anything imports the library

from events import LOG_FILE, SyncMode  # noqa: E402
from tract import DialogueContent, Tract  # noqa: E402

from big_log import bench_analytics, bench_memory, bench_open, build_big_log, log_size_figure  # noqa: E402
from cold_start import bench_cold_start  # noqa: E402
from floors import Floors, floors_table, fsync_loop_rate  # noqa: E402
from report import LOAD_AT_START, Figure, Scale, collected, fmt, profiled, progress, table, timed  # noqa: E402
from sqlite_store import SqliteHistory, count_tokens_raw  # noqa: E402
from workload import (  # noqa: E402  # noqa: E402
    ENCODING,
    SKIP_EVERY,
    WORDS_PER_TEXT,
    EventFactory,
    Step,
    apply_to_tract,
    iter_steps,
    make_steps,
    text_pool,
)

FULL = Scale("full", 5, 3, 1_000, 20_000, 400, 1_000_000, 100_000, 20_000)
QUICK = Scale("quick", 3, 2, 200, 5_000, 100, 100_000, 20_000, 5_000)
CONTEXT_SIZES = (10, 10_000)


# -- commit throughput ---------------------------------------------------------------------------


def tract_commit_run(directory: Path, steps: Sequence[Step], sync: SyncMode) -> tuple[float, float]:
    """(calls/s, mean bytes per log record) for the workload on a fresh log; open and close are not timed."""
    with Tract.open(directory, sync=sync) as t:
        collected()
        rate = len(steps) / timed(lambda: apply_to_tract(t, steps))
    return rate, (directory / LOG_FILE).stat().st_size / (len(steps) + 1)


def sqlite_commit_run(path: Path, steps: Sequence[Step], synchronous: str) -> float:
    store = SqliteHistory(path, synchronous=synchronous, count_tokens=count_tokens_raw())
    try:
        collected()
        return len(steps) / timed(lambda: store.apply(steps))
    finally:
        store.close()


def bench_commits(scale: Scale, root: Path, batch_steps: Sequence[Step], floors: Floors) -> list[Figure]:
    return [bench_commit_always(scale, root, floors), bench_commit_batch(scale, root, batch_steps, floors)]


def bench_commit_always(scale: Scale, root: Path, floors: Floors) -> Figure:
    """Each run interleaves tract, the fsync loop and sqlite3, so a change in disk load hits all three alike."""
    steps = make_steps(scale.always_commits, seed=2)
    rates: list[float] = []
    sqlite: list[float] = []
    record_sizes: list[float] = []
    for run in range(scale.runs):
        progress(f'commit sync="always", run {run + 1}/{scale.runs}')
        rate, record_size = tract_commit_run(root / f"always-{run}", steps, "always")
        rates.append(rate)
        record_sizes.append(record_size)
        floors.fsync.append(fsync_loop_rate(root / f"fsync-{run}", len(steps), round(record_size)))
        sqlite.append(sqlite_commit_run(root / f"always-{run}.sqlite", steps, "FULL"))
    target = 0.8 * statistics.median(floors.fsync)
    return Figure(
        'commit, sync="always"', "rate", rates, target, f">= 0.8 x floor ({target:,.0f}/s)", unit="commits",
        sqlite=sqlite, floor=floors.fsync, floor_name="write+fdatasync loop",
        note=(
            f"{scale.always_commits:,} commits of ~{WORDS_PER_TEXT} words with a generation config, 10% edits, "
            f"+{100 / SKIP_EVERY:.0f}% annotate(SKIP) calls (counted as calls); open/close not timed. Floor: the same "
            f"number of {statistics.median(record_sizes):,.0f}-byte appends (tract's mean record) each followed by "
            "os.fdatasync, as tract does. sqlite3: WAL, synchronous=FULL."
        ),
        diagnose=lambda: profiled(lambda p: profile_commits(p, root / "profile-always", steps, "always")),
    )  # fmt: skip


def bench_commit_batch(scale: Scale, root: Path, steps: Sequence[Step], floors: Floors) -> Figure:
    """No fsync in the way: this is the CPU cost of a commit, next to tiktoken's share of it."""
    rates: list[float] = []
    sqlite: list[float] = []
    for run in range(scale.runs):
        progress(f'commit sync="batch", run {run + 1}/{scale.runs}')
        rates.append(tract_commit_run(root / f"batch-{run}", steps, "batch")[0])
        sqlite.append(sqlite_commit_run(root / f"batch-{run}.sqlite", steps, "NORMAL"))
        floors.sample_tokenizer_and_encoder()
    return Figure(
        'commit, sync="batch"', "rate", rates, 30_000, ">= 30,000/s", unit="commits",
        sqlite=sqlite, floor=floors.tiktoken, floor_name="tiktoken alone",
        note=(
            f"{scale.batch_commits:,} commits, same mix; config validated and stored, tokens counted with tiktoken "
            f"{ENCODING}. Floor: raw tiktoken encode of the same texts (every commit must tokenize; msgspec encode "
            f"alone runs at {statistics.median(floors.msgspec_encode):,.0f} events/s). sqlite3: WAL, "
            "synchronous=NORMAL (no fsync per COMMIT), tokens counted too."
        ),
        diagnose=lambda: profiled(lambda p: profile_commits(p, root / "profile-batch", steps, "batch")),
    )  # fmt: skip


def profile_commits(profiler: cProfile.Profile, directory: Path, steps: Sequence[Step], sync: SyncMode) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    with Tract.open(directory, sync=sync) as t:
        profiler.enable()
        apply_to_tract(t, steps)
        profiler.disable()


# -- compile -------------------------------------------------------------------------------------


def open_context(directory: Path, commits: int) -> Tract:
    t = Tract.open(directory, sync="batch")
    apply_to_tract(t, make_steps(commits, seed=3))
    t.compile()
    return t


def bench_compile(scale: Scale, root: Path) -> list[Figure]:
    """compile() right after one append, on a small and a large context, interleaved; then a cold compile."""
    appends = [step for step in make_steps(scale.compile_samples * 2, seed=4) if step.kind == "commit"]
    appends = appends[: scale.compile_samples]
    progress(f"compile: building contexts of {' and '.join(f'{n:,}' for n in CONTEXT_SIZES)} commits")
    tracts = {n: open_context(root / f"context-{n}", n) for n in CONTEXT_SIZES}
    stores: dict[int, SqliteHistory] = {}
    for n in CONTEXT_SIZES:
        stores[n] = SqliteHistory(root / f"context-{n}.sqlite", synchronous="NORMAL", count_tokens=count_tokens_raw())
        stores[n].apply(make_steps(n, seed=3))
    hot: dict[int, list[float]] = {n: [] for n in CONTEXT_SIZES}
    hot_sqlite: dict[int, list[float]] = {n: [] for n in CONTEXT_SIZES}
    progress(f"compile after one append: {len(appends)} samples per size")
    collected()
    for index, step in enumerate(appends):
        for n in CONTEXT_SIZES:
            tracts[n].commit(DialogueContent(role=step.role, text=step.text), generation_config=step.config)
            hot[n].append(timed(tracts[n].compile))
            if index % 4 == 0:  # the sqlite3 compile re-reads everything: fewer samples suffice
                stores[n].commit(step)
                hot_sqlite[n].append(timed(stores[n].compile))
    for t in tracts.values():
        t.close()

    small, large = CONTEXT_SIZES

    def diagnose(directory: Path) -> Callable[[], str]:
        return lambda: profiled(lambda p: profile_hot_compile(p, directory, appends))

    note = (
        f"median of {len(hot[large])} compile() calls, each right after one commit() (not timed) on a context built "
        f"from {large:,} (or {small}) workload commits with edits, skips and configs. sqlite3 re-reads and rebuilds "
        "the context from all rows."
    )
    figures = [
        Figure(
            f"compile after one append, {n:,} commits",
            "time",
            hot[n],
            50e-6,
            "< 50 us",
            sqlite=hot_sqlite[n],
            note=note if n == large else "",
            diagnose=diagnose(root / f"context-{n}"),
        )
        for n in CONTEXT_SIZES
    ]
    ratio = [statistics.median(hot[large]) / statistics.median(hot[small])]
    figures.append(Figure(f"compile {large:,} / compile {small} (same figure)", "ratio", ratio, 2.0, "<= 2x"))
    figures.append(bench_cold_compile(scale, root / f"context-{large}", stores[large]))
    for store in stores.values():
        store.close()
    return figures


def bench_cold_compile(scale: Scale, directory: Path, store: SqliteHistory) -> Figure:
    """The first compile() after reopening: history comes from the snapshot, tokens from the events."""
    times: list[float] = []
    sqlite: list[float] = []
    opens: list[float] = []
    for run in range(scale.runs):
        progress(f"cold compile, run {run + 1}/{scale.runs}")
        collected()
        start = time.perf_counter()
        t = Tract.open(directory, sync="batch")
        opens.append(time.perf_counter() - start)
        times.append(timed(t.compile))
        t.close()
        sqlite.append(timed(store.compile))
    return Figure(
        "cold compile of 10,000 commits after reopening", "time", times, 20e-3, "< 20 ms", sqlite=sqlite,
        note=(
            f"first compile() after Tract.open of the log closed with a snapshot; the open itself (median "
            f"{fmt(statistics.median(opens), 'time')}) is not included. sqlite3: the same compile on an open "
            "connection."
        ),
        diagnose=lambda: profiled(lambda p: profile_cold_compile(p, directory, scale.runs)),
    )  # fmt: skip


def profile_hot_compile(profiler: cProfile.Profile, directory: Path, appends: Sequence[Step]) -> None:
    with Tract.open(directory, sync="batch") as t:
        t.compile()
        for step in appends:
            t.commit(DialogueContent(role=step.role, text=step.text), generation_config=step.config)
            profiler.enable()
            t.compile()
            profiler.disable()


def profile_cold_compile(profiler: cProfile.Profile, directory: Path, runs: int) -> None:
    for _ in range(runs):
        with Tract.open(directory, sync="batch") as t:
            profiler.enable()
            t.compile()
            profiler.disable()


# -- putting it together -------------------------------------------------------------------------


def environment() -> str:
    """Where the numbers come from: machine, interpreter, library versions, and the checkout."""

    def command(*args: str) -> str:
        try:
            return subprocess.run(args, cwd=codepath.CODE, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    models = [line.split(":", 1)[1].strip() for line in command("lscpu").splitlines() if line.startswith("Model name")]
    cpu = models[0] if models else "?"
    head = command("git", "rev-parse", "--short", "HEAD")
    changes = command("git", "status", "--porcelain", "--", "events", "projections", "tract")
    checkout = (
        f"{codepath.CODE} (not a git checkout)" if head == "?" else head + (" + uncommitted changes" if changes else "")
    )
    libraries = ("msgspec", "duckdb", "tiktoken", "pydantic")
    versions = ", ".join(f"{name} {__import__(name).__version__}" for name in libraries)
    return "\n".join([
        f"date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {command('nproc')} CPUs ({cpu}), {platform.system()} {platform.release()}",
        f"python: {platform.python_version()}; {versions}; sqlite {sqlite3.sqlite_version}",
        f"tract code: {checkout}",
        f"temp dir: {tempfile.gettempdir()}",
        f"load average (1 min) at start {LOAD_AT_START:.1f}, at end {os.getloadavg()[0]:.1f}",
    ])  # fmt: skip


def run_all(scale: Scale, root: Path) -> tuple[list[Figure], Floors]:
    batch_steps = make_steps(scale.batch_commits, seed=1)
    factory = EventFactory("floor-tract")
    floor_events = [factory.event(step) for step in iter_steps(scale.floor_items, seed=8, pool=text_pool(seed=9))]
    texts = [step.text for step in batch_steps if step.kind != "skip"][: scale.floor_items]
    floors = Floors(texts, floor_events)

    figures = bench_commits(scale, root, batch_steps, floors)
    figures += bench_compile(scale, root)
    big = build_big_log(scale, root)
    figures += bench_open(scale, big, floors)
    figures += bench_analytics(scale, big, floors)
    figures.append(bench_cold_start(scale, root))
    figures.append(bench_memory(scale, big))
    figures.append(log_size_figure(big, root / "batch-0", batch_steps))
    return figures, floors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k-commit big log, fewer runs: under a minute")
    parser.add_argument("--profile", action="store_true", help="cProfile (or break down) every figure that misses")
    parser.add_argument("--code", metavar="DIR", help="the tract checkout to measure (default: this one)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="tract-bench-") as tmp:
        figures, floors = run_all(scale, Path(tmp))
        print(f"## tract benchmark ({scale.name} run)\n\n```\n{environment()}\n```\n")
        print(table(figures))
        print("\n### floors\n")
        print(floors_table(floors))
        missed = [figure for figure in figures if figure.met is False]
        print(f"\nmissed targets: {', '.join(figure.label for figure in missed) or 'none'}")
        if args.profile:
            for figure in missed:
                if figure.diagnose is not None:
                    progress(f"profiling: {figure.label}")
                    print(f"\n### {figure.label}: {fmt(figure.value, figure.kind, figure.unit)} "
                          f"(target {figure.target_text})\n\n```\n{figure.diagnose()}\n```")  # fmt: skip
    progress("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

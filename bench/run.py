"""Benchmark tract side by side with its floor and with the obvious sqlite3 alternative.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/run.py             # full run: a 1,000,000-commit log, a few minutes
    .venv/bin/python bench/run.py --quick     # 100,000 commits and fewer runs: under a minute
    .venv/bin/python bench/run.py --profile   # also cProfile every figure that misses its target

Every figure is measured on the same generated workload three ways:

- tract, through its public API (plus `events.EventLog` / `projections.*`
  where a figure is about one layer, e.g. the analytics catch-up);
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
import gc
import json
import os
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout, whatever else the environment has installed

import msgspec  # noqa: E402

from events import (  # noqa: E402
    LOG_FILE,
    AnnotationAdded,
    CommitCreated,
    Event,
    EventLog,
    Record,
    SyncMode,
    TractCreated,
    commit_hash,
    content_hash,
    expected_hashes,
)
from projections import SNAPSHOT_FILE, CommitView  # noqa: E402
from projections.analytics import ANALYTICS_FILE, Analytics  # noqa: E402
from tract import DialogueContent, Priority, Tract  # noqa: E402
from tract.content import ContentRegistry  # noqa: E402
from tract.tokens import SHIPPED_ENCODINGS, TiktokenCounter, load_encoding  # noqa: E402

ENCODING = "o200k_base"
QUERY = ("temperature", ">", 0.5)


# -- scale ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How much work one run does; --quick shrinks every knob but the 10 / 10,000 contexts."""

    name: str
    runs: int  # repetitions of the cheap figures
    heavy_runs: int  # repetitions of the figures over the big log
    always_commits: int  # commits per sync="always" run (each one waits for the disk)
    batch_commits: int  # commits per sync="batch" run
    compile_samples: int  # compile() timings per context size
    big_commits: int  # commits in the big log
    memory_commits: int  # commits folded under tracemalloc
    floor_items: int  # texts / events for the raw tiktoken and msgspec floors


FULL = Scale("full", 5, 3, 1_000, 20_000, 400, 1_000_000, 100_000, 20_000)
QUICK = Scale("quick", 3, 2, 200, 5_000, 100, 100_000, 20_000, 5_000)
CONTEXT_SIZES = (10, 10_000)


# -- the workload --------------------------------------------------------------------------------

WORDS = tuple(
    """the a of and to in is that it for on with as this be are from by at or was an not can but
    model context token window commit history message prompt reply agent tool call result config
    temperature sample answer question explain summarise function return value error retry budget
    because which when where there their about would could should into over after before only also
    first second next last every each more most less some many few other same different simple
    data file user system assistant request response stream batch cache event log snapshot replay
    query index table column row value number string list object field key path time date hour
    code test build deploy review change update fix bug issue feature design plan step goal task
    good better best fast slow small large new old right wrong clear short long final early late
    42 7 100 2024 3.5 0.8 v2 API JSON SQL HTTP URL ID""".split()
)
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "o3", "gemini-2.5-pro")
EFFORTS = ("low", "medium", "high")
WORDS_PER_TEXT = 50
EDIT_EVERY = 10  # every 10th commit edits a recent original
SKIP_EVERY = 25  # after every 25th commit, a recent original is annotated SKIP
RECENT = 50  # edits and skips pick their target among the last 50 originals
TEXT_POOL = 4096  # distinct texts in the big log (so its token counts can be cached)

StepKind = Literal["commit", "edit", "skip"]
Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Step:
    """One call of the workload: a commit, an edit of an earlier original, or a SKIP annotation.

    `target` is the ordinal (among commit and edit steps) of the original an
    edit replaces or a skip hides, so every store can map it to its own ids.
    """

    kind: StepKind
    role: Role
    text: str
    config: dict[str, Any] | None
    target: int = -1


def dialogue_text(rng: random.Random) -> str:
    """About 50 words of plain English-like prose: realistic for the BPE tokenizer."""
    return " ".join(rng.choices(WORDS, k=WORDS_PER_TEXT)).capitalize() + "."


def generation_config(rng: random.Random) -> dict[str, Any]:
    return {
        "model": rng.choice(MODELS),
        "temperature": round(rng.random(), 2),
        "top_p": round(rng.uniform(0.5, 1.0), 2),
        "extra": {"reasoning": {"effort": rng.choice(EFFORTS)}, "seed": rng.randrange(1 << 31)},
    }


def role_of(ordinal: int) -> Role:
    return "user" if ordinal % 2 == 0 else "assistant"


def iter_steps(commits: int, seed: int, pool: Sequence[str] | None = None) -> Iterator[Step]:
    """`commits` commit/edit steps (alternating user/assistant) with SKIP steps interleaved.

    A generator, so the big log never holds a million steps in memory; the
    same seed always yields the same steps, so tract and sqlite3 get the same data.
    """
    rng = random.Random(seed)
    originals: list[int] = []
    for ordinal in range(commits):
        text = rng.choice(pool) if pool else dialogue_text(rng)
        config = generation_config(rng)
        if ordinal % EDIT_EVERY == EDIT_EVERY - 1 and originals:
            target = rng.choice(originals[-RECENT:])
            yield Step("edit", role_of(target), text, config, target)
        else:
            originals.append(ordinal)
            yield Step("commit", role_of(ordinal), text, config)
        if ordinal % SKIP_EVERY == SKIP_EVERY - 1:
            yield Step("skip", "user", "", None, rng.choice(originals[-RECENT:]))


def make_steps(commits: int, seed: int) -> list[Step]:
    return list(iter_steps(commits, seed))


def text_pool(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [dialogue_text(rng) for _ in range(TEXT_POOL)]


def apply_to_tract(t: Tract, steps: Iterable[Step]) -> None:
    """The workload through the public API, exactly as an application would call it."""
    hashes: list[str] = []
    for step in steps:
        if step.kind == "skip":
            t.annotate(hashes[step.target], Priority.SKIP)
            continue
        edit = step.kind == "edit"
        info = t.commit(
            DialogueContent(role=step.role, text=step.text),
            operation="edit" if edit else "append",
            response_to=hashes[step.target] if edit else None,
            generation_config=step.config,
        )
        hashes.append(info.commit_hash)


# -- writing a big log fast ----------------------------------------------------------------------


class EventFactory:
    """The workload's events exactly as Tract.commit / Tract.annotate build them, minus the per-call work.

    Payloads come from `ContentRegistry.validate` and token counts from
    `TiktokenCounter` (cached per distinct text), hashes from `events.hashing`,
    timestamps one microsecond apart. So every event is one `Tract.commit`
    could have written; what is skipped is the per-call validation and one
    log append per commit, which is what makes a million commits take seconds.
    """

    def __init__(self, tract_id: str, start: datetime) -> None:
        self.tract_id = tract_id
        self._start = start
        self._tick = 0
        self._registry = ContentRegistry()
        self._counter = TiktokenCounter(ENCODING)
        self._contents: dict[tuple[Role, str], tuple[dict[str, Any], str, int]] = {}
        self.hashes: list[str] = []
        self._head: str | None = None

    def content(self, role: Role, text: str) -> tuple[dict[str, Any], str, int]:
        """(payload, content hash, token count) of one dialogue turn, computed once per distinct turn."""
        key = (role, text)
        cached = self._contents.get(key)
        if cached is None:
            content_type, payload = self._registry.validate(DialogueContent(role=role, text=text))
            tokens = self._counter.count_text(self._registry.render(content_type, payload).text)
            cached = self._contents[key] = (payload, content_hash(payload), tokens)
        return cached

    def _anchor(self) -> dict[str, str | None]:
        """Checkouts with branches anchor an annotation at the HEAD it was made on; older ones have no anchor."""
        return {"anchor": self._head} if "anchor" in AnnotationAdded.__struct_fields__ else {}

    def created(self) -> TractCreated:
        return TractCreated(tract_id=self.tract_id, created_at=self._start)

    def event(self, step: Step) -> CommitCreated | AnnotationAdded:
        self._tick += 1
        created_at = self._start + timedelta(microseconds=self._tick)
        if step.kind == "skip":
            return AnnotationAdded(
                tract_id=self.tract_id,
                created_at=created_at,
                target_hash=self.hashes[step.target],
                priority="skip",
                **self._anchor(),
            )
        payload, digest, tokens = self.content(step.role, step.text)
        operation: Literal["append", "edit"] = "edit" if step.kind == "edit" else "append"
        response_to = self.hashes[step.target] if step.kind == "edit" else None
        identity = commit_hash(
            content_hash=digest,
            parent_hash=self._head,
            content_type="dialogue",
            operation=operation,
            created_at=created_at,
            response_to=response_to,
        )
        event = CommitCreated(
            tract_id=self.tract_id,
            created_at=created_at,
            commit_hash=identity,
            parent_hash=self._head,
            content_hash=digest,
            content=payload,
            content_type="dialogue",
            operation=operation,
            response_to=response_to,
            token_count=tokens,
            tokenizer=self._counter.name,
            generation_config=step.config,
        )
        self.hashes.append(identity)
        self._head = identity
        return event


def write_big_log(directory: Path, factory: EventFactory, steps: Iterable[Step], batch: int = 10_000) -> int:
    """Append the workload's events with EventLog.append, `batch` events per atomic append; returns the event count."""
    log = EventLog.open(directory, sync="batch")
    try:
        pending: list[Event] = [factory.created()]
        for step in steps:
            pending.append(factory.event(step))
            if len(pending) >= batch:
                log.append(pending)
                pending = []
        if pending:
            log.append(pending)
        log.flush()
        return log.head_position
    finally:
        log.close()


def event_shape(event: Event) -> tuple[str, tuple[str, ...], str | None]:
    """What must match between the factory and Tract: event type, the fields it sets, the content hash."""
    fields = tuple(name for name in event.__struct_fields__ if getattr(event, name) is not None)
    return type(event).__name__, fields, getattr(event, "content_hash", None)


def check_factory(root: Path) -> None:
    """Refuse to benchmark a log Tract could not have written.

    The same steps go through a real Tract and through EventFactory; the
    events must have the same types, set the same fields and carry the same
    content hashes. This catches the library growing a new event or field
    (it is being edited concurrently) before a million stale events are written.
    """
    steps = make_steps(SKIP_EVERY, seed=10)
    directory = root / "factory-check"
    with Tract.open(directory, sync="batch") as t:
        apply_to_tract(t, steps)
        tract_id = t.tract_id
    log = EventLog.open(directory, readonly=True)
    try:
        real = [event_shape(record.event) for record in log.read(1)]
    finally:
        log.close()
    factory = EventFactory(tract_id, datetime(2025, 1, 1, tzinfo=timezone.utc))
    built = [event_shape(factory.created())] + [event_shape(factory.event(step)) for step in steps]
    for position, (want, got) in enumerate(zip(real, built, strict=False), 1):
        if want != got:
            raise RuntimeError(f"EventFactory is out of date at event {position}: Tract wrote {want}, factory {got}")
    if len(real) != len(built):
        raise RuntimeError(f"Tract wrote {len(real)} events for the check steps, EventFactory {len(built)}")


def check_big_log(directory: Path, sample: int = 2_000) -> None:
    """Every commit hash in a sample of the big log re-derives from its event, as an auditor would check."""
    log = EventLog.open(directory, readonly=True)
    try:
        for record in log.read(1, sample):
            event: Event = record.event
            if isinstance(event, CommitCreated) and expected_hashes(event) != (event.content_hash, event.commit_hash):
                raise RuntimeError(f"big log: wrong hashes at position {record.position}")
    finally:
        log.close()


@contextmanager
def snapshot_aside(directory: Path) -> Iterator[None]:
    """Hide the snapshot (if any) so an open replays the whole log; put it back afterwards."""
    snapshot, aside = directory / SNAPSHOT_FILE, directory / (SNAPSHOT_FILE + ".aside")
    moved = snapshot.exists()
    if moved:
        snapshot.rename(aside)
    try:
        yield
    finally:
        if moved:
            aside.rename(snapshot)


def remove_analytics(directory: Path) -> None:
    for suffix in ("", ".wal"):
        (directory / (ANALYTICS_FILE + suffix)).unlink(missing_ok=True)


# -- the sqlite3 alternative ---------------------------------------------------------------------

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    operation TEXT NOT NULL DEFAULT 'append',
    response_to INTEGER,
    token_count INTEGER NOT NULL,
    priority TEXT NOT NULL DEFAULT 'normal',
    generation_config TEXT,
    created_at TEXT NOT NULL
)"""
SQLITE_INSERT = (
    "INSERT INTO commits (id, parent_id, role, content, operation, response_to, token_count, "
    "generation_config, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQLITE_COMPARISONS = {"=": "=", "!=": "<>", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


class SqliteContext(NamedTuple):
    messages: list[dict[str, str]]
    configs: list[str]
    token_count: int


class SqliteHistory:
    """The same history kept the way most people would: one row per commit in stdlib sqlite3.

    WAL mode; `synchronous=FULL` matches tract's sync="always" (the WAL is
    fsynced at every COMMIT), `NORMAL` matches sync="batch" (no fsync per
    COMMIT). Token counts are computed with the same tiktoken encoding, the
    config is a JSON text column, a SKIP is an UPDATE, an edit is a row
    pointing at its target, and compile() re-reads the whole history.
    """

    def __init__(self, path: Path, *, synchronous: str, count_tokens: Callable[[str], int]) -> None:
        self._con = sqlite3.connect(path)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"PRAGMA synchronous={synchronous}")
        self._con.execute(SQLITE_SCHEMA)
        self._con.commit()
        self._count = count_tokens
        self._head: int | None = self._con.execute("SELECT max(id) FROM commits").fetchone()[0]
        self._role_tokens: dict[str, int] = {}
        self.ids: list[int] = []

    def apply(self, steps: Iterable[Step]) -> None:
        for step in steps:
            if step.kind == "skip":
                self._con.execute("UPDATE commits SET priority = 'skip' WHERE id = ?", (self.ids[step.target],))
                self._con.commit()
            else:
                self.commit(step)

    def commit(self, step: Step) -> None:
        edit = step.kind == "edit"
        cursor = self._con.execute(
            SQLITE_INSERT,
            (
                None,
                self._head,
                step.role,
                step.text,
                "edit" if edit else "append",
                self.ids[step.target] if edit else None,
                self._count(step.text),
                None if step.config is None else json.dumps(step.config),
                datetime.now(timezone.utc).isoformat(),
            ),
        )
        self._con.commit()
        assert cursor.lastrowid is not None
        self._head = cursor.lastrowid
        self.ids.append(cursor.lastrowid)

    def bulk_load(self, steps: Iterable[Step], start: datetime) -> None:
        """The same rows in one transaction (executemany): the fastest way to fill the table."""
        skipped: list[tuple[int]] = []

        def rows() -> Iterator[tuple[Any, ...]]:
            ordinal = 0
            for tick, step in enumerate(steps, 1):
                if step.kind == "skip":
                    skipped.append((step.target + 1,))
                    continue
                edit = step.kind == "edit"
                created_at = (start + timedelta(microseconds=tick)).isoformat()
                yield (ordinal + 1, ordinal or None, step.role, step.text, "edit" if edit else "append",
                       step.target + 1 if edit else None, self._count(step.text),
                       json.dumps(step.config), created_at)  # fmt: skip
                ordinal += 1

        with self._con:
            self._con.executemany(SQLITE_INSERT, rows())
            self._con.executemany("UPDATE commits SET priority = 'skip' WHERE id = ?", skipped)

    def compile(self) -> SqliteContext:
        """Messages with edits applied and skips left out, from a full re-read (there is no cache to keep)."""
        rows = self._con.execute(
            "SELECT id, role, content, operation, response_to, token_count, priority, generation_config "
            "FROM commits ORDER BY id"
        ).fetchall()
        slots: dict[int, int] = {}
        messages: list[dict[str, str]] = []
        tokens: list[int] = []
        configs: list[str] = []
        for row_id, role, content, operation, response_to, count, priority, config in rows:
            message_tokens = 3 + self._role(role) + count
            if operation == "edit":
                slot = slots.get(response_to)
                if slot is not None:
                    messages[slot] = {"role": role, "content": content}
                    tokens[slot] = message_tokens
                    configs[slot] = config or configs[slot]
            elif priority != "skip":
                slots[row_id] = len(messages)
                messages.append({"role": role, "content": content})
                tokens.append(message_tokens)
                configs.append(config or "{}")
        return SqliteContext(messages, configs, sum(tokens) + 3 if messages else 0)

    def query_by_config(self, field: str, operator: str, value: float) -> list[tuple[Any, ...]]:
        return self._con.execute(
            f"SELECT * FROM commits WHERE json_extract(generation_config, ?) {SQLITE_COMPARISONS[operator]} ? "
            "ORDER BY id",
            (f"$.{field}", value),
        ).fetchall()

    def size_bytes(self) -> int:
        """Database plus WAL, after checkpointing the WAL into the database."""
        self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(self._con.execute("PRAGMA database_list").fetchone()[2])
        wal = Path(str(path) + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def _role(self, role: str) -> int:
        count = self._role_tokens.get(role)
        if count is None:
            count = self._role_tokens[role] = self._count(role)
        return count

    def close(self) -> None:
        self._con.close()


# -- figures and their presentation --------------------------------------------------------------

Kind = Literal["rate", "time", "bytes", "ratio"]


@dataclass
class Figure:
    """One row of the table: tract's samples, the references' samples, and the target."""

    label: str
    kind: Kind
    samples: list[float]
    target: float | None = None
    target_text: str = "stated"
    unit: str = ""  # for rates: what is counted per second
    sqlite: list[float] | None = None
    floor: list[float] | None = None
    floor_name: str = ""
    note: str = ""
    diagnose: Callable[[], str] | None = None  # explains a miss (a profile, a breakdown); run with --profile

    @property
    def value(self) -> float:
        return statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.kind == "rate" else self.value <= self.target

    def better_by(self, reference: list[float] | None) -> float | None:
        """How many times better tract is than the reference's median (> 1: tract wins)."""
        if not reference:
            return None
        other = statistics.median(reference)
        return self.value / other if self.kind == "rate" else other / self.value

    def spread(self) -> str:
        """Runs, and ± half the interquartile range (half the range under 5 runs) relative to the median."""
        count = len(self.samples)
        if count < 2:
            return "1"
        if count >= 5:
            quartiles = statistics.quantiles(self.samples, n=4)
            width = quartiles[2] - quartiles[0]
        else:
            width = max(self.samples) - min(self.samples)
        return f"{count} (±{width / 2 / self.value:.0%})" if self.value else str(count)


def fmt(value: float, kind: Kind, unit: str = "") -> str:
    if kind == "rate":
        return f"{value:,.0f} {unit}/s".replace(" /s", "/s")
    if kind == "bytes":
        return f"{value:,.0f} B"
    if kind == "ratio":
        return f"{value:.2f}x"
    if value < 1e-3:
        return f"{value * 1e6:.1f} us"
    if value < 1.0:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def fmt_factor(factor: float | None) -> str:
    if factor is None:
        return "-"
    return f"{factor:.2f}x" if factor < 100 else f"{factor:,.0f}x"


def table(figures: Sequence[Figure]) -> str:
    """The results as a markdown table, with notes as numbered footnotes below it."""
    head = "| figure | tract | target | met | sqlite3 | vs sqlite3 | floor | vs floor | runs (spread) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    notes: list[str] = []
    for figure in figures:
        label = figure.label
        if figure.note:
            notes.append(figure.note)
            label += f" [{len(notes)}]"
        met = {True: "met", False: "**NOT MET**", None: "-"}[figure.met]
        sqlite = fmt(statistics.median(figure.sqlite), figure.kind, figure.unit) if figure.sqlite else "-"
        floor = fmt(statistics.median(figure.floor), figure.kind, figure.unit) if figure.floor else "-"
        if figure.floor:
            floor += f" ({figure.floor_name})"
        lines.append(
            f"| {label} | {fmt(figure.value, figure.kind, figure.unit)} | {figure.target_text} | {met} | {sqlite} "
            f"| {fmt_factor(figure.better_by(figure.sqlite))} | {floor} | {fmt_factor(figure.better_by(figure.floor))} "
            f"| {figure.spread()} |"
        )
    lines.append("")
    lines.append(
        "Medians. vs sqlite3 / vs floor: how many times better tract is (> 1: faster or smaller). Spread: ± half "
        "the interquartile range (half the range under 5 runs), relative to the median."
    )
    lines.extend(f"[{number}] {note}" for number, note in enumerate(notes, 1))
    return "\n".join(lines)


# -- measuring helpers ---------------------------------------------------------------------------

_STARTED = time.perf_counter()
LOAD_AT_START = os.getloadavg()[0]  # the machine is shared: say how busy it was


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def collected() -> None:
    """Free the previous measurement's garbage so it is not collected inside the next one."""
    gc.collect()


def count_tokens_raw() -> Callable[[str], int]:
    encoding = load_encoding(ENCODING)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


# -- profiling (--profile) -----------------------------------------------------------------------


def function_name(key: tuple[str, int, str]) -> str:
    """`package/module.py:function`, relative to the repo or site-packages; built-ins as cProfile names them."""
    filename, _, name = key
    if filename == "~":
        return name
    path = Path(filename)
    if path.is_relative_to(REPO) and ".venv" not in path.parts:
        return f"{path.relative_to(REPO)}:{name}"
    if "site-packages" in path.parts:
        return f"{Path(*path.parts[path.parts.index('site-packages') + 1 :])}:{name}"
    return f"{path.name}:{name}"


def summarize(stats: pstats.Stats, top: int = 12) -> str:
    """Top functions by cumulative and by own time, as shares of the profiled total."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1e-9
    rows = [
        (function_name(key), entry[1], entry[2], entry[3])
        for key, entry in raw.items()
        if "_lsprof.Profiler" not in key[2] and not key[0].endswith("bench/run.py")
    ]
    out = [f"profiled total {total:.3f} s", "top by cumulative time:"]
    for name, calls, _, cumulative in sorted(rows, key=lambda row: row[3], reverse=True)[:top]:
        out.append(f"  {cumulative / total:6.1%}  {cumulative:8.3f}s  {calls:>9,} calls  {name}")
    out.append("top by own time:")
    for name, calls, own, _ in sorted(rows, key=lambda row: row[2], reverse=True)[:top]:
        out.append(f"  {own / total:6.1%}  {own:8.3f}s  {calls:>9,} calls  {name}")
    return "\n".join(out)


def profiled(run: Callable[[cProfile.Profile], None]) -> str:
    """Run `run`, which enables the profiler around the part that matters, and summarize it."""
    profiler = cProfile.Profile()
    run(profiler)
    return summarize(pstats.Stats(profiler))


def with_gc_disabled(action: Callable[[], object]) -> float:
    """The same action's time without the cyclic GC: how much of it the collector costs."""
    collected()
    gc.disable()
    try:
        return timed(action)
    finally:
        gc.enable()
        collected()


# -- floors --------------------------------------------------------------------------------------


class Floors:
    """The raw libraries on the same data, sampled inside the loops of the figures they bound.

    The machine is shared: measuring a floor in the same minute as the figure
    it is compared with keeps the ratio honest when the load changes.
    """

    def __init__(self, texts: Sequence[str], events: Sequence[CommitCreated | AnnotationAdded]) -> None:
        self._texts = texts
        self._encode_text = load_encoding(ENCODING).encode
        self._records = [Record(position, bytes(32), event) for position, event in enumerate(events, 1)]
        self._encoder, self._decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(Record)
        self._bodies = [self._encoder.encode(record) for record in self._records]
        self.fsync: list[float] = []  # appends/s
        self.tiktoken: list[float] = []  # texts/s
        self.msgspec_encode: list[float] = []  # events/s
        self.msgspec_decode: list[float] = []  # events/s

    def sample_tokenizer_and_encoder(self) -> None:
        """Each result is dropped at once: a floor measures the library call, not what keeping results costs."""
        collected()
        texts, encode_text = self._texts, self._encode_text
        self.tiktoken.append(
            len(texts) / timed(lambda: _each(lambda text: encode_text(text, disallowed_special=()), texts))
        )
        self.msgspec_encode.append(len(self._records) / timed(lambda: _each(self._encoder.encode, self._records)))

    def sample_decoder(self) -> float:
        """msgspec decode, each record dropped at once (so the cyclic GC never runs); returns the rate (events/s)."""
        collected()
        self.msgspec_decode.append(len(self._bodies) / timed(lambda: _each(self._decoder.decode, self._bodies)))
        return self.msgspec_decode[-1]


def _each(call: Callable[[Any], object], items: Iterable[Any]) -> None:
    for item in items:
        call(item)


def fsync_loop_rate(path: Path, records: int, size: int) -> float:
    """Appends/s of a bare write + fdatasync loop (what sync="always" does per record, and nothing else)."""
    payload = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(records):
            os.write(fd, payload)
            os.fdatasync(fd)
        return records / (time.perf_counter() - start)
    finally:
        os.close(fd)


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


# -- the big log: open, replay, analytics, memory, size ------------------------------------------


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
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    factory = EventFactory("bench-tract", start)
    directory = root / "big"
    check_factory(root)
    progress(f"big log: writing {scale.big_commits:,} commits")
    began = time.perf_counter()
    events = write_big_log(directory, factory, iter_steps(scale.big_commits, seed=6, pool=pool))
    build_seconds = time.perf_counter() - began
    check_big_log(directory)
    progress(f"big log: {events:,} events in {build_seconds:.1f} s; loading the same rows into sqlite3")
    tokens = {text: factory.content("user", text)[2] for text in pool}
    store = SqliteHistory(root / "big.sqlite", synchronous="NORMAL", count_tokens=lambda text: tokens.get(text, 1))
    sqlite_seconds = timed(lambda: store.bulk_load(iter_steps(scale.big_commits, seed=6, pool=pool), start))
    store.close()
    return BigLog(directory, root / "big.sqlite", events, scale.big_commits, build_seconds, sqlite_seconds)


def open_readonly(directory: Path) -> float:
    """Seconds for Tract.open(readonly=True): the log is scanned and the commit view folded (or loaded)."""
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
    return [bench_snapshot_open(scale, big), replay]


def bench_replay(scale: Scale, big: BigLog, floors: Floors) -> Figure:
    """Opening without a snapshot, each run next to a sample of msgspec decoding alone."""
    rates: list[float] = []
    with snapshot_aside(big.directory):
        for run in range(scale.heavy_runs):
            progress(f"replay without snapshot, run {run + 1}/{scale.heavy_runs}")
            rates.append(big.events / open_readonly(big.directory))
            floors.sample_decoder()
    return Figure(
        f"full replay without snapshot ({big.events:,} events)", "rate", rates, 300_000, ">= 300,000/s",
        unit="events", floor=floors.msgspec_decode, floor_name="msgspec decode alone",
        note=(
            f"Tract.open(readonly=True) with no snapshot: frame scan, CRC and hash chain, msgpack decode, fold into "
            f"the commit view. The log was written directly with EventLog.append in batches of 10,000 valid events "
            f"({big.build_seconds:.1f} s; see EventFactory), {TEXT_POOL:,} distinct texts."
        ),
        diagnose=lambda: diagnose_open(big.directory, snapshot=False),
    )  # fmt: skip


def bench_snapshot_open(scale: Scale, big: BigLog) -> Figure:
    """Opening with the snapshot a writer's close() leaves behind."""
    progress("writing the snapshot (open as writer, close)")
    t = Tract.open(big.directory, sync="batch")
    snapshot_seconds = timed(t.close)
    del t
    times: list[float] = []
    for run in range(scale.heavy_runs):
        progress(f"open with snapshot, run {run + 1}/{scale.heavy_runs}")
        times.append(open_readonly(big.directory))
    size = (big.directory / SNAPSHOT_FILE).stat().st_size
    return Figure(
        f"open {big.events:,}-event log with snapshot", "time", times, 0.5, "< 0.5 s",
        note=(
            f"Tract.open(readonly=True) with a snapshot of {size / 1e6:,.0f} MB (written by close() in "
            f"{snapshot_seconds:.1f} s). sqlite3 has nothing to load on open, so no comparison."
        ),
        diagnose=lambda: diagnose_open(big.directory, snapshot=True),
    )  # fmt: skip


def diagnose_open(directory: Path, *, snapshot: bool) -> str:
    def run(profiler: cProfile.Profile) -> None:
        profiler.enable()
        Tract.open(directory, readonly=True).close()
        profiler.disable()

    with nullcontext() if snapshot else snapshot_aside(directory):
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
        remove_analytics(big.directory)
        log = EventLog.open(big.directory, readonly=True)
        analytics = Analytics(big.directory / ANALYTICS_FILE)
        collected()
        times.append(timed(partial(analytics.catch_up, log)))
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
    analytics.catch_up(log)
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
        view.apply_records(log.read(1, events))
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
    content = sum(deep_size(stored.event.content, seen) for stored in view.state.commits.values())
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


def memory_breakdown(view: CommitView) -> str:
    """Average bytes per commit by what holds them (each shared object counted once, where first seen)."""
    commits = view.state.commits
    seen: set[int] = set()
    parts: dict[str, int] = {"dict slot in ViewState.commits": sys.getsizeof(commits)}
    for stored in commits.values():
        event = stored.event
        deep_size(event.content, seen)  # excluded from the figure: mark as seen, do not count
        shells = {"StoredCommit": stored, "CommitCreated struct": event}
        for name, obj in shells.items():
            parts[name] = parts.get(name, 0) + (sys.getsizeof(obj) if id(obj) not in seen else 0)
            seen.add(id(obj))
        for name in ("commit_hash", "parent_hash", "content_hash", "tract_id", "tokenizer", "content_type",
                     "operation", "response_to", "created_at", "generation_config", "metadata"):  # fmt: skip
            value = getattr(event, name)
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


# -- cold start ----------------------------------------------------------------------------------

TRACT_CHILD = """
import time
start = time.perf_counter()
import json, sys
from tract import DialogueContent, Tract
spec = json.loads(sys.argv[1])
t = Tract.open(spec["directory"])
t.commit(DialogueContent(role="user", text=spec["text"]), generation_config=spec["config"])
t.compile()
elapsed = time.perf_counter() - start
t.close()
print(json.dumps({"elapsed": elapsed}))
"""

SQLITE_CHILD = """
import time
start = time.perf_counter()
import base64, datetime, gzip, json, sqlite3, sys
import tiktoken
spec = json.loads(sys.argv[1])
raw = gzip.decompress(open(spec["rank_file"], "rb").read())
ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
encoding = tiktoken.Encoding(name="o200k_base", pat_str=spec["pattern"], mergeable_ranks=ranks,
                             special_tokens=spec["special_tokens"])
con = sqlite3.connect(spec["directory"] + ".sqlite")
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=FULL")
con.execute(spec["schema"])
con.execute(spec["insert"], (None, None, "user", spec["text"], "append", None,
            len(encoding.encode(spec["text"], disallowed_special=())), json.dumps(spec["config"]),
            datetime.datetime.now(datetime.timezone.utc).isoformat()))
con.commit()
rows = con.execute("SELECT role, content, token_count, generation_config FROM commits ORDER BY id").fetchall()
elapsed = time.perf_counter() - start
con.close()
print(json.dumps({"elapsed": elapsed}))
"""


def child_spec(directory: Path) -> str:
    pattern, special_tokens, _ = SHIPPED_ENCODINGS[ENCODING]
    rng = random.Random(7)
    return json.dumps({
        "directory": str(directory), "text": dialogue_text(rng), "config": generation_config(rng),
        "rank_file": str(REPO / "tract" / "encodings" / f"{ENCODING}.tiktoken.gz"), "pattern": pattern,
        "special_tokens": special_tokens, "schema": SQLITE_SCHEMA, "insert": SQLITE_INSERT,
    })  # fmt: skip


def run_child(source: str, directory: Path) -> tuple[float, float]:
    """(seconds from before the first import to after the first compile, wall seconds of the whole process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", source, child_spec(directory)],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    return json.loads(done.stdout.strip().splitlines()[-1])["elapsed"], wall


def bench_cold_start(scale: Scale, root: Path) -> Figure:
    """A new process per run: import cost and encoding load are what a CLI or a serverless call pays."""
    times: list[float] = []
    sqlite: list[float] = []
    walls: list[float] = []
    bare: list[float] = []
    for run in range(scale.runs):
        progress(f"cold start, run {run + 1}/{scale.runs}")
        elapsed, wall = run_child(TRACT_CHILD, root / f"cold-{run}")
        times.append(elapsed)
        walls.append(wall)
        sqlite.append(run_child(SQLITE_CHILD, root / f"cold-{run}")[0])
        bare.append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)))
    return Figure(
        "cold start: import, open new log, commit, compile", "time", times, 0.5, "< 0.5 s", sqlite=sqlite,
        note=(
            "a fresh `python -c` process: time from before `import tract` to after the first compile() (new log "
            f"directory, sync=\"always\"). Whole-process wall time {fmt(statistics.median(walls), 'time')}, of "
            f"which {fmt(statistics.median(bare), 'time')} is a bare interpreter start. sqlite3: import sqlite3 + "
            "tiktoken, load the same shipped o200k rank file (without tract's SHA-256 check), create the table, "
            "one INSERT + COMMIT (synchronous=FULL), one SELECT."
        ),
        diagnose=lambda: diagnose_cold_start(root),
    )  # fmt: skip


def diagnose_cold_start(root: Path) -> str:
    """cProfile of the child, plus the slowest imports (python -X importtime)."""
    profile_path = root / "cold.prof"
    script = root / "cold_child.py"
    script.write_text(TRACT_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile_path), str(script), child_spec(root / "cold-profile")],
        cwd=REPO, env=env, capture_output=True, check=True,
    )  # fmt: skip
    report = summarize(pstats.Stats(str(profile_path)))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", TRACT_CHILD, child_spec(root / "cold-importtime")],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    imports: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            if len(name) - len(name.lstrip()) <= 3:  # imported directly by the child or by tract's packages
                imports.append((int(cumulative), name.strip()))
    slowest = sorted(imports, reverse=True)[:10]
    lines = [f"  {us / 1e3:7.1f} ms  {name}" for us, name in slowest]
    return report + "\nslowest top-level imports (-X importtime, cumulative):\n" + "\n".join(lines)


# -- putting it together -------------------------------------------------------------------------


def environment() -> str:
    """Where the numbers come from: machine, interpreter, library versions, and the checkout."""

    def command(*args: str) -> str:
        try:
            return subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    models = [line.split(":", 1)[1].strip() for line in command("lscpu").splitlines() if line.startswith("Model name")]
    cpu = models[0] if models else "?"
    head = command("git", "rev-parse", "--short", "HEAD")
    changes = command("git", "status", "--porcelain", "--", "events", "projections", "tract")
    checkout = f"{REPO} (not a git checkout)" if head == "?" else head + (" + uncommitted changes" if changes else "")
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


def floors_table(floors: Floors) -> str:
    rows = [
        ("write + fdatasync loop (tract-sized records)", floors.fsync, "appends"),
        (f"tiktoken {ENCODING} encode (workload texts)", floors.tiktoken, "texts"),
        ("msgspec msgpack encode (log records of workload events)", floors.msgspec_encode, "events"),
        ("msgspec msgpack decode (same records)", floors.msgspec_decode, "events"),
    ]
    lines = ["| floor | median | runs |", "|---|---|---|"]
    for name, samples, unit in rows:
        lines.append(f"| {name} | {fmt(statistics.median(samples), 'rate', unit)} | {len(samples)} |")
    return "\n".join(lines)


def run_all(scale: Scale, root: Path) -> tuple[list[Figure], Floors]:
    batch_steps = make_steps(scale.batch_commits, seed=1)
    factory = EventFactory("floor-tract", datetime(2025, 1, 1, tzinfo=timezone.utc))
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

"""Figures, their table, and the helpers that measure and profile them."""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import codepath


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


# -- profiling (--profile) -----------------------------------------------------------------------


def function_name(key: tuple[str, int, str]) -> str:
    """`package/module.py:function`, relative to the repo or site-packages; built-ins as cProfile names them."""
    filename, _, name = key
    if filename == "~":
        return name
    path = Path(filename)
    for root in (codepath.CODE, codepath.REPO):
        if path.is_relative_to(root) and ".venv" not in path.parts:
            return f"{path.relative_to(root)}:{name}"
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
        if "_lsprof.Profiler" not in key[2] and not key[0].startswith(str(codepath.BENCH))
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

"""The scale benchmark's figures: from the steps' raw samples to rows with targets, and their table."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["time", "bytes", "ratio", "share"]
Raw = dict[str, dict[str, Any]]
MiB = 1024 * 1024


@dataclass
class Row:
    """One figure for every checkout; lower is better for every kind here. `targets` overrides `target`
    per checkout (when the bar is the same checkout's own figure, e.g. close's peak vs open's)."""

    label: str
    kind: Kind
    values: dict[str, float]
    target: float | None = None
    target_text: str = "-"
    targets: dict[str, float] = field(default_factory=dict)

    def met(self, name: str) -> bool | None:
        bar = self.targets.get(name, self.target)
        if bar is None or name not in self.values:
            return None
        return self.values[name] <= bar

    def as_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "target": self.target, "target_text": self.target_text,
                "values": self.values, "met": {name: self.met(name) for name in names}}  # fmt: skip


def merge(first: Any, second: Any) -> Any:
    """Two runs of a step as one: lists of samples joined, dicts merged key by key, other values from the first."""
    if isinstance(first, dict) and isinstance(second, dict):
        return {key: merge(first[key], second[key]) if key in second else first[key] for key in first}
    if isinstance(first, list) and isinstance(second, list):
        return first + second
    return first


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def fmt(value: float, kind: Kind) -> str:
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "bytes":
        if abs(value) >= MiB:
            return f"{value / MiB:,.1f} MiB"
        return f"{value:,.0f} B"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1.0:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


# -- rows per scenario ---------------------------------------------------------------------------


def _per(raw: Raw, names: Sequence[str], key: str, pick: Callable[[Any], float]) -> dict[str, float]:
    """pick(raw result of `key`) for every checkout that has it."""
    return {name: pick(raw[name][key]) for name in names if key in raw[name]}


def _ratio(top: dict[str, float], bottom: dict[str, float]) -> dict[str, float]:
    return {name: top[name] / bottom[name] for name in top if bottom.get(name)}


def open_close(sample: dict[str, Any]) -> float:
    """Median open + close of the tracts timed at one point while the directory grew."""
    return median([o + c for o, c in zip(sample["open"], sample["close"], strict=True)])


def many_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any], notes: list[str]) -> list[Row]:
    tracts = sizes["tracts"]
    first = _per(raw, names, "many", lambda built: open_close(built["samples"][0]))
    last = _per(raw, names, "many", lambda built: open_close(built["samples"][-1]))
    rows = [
        Row("building: open + close of the first tract", "time", first),
        Row(f"building: open + close of the last tracts (~{tracts:,} in the directory)", "time", last),
        Row("building: last / first", "ratio", _ratio(last, first), 2.0, "<= 2x"),
    ]
    for name in names:
        if "many" in raw[name]:
            built = raw[name]["many"]
            curve = ", ".join(f"{s['before']:,}: {fmt(open_close(s), 'time')}"
                              for s in built["samples"])  # fmt: skip
            notes.append(f"{name}: directory of {tracts:,} tracts x {sizes['commits']} commits built in "
                         f"{built['seconds']:.1f} s; open + close of a new tract, by tracts already there: "
                         f"{curve}")  # fmt: skip
    if not any("open_compile" in raw[name] for name in names):
        return rows
    for mode, text in (("writer", "writer open + compile + close"), ("reader", "read-only open + compile")):
        among = _per(raw, names, "open_compile", lambda r, m=mode: median(r["many"][m]))
        alone = _per(raw, names, "open_compile", lambda r, m=mode: median(r["alone"][m]))
        rows += [
            Row(f"{text}, one {sizes['commits']}-commit tract among {tracts:,}", "time", among),
            Row(f"{text}, the same tract alone", "time", alone),
            Row(f"{text}: among {tracts:,} / alone", "ratio", _ratio(among, alone), 2.0, "<= 2x"),
        ]
    rows.append(Row(f"RSS growth of that writer open, among {tracts:,}", "bytes",
                    _per(raw, names, "open_compile", lambda r: median(r["many"]["rss_open"]))))  # fmt: skip
    rows.append(Row("RSS growth of that writer open, alone", "bytes",
                    _per(raw, names, "open_compile", lambda r: median(r["alone"]["rss_open"]))))  # fmt: skip
    for name in names:
        if "open_compile" in raw[name]:
            r = raw[name]["open_compile"]
            parts = "; ".join(f"{where}: open {fmt(median(r[where]['writer_open']), 'time')}, "
                              f"close {fmt(median(r[where]['writer_close']), 'time')}"
                              for where in ("many", "alone"))  # fmt: skip
            notes.append(f"{name}: writer open and close within open + compile + close ({len(r['many']['writer'])} "
                         f"runs each) -- {parts}")  # fmt: skip
    return rows


def grown_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any], notes: list[str]) -> list[Row]:
    commits = sizes["grown"]
    open_peak = _per(raw, names, "rss", lambda r: median(r["open_peak"]))
    rows = [
        Row(f"RSS per commit after a writer open of a {commits:,}-commit tract", "bytes",
            _per(raw, names, "rss", lambda r: median(r["per_commit"])), 300, "<= 300 B"),
        Row("RSS growth of that open", "bytes", _per(raw, names, "rss", lambda r: median(r["after_open"]))),
        Row("peak RSS during open (above the baseline)", "bytes", open_peak),
        Row("peak RSS during close (above the baseline)", "bytes",
            _per(raw, names, "rss", lambda r: median(r["close_peak"])), None, "<= open's peak", targets=open_peak),
    ]  # fmt: skip
    for name in names:
        if "rss" in raw[name]:
            r, built = raw[name]["rss"], raw[name]["grown_build"]
            notes.append(f"{name}: fresh process, baseline (imports + tokenizer) "
                         f"{fmt(median(r['baseline']), 'bytes')}; open {fmt(median(r['open_seconds']), 'time')}, "
                         f"close {fmt(median(r['close_seconds']), 'time')} "
                         f"(close's own rise above RSS before it: {fmt(median(r['close_extra']), 'bytes')}); "
                         f"{built['events']:,} events written directly in {built['seconds']:.1f} s")  # fmt: skip
    return rows


def open_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any], notes: list[str]) -> list[Row]:
    rows = [
        Row(f"read-only open of a {sizes['big']:,}-commit tract, fresh process", "time",
            _per(raw, names, "fresh", lambda r: median(r["open"])), 0.270, "<= 270 ms"),
        Row(f"read-only open of a {sizes['small']:,}-commit tract, in-process", "time",
            _per(raw, names, "inprocess", lambda r: median(r["reader"])), 0.005, "<= 5 ms"),
        Row(f"writer open of a {sizes['small']:,}-commit tract, in-process", "time",
            _per(raw, names, "inprocess", lambda r: median(r["writer"])), 0.005, "<= 5 ms"),
    ]  # fmt: skip
    for name in names:
        if "fresh" in raw[name]:
            r = raw[name]["fresh"]
            notes.append(f"{name}: fresh process ({len(r['open'])} runs): imports {fmt(median(r['imports']), 'time')}, "
                         f"tokenizer load {fmt(median(r['tokenizer']), 'time')}, then the open; "
                         "launch to open returned "
                         f"{fmt(median(r['start_to_open']), 'time')}")  # fmt: skip
    return rows


def query_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any], notes: list[str]) -> list[Row]:
    steady = _per(raw, names, "query", lambda r: median(r["steady"]))
    first = _per(raw, names, "query", lambda r: median(r["reader_first"]))
    rows = [
        Row(f"query_by_config, writer's steady call ({sizes['big']:,} commits)", "time", steady),
        Row("query_by_config, first call of a read-only open", "time", first),
        Row("query_by_config: read-only first / writer steady", "ratio", _ratio(first, steady), 2.0, "<= 2x"),
    ]
    for name in names:
        if "query" in raw[name]:
            r = raw[name]["query"]
            notes.append(f"{name}: query_by_config(\"temperature\", \">\", 0.5) returns {r['matches']:,} commits; the "
                         "writer's first call (projection caught up from nothing) took "
                         f"{fmt(r['writer_first'][0], 'time')}")  # fmt: skip
    return rows


def disk_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any], notes: list[str]) -> list[Row]:
    def share(where: str, files: Sequence[str], column: int) -> Callable[[Any], float]:
        return lambda usage: sum(usage[where][f][column] for f in files) / usage[where]["log"][column]

    labels = {"many": f"{sizes['tracts']:,} tracts", "grown": f"{sizes['grown']:,}-commit tract",
              "big": f"{sizes['big']:,}-commit tract"}  # fmt: skip
    rows: list[Row] = []
    present = [where for where in labels if any(where in raw[n].get("disk", {}) for n in names)]
    for where in present:
        have = [n for n in names if where in raw[n].get("disk", {})]
        rows.append(Row(f"snapshot or index / log, {labels[where]} (bytes on disk)", "share",
                        _per(raw, have, "disk", share(where, ("snapshot", "index"), 1)), 0.10, "<= 10%"))  # fmt: skip
    if "big" in present:
        have = [n for n in names if "big" in raw[n].get("disk", {})]
        rows.append(Row(f"analytics.duckdb / log, {labels['big']} (not counted)", "share",
                        _per(raw, have, "disk", share("big", ("analytics",), 1))))  # fmt: skip
    for name in names:
        for where, usage in raw[name].get("disk", {}).items():
            files = ", ".join(f"{f} {fmt(a, 'bytes')} ({fmt(b, 'bytes')} on disk)" for f, (a, b) in usage.items() if a)
            notes.append(f"{name}, {labels[where]}: {files}")
    return rows


SCENARIO_ROWS = (many_rows, grown_rows, open_rows, query_rows, disk_rows)


def scenario_rows(raw: Raw, names: Sequence[str], sizes: dict[str, Any]) -> tuple[list[Row], list[str]]:
    """Every row the raw results allow (a scenario not run gives none), and the notes that explain them."""
    rows: list[Row] = []
    notes: list[str] = []
    for build in SCENARIO_ROWS:
        rows += [row for row in build(raw, names, sizes, notes) if row.values]
    return rows, notes


def rows_table(rows: Sequence[Row], names: Sequence[str], notes: Sequence[str]) -> str:
    """Markdown: one column per checkout (value and whether it meets the target), then last vs first."""
    compare = len(names) >= 2
    head = ["figure", "target", *names] + ([f"{names[-1]} vs {names[0]}"] if compare else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.label, row.target_text]
        for name in names:
            if name not in row.values:
                cells.append("-")
                continue
            met = row.met(name)
            cells.append(fmt(row.values[name], row.kind) + {True: " (met)", False: " (**NOT MET**)", None: ""}[met])
        if compare:
            old, new = row.values.get(names[0]), row.values.get(names[-1])
            cells.append(f"{old / new:.2f}x" if old and new else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if compare:
        lines.append(f"Medians. {names[-1]} vs {names[0]}: {names[0]}'s figure over {names[-1]}'s (> 1: {names[-1]} "
                     "is lower, i.e. better, for every figure here).")  # fmt: skip
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)

"""Scale benchmark: many tracts in one directory, and grown tracts, on two checkouts side by side.

    .venv/bin/python bench/scale.py --code before=../wt-before --code after=.    # full run
    .venv/bin/python bench/scale.py --quick --code before=../wt-before --code after=.
    .venv/bin/python bench/scale.py --json out.json                             # this checkout alone

Every step runs in a process of its own (`scale_child.py`) against one
checkout, so the code before a change and the code after it are measured in
the same run, on data each built for itself (their log formats differ), with
the timed steps in turns so a change in the machine's load hits both alike.
The scenarios and their targets (issue 11):

- many tracts: a directory of N tracts x 100 commits, grown one tract after
  the other (the open + close of the first tract vs the last); then one
  100-commit tract in it vs the same tract alone in a directory: writer
  open + compile + close, and read-only open + compile (each within 2x);
- grown tract: RSS after a writer open of a 300k-commit tract in a fresh
  process, minus RSS after the imports and the tokenizer, per commit (at
  most 300 B), and the peak of close vs the peak of open;
- open: read-only open of a 100k-commit tract in a fresh process (at most
  270 ms, the earlier library's figure here), and of a 10k one in-process
  (at most 5 ms);
- disk: the files beside the log (snapshot or index) vs the log (at most
  10%), with analytics.duckdb shown apart;
- query: a read-only open's first `query_by_config` on the 100k log vs the
  writer's steady call (within 2x).

Timings are printed, never asserted. Data lives in a temporary directory
(or `--keep DIR`) deleted at exit unless kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scale_rows import merge, rows_table, scenario_rows

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass(frozen=True)
class Sizes:
    """How much data and how many runs; --quick and --tiny shrink them."""

    name: str
    tracts: int  # tracts in the many-tracts directory
    commits: int  # commits per tract there
    group: int  # tracts timed at each sample point while that directory grows
    grown: int  # commits of the grown tract (memory)
    big: int  # commits of the tract opened in a fresh process and queried
    small: int  # commits of the tract opened in-process
    runs: int  # timed runs per process
    rounds: int  # processes per checkout for the in-process steps, in turns
    fresh_runs: int  # fresh processes per checkout for the fresh-process open


FULL = Sizes("full", 1_000, 100, 3, 300_000, 100_000, 10_000, 3, 2, 5)
QUICK = Sizes("quick", 100, 100, 2, 30_000, 20_000, 10_000, 2, 1, 3)
TINY = Sizes("tiny", 4, 20, 1, 400, 300, 200, 1, 1, 1)


@dataclass(frozen=True)
class Code:
    name: str
    directory: Path


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child(code: Code, step: str, **arguments: Any) -> dict[str, Any]:
    """Run one step against `code` in a new process; its result is the last line it prints."""
    command = [
        sys.executable,
        str(BENCH / "scale_child.py"),
        "--code",
        str(code.directory),
        step,
        json.dumps(arguments),
    ]
    done = subprocess.run(command, cwd=BENCH, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{code.name}: step {step} failed (exit {done.returncode}); its stderr is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Run:
    """The checkouts, the sizes, where each checkout's data lives, and every step's raw result."""

    def __init__(self, codes: Sequence[Code], sizes: Sizes, root: Path) -> None:
        self.codes = list(codes)
        self.sizes = sizes
        self.root = root
        self.raw: dict[str, dict[str, Any]] = {code.name: {} for code in codes}

    def path(self, code: Code, name: str) -> str:
        return str(self.root / code.name / name)

    def each(self, key: str, step: str, arguments: Callable[[Code], dict[str, Any]]) -> None:
        """One process per checkout (builds)."""
        for code in self.codes:
            progress(f"{code.name}: {step} {key}")
            self.raw[code.name][key] = child(code, step, **arguments(code))

    def turns(self, key: str, step: str, arguments: Callable[[Code], dict[str, Any]], rounds: int) -> None:
        """`rounds` processes per checkout, checkouts in turns; their samples are merged."""
        for number in range(rounds):
            for code in self.codes:
                progress(f"{code.name}: {step} {key} ({number + 1}/{rounds})")
                result = child(code, step, **arguments(code))
                previous = self.raw[code.name].get(key)
                self.raw[code.name][key] = result if previous is None else merge(previous, result)


# -- scenarios -----------------------------------------------------------------------------------


def many_tracts(run: Run) -> None:
    s = run.sizes
    run.each("many", "build_many", lambda c: {"directory": run.path(c, "many"), "tracts": s.tracts,
                                              "commits": s.commits, "group": s.group})  # fmt: skip
    run.each("alone", "copy_tract", lambda c: {"source": run.path(c, "many"), "destination": run.path(c, "alone"),
                                               "tract_id": run.raw[c.name]["many"]["measured"]})  # fmt: skip
    run.turns("open_compile", "open_compile", lambda c: {
        "directories": {"many": run.path(c, "many"), "alone": run.path(c, "alone")},
        "tract_id": run.raw[c.name]["many"]["measured"], "runs": s.runs}, s.rounds)  # fmt: skip


def grown_tract(run: Run) -> None:
    s = run.sizes
    run.each("grown_build", "build_tract", lambda c: {"directory": run.path(c, "grown"), "tract_id": "grown",
                                                      "commits": s.grown, "seed": 21})  # fmt: skip
    run.turns("rss", "rss_open", lambda c: {"directory": run.path(c, "grown"), "commits": s.grown}, 1)


def opens(run: Run) -> None:
    s = run.sizes
    run.each("big_build", "build_tract", lambda c: {"directory": run.path(c, "big"), "tract_id": "big",
                                                    "commits": s.big, "seed": 6})  # fmt: skip
    run.each("small_build", "build_tract", lambda c: {"directory": run.path(c, "small"), "tract_id": "small",
                                                      "commits": s.small, "seed": 3})  # fmt: skip
    run.turns("fresh", "open_fresh", lambda c: {"directory": run.path(c, "big"), "started": time.time()},
              s.fresh_runs)  # fmt: skip
    run.turns("inprocess", "open_inprocess", lambda c: {"directory": run.path(c, "small"), "runs": s.runs * 3},
              s.rounds)  # fmt: skip


def query(run: Run) -> None:
    run.turns("query", "query", lambda c: {"directory": run.path(c, "big"), "runs": run.sizes.runs}, run.sizes.rounds)


def disk(run: Run) -> None:
    names = ("many", "grown", "big")
    run.each(
        "disk", "disk", lambda c: {"directories": {n: run.path(c, n) for n in names if Path(run.path(c, n)).exists()}}
    )


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "many": many_tracts,
    "grown": grown_tract,
    "open": opens,
    "query": query,
    "disk": disk,
}


# -- putting it together -------------------------------------------------------------------------


def describe(code: Code) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(code.directory), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else "?"

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "events", "projections", "tract")
    return f"{code.name}: {code.directory} at {head}{' + uncommitted changes' if dirty else ''}"


def header(run: Run, load_at_start: float, seconds: float) -> str:
    s = run.sizes
    return "\n".join([
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; python {platform.python_version()}",
        *(f"code {describe(code)}" for code in run.codes),
        f"sizes ({s.name}): {s.tracts:,} tracts x {s.commits} commits; grown tract {s.grown:,} commits; "
        f"fresh-process open {s.big:,}; in-process open {s.small:,}",
        f"load average (1 min) at start {load_at_start:.1f}, at end {os.getloadavg()[0]:.1f}; "
        f"run took {seconds / 60:.1f} min",
    ])  # fmt: skip


def parse_code(text: str) -> Code:
    name, _, directory = text.rpartition("=")
    if not name or not directory:
        raise argparse.ArgumentTypeError(f"--code wants NAME=DIR, not {text!r}")
    return Code(name, Path(directory).resolve())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=parse_code, action="append", metavar="NAME=DIR",
                        help="a checkout to measure (repeatable; default: after=this checkout)")  # fmt: skip
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=f"smaller: {QUICK}")
    size.add_argument("--tiny", action="store_true", help="tiny sizes, for the smoke tests")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    parser.add_argument("--json", type=Path, help="also write the rows and raw results here")
    parser.add_argument("--keep", type=Path, help="build the data here and keep it")
    args = parser.parse_args(argv)
    codes = args.code or [Code("after", REPO)]
    if len({code.name for code in codes}) != len(codes):
        parser.error("each --code needs a name of its own")
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    chosen = args.only or list(SCENARIOS)
    load, began = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tract-scale-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        run = Run(codes, sizes, root)
        for name in SCENARIOS:
            if name in chosen:
                SCENARIOS[name](run)
        rows, notes = scenario_rows(run.raw, [code.name for code in codes], asdict(sizes))
        seconds = time.perf_counter() - began
        print(f"## tract scale benchmark ({sizes.name} run)\n\n```\n{header(run, load, seconds)}\n```\n")
        print(rows_table(rows, [code.name for code in codes], notes))
        if args.json:
            document = {"sizes": asdict(sizes), "codes": {c.name: str(c.directory) for c in codes},
                        "rows": [row.as_dict([c.name for c in codes]) for row in rows], "raw": run.raw}  # fmt: skip
            args.json.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start: a fresh process imports tract, opens a new log, commits once and compiles."""

from __future__ import annotations

import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tract.tokens import SHIPPED_ENCODINGS

import codepath
from report import Figure, Scale, fmt, progress, summarize, timed
from sqlite_store import SQLITE_INSERT, SQLITE_SCHEMA
from workload import ENCODING, dialogue_text, generation_config

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
        "rank_file": str(codepath.CODE / "tract" / "encodings" / f"{ENCODING}.tiktoken.gz"), "pattern": pattern,
        "special_tokens": special_tokens, "schema": SQLITE_SCHEMA, "insert": SQLITE_INSERT,
    })  # fmt: skip


def run_child(source: str, directory: Path) -> tuple[float, float]:
    """(seconds from before the first import to after the first compile, wall seconds of the whole process)."""
    env = {**os.environ, "PYTHONPATH": str(codepath.CODE)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", source, child_spec(directory)],
        cwd=codepath.CODE, env=env, capture_output=True, text=True, check=True,
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
    env = {**os.environ, "PYTHONPATH": str(codepath.CODE)}
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile_path), str(script), child_spec(root / "cold-profile")],
        cwd=codepath.CODE, env=env, capture_output=True, check=True,
    )  # fmt: skip
    report = summarize(pstats.Stats(str(profile_path)))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", TRACT_CHILD, child_spec(root / "cold-importtime")],
        cwd=codepath.CODE, env=env, capture_output=True, text=True, check=True,
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

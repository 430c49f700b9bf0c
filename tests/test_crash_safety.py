"""Crash safety: SIGKILL a writer at random moments, then prove nothing acknowledged is lost
and nothing is silently damaged.

The README promises that whatever `commit()` (or a `batch()`, or `record_usage()`)
acknowledged is in the log after a crash, that a batch lands whole or not at
all, and that a crash leaves at most a torn tail, which the next writer cuts.
These tests check that promise the way a user meets it: a writer process
commits through the public API and prints each acknowledgement (after the call
returned) on stdout; the test kills it with SIGKILL at a random moment and then
checks the directory it left behind:

* read-only, untouched: every acknowledged commit/batch/usage/annotation is
  there and on HEAD's chain, in acknowledgement order; `verify()` reports
  nothing or only a torn tail;
* reopened by a writer (on a copy that keeps the crashed index/ and
  analytics.duckdb): a torn tail is cut exactly when verify saw one, with a
  warning; then `verify().ok`; the same acknowledgements are there; the only
  warnings are the documented ones (torn tail cut, analytics rebuilt); its
  clean close leaves no index/catalogue.tmp behind;
* what the reader and the reopen served through the crashed index, and the
  incremental DuckDB catch-up, agree with a full replay (the same copy after
  deleting index/ and analytics.duckdb): `compile()`, `log()`, annotations,
  config histories, and every analytics table; `commits` has one row per
  CommitCreated event.

The next writer then continues on the crashed directory itself, so every kill
after the first also tests recovery by a writer that keeps going.

Harness. Starting Python and importing tract costs ~0.4 s, which would allow
only a few dozen kills in the time budget. So one host process per scenario
(`python -c WRITER_SCRIPT`) imports tract once and forks a fresh writer process
per kill; the test SIGKILLs that writer by pid (the host reaps it only when
told, so the pid cannot be reused). Every 12th kill instead runs the writer as a
brand-new `python -c` process, so nothing inherited through fork is relied on.
Each writer streams operations forever and is always killed; kills land after
its first acknowledgement plus a random delay, sometimes right after it starts
(often during `Tract.open`, or while creating a fresh log), and, in the
projection scenario, right after it announces a close (which saves the index)
or a DuckDB catch-up.

Reproducing: every failure names TRACT_CRASH_SEED (set it to replay the same
choices of operations, contents and delays; the exact kill instant is timing)
and the kill number. TRACT_CRASH_BUDGET sets the seconds of kills per scenario.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events import LogFormatError
from events import verify as verify_log
from tract import BudgetAction, TokenBudgetConfig, Tract, TractConfig, TractError

BASE_SEED = int(os.environ.get("TRACT_CRASH_SEED") or random.SystemRandom().randrange(2**32))
SCENARIO_BUDGET = float(os.environ.get("TRACT_CRASH_BUDGET", "18"))
"""Seconds of kill iterations per scenario (five scenarios: about 2 minutes for the file)."""
MIN_KILLS = 20
"""Every scenario kills at least this many writers, however slow the machine."""
MAX_KILLS = 400
WAIT_TIMEOUT = 60.0
FRESH_PROCESS_EVERY = 12
ACKNOWLEDGEMENTS = ("c", "b", "u", "a")
BUDGET_COMPRESSION = "compressed to fit the token budget"


# --------------------------------------------------------------------------------------------
# The writer. Run as `python -c WRITER_SCRIPT`: with a JSON job as argv[1] it is one writer;
# without, it is a host that forks one writer per job line read from stdin.
# Every line it prints is `<kind> <json>`; an acknowledgement is printed only after the call
# that wrote it returned.
# --------------------------------------------------------------------------------------------

WRITER_SCRIPT = r'''
import json, os, random, sys, traceback, warnings
from tract import BudgetAction, Tract, DialogueContent, InstructionContent, TokenBudgetConfig, TractConfig
from tract.tokens import load_encoding

load_encoding("o200k_base")  # warm the tokenizer once in the host; forked writers inherit it
WORDS = "whatever commit acknowledged survives a crash and the log is never silently damaged".split()
PHASE = ["recovery"]  # warnings during the first open of a crashed directory are "recovery"


def emit(kind, payload=None):
    """Print one line and flush it: one write(2), so a kill never leaves half a line."""
    os.write(1, (kind + " " + json.dumps(payload, separators=(",", ":")) + "\n").encode())


def on_warning(message, category, filename, lineno, file=None, line=None):
    emit("warn", {"category": category.__name__, "message": str(message), "phase": PHASE[0]})


def text(rng, big=False):
    return " ".join(rng.choices(WORDS, k=rng.randint(30_000, 250_000) if big else rng.randint(1, 40)))


def summarize(messages, target_tokens=None):
    return "%d earlier messages, about %s" % (len(messages), messages[0].content[:20])


def config(job):
    """With a "budget", every commit that would not fit compresses the oldest messages first."""
    if not job.get("budget"):
        return None
    budget = TokenBudgetConfig(max_tokens=job["budget"], action=BudgetAction.COMPRESS, summarizer=summarize)
    return TractConfig(token_budget=budget)


class Writer:
    def __init__(self, job, rng):
        self.job, self.rng, self.n = job, rng, 0
        self.t = None
        self.targets = []  # this tract's APPEND dialogue commits: edit and annotation targets

    def open(self):
        self.t = Tract.open(self.job["dir"], sync=self.job["sync"], config=config(self.job))
        if not self.targets:
            self.targets = [c.commit_hash for c in self.t.log(limit=50)
                            if c.operation.value == "append" and c.content_type == "dialogue"]

    def label(self):
        self.n += 1
        return "%s.%d" % (self.job["run"], self.n)

    def config(self):
        rng = self.rng
        return {"model": rng.choice(["gpt-4o", "o3", "claude"]), "temperature": rng.choice([0, 0.2, 0.7, 1.0]),
                "extra": {"effort": rng.choice(["low", "high"])}}

    def commit(self):
        rng, t, label = self.rng, self.t, self.label()
        r = rng.random()
        if r < 0.04 and not self.job.get("budget"):  # (pinned: under a budget they would pile up past it)
            info = t.commit(InstructionContent(text=text(rng)), metadata={"op": label})
        elif r < 0.10 and self.targets:
            info = t.commit(DialogueContent(role="user", text=text(rng)), operation="edit",
                            response_to=rng.choice(self.targets), metadata={"op": label},
                            generation_config=self.config() if rng.random() < 0.5 else None)
        else:
            big = rng.random() < self.job["big"]
            info = t.commit(DialogueContent(role=rng.choice(["user", "assistant"]), text=text(rng, big)),
                            metadata={"op": label}, generation_config=self.config() if rng.random() < 0.5 else None)
            self.targets.append(info.commit_hash)
        emit("c", info.commit_hash)

    def annotate(self):
        if not self.targets:
            return self.commit()
        target = self.rng.choice(self.targets)
        priority = self.rng.choice(["skip", "normal", "pinned"])
        annotation = self.t.annotate(target, priority, reason=self.label())
        emit("a", {"target": target, "position": annotation.position, "priority": priority})

    def batch(self):
        rng, label = self.rng, self.label()
        size = 5 if rng.random() < 0.7 else rng.randint(2, 9)
        big_at = rng.randrange(size) if rng.random() < self.job["big"] else -1
        hashes = []
        with self.t.batch():
            for index in range(size):
                info = self.t.commit(
                    DialogueContent(role=("user", "assistant")[index % 2], text=text(rng, index == big_at)),
                    metadata={"batch": label, "size": size, "index": index},
                    generation_config=self.config() if rng.random() < 0.3 else None,
                )
                hashes.append(info.commit_hash)
            if big_at >= 0:
                emit("p", "append")  # a big batch is about to be written: a moment worth killing at
        self.targets.extend(hashes)
        emit("b", {"batch": label, "hashes": hashes})

    def usage(self):
        rng, t, label = self.rng, self.t, self.label()
        if t.head is None:
            return self.commit()
        head, config = t.head, {**self.config(), "usage": label}
        usage = {"prompt_tokens": rng.randint(1, 10**6), "completion_tokens": rng.randint(0, 10**4)}
        t.record_usage(usage, generation_config=config)
        emit("u", {"label": label, "head": head, "usage": usage, "config": config})

    def pick(self):
        ops = self.job["ops"]
        return getattr(self, self.rng.choices(list(ops), weights=list(ops.values()))[0])

    def stream(self):
        self.open()
        PHASE[0] = "running"
        while True:
            self.pick()()

    def cycles(self):
        """Commits, a query (DuckDB catch-up), more commits, close (saves the index), reopen: forever."""
        rng = self.rng
        while True:
            emit("p", "open")
            self.open()
            PHASE[0] = "running"
            emit("p", "opened")
            for _ in range(rng.randint(1, 25)):
                self.pick()()
            emit("p", "sql")
            assert self.t.sql("SELECT 1").rows == [(1,)]
            emit("p", "sql-done")
            for _ in range(rng.randint(0, 6)):
                self.pick()()
            emit("p", "close")
            self.t.close()
            emit("p", "closed")


def run(job):
    warnings.simplefilter("always")
    warnings.showwarning = on_warning
    try:
        writer = Writer(job, random.Random(job["seed"]))
        writer.cycles() if job["mode"] == "cycles" else writer.stream()
    except BaseException:
        emit("error", traceback.format_exc())
        os._exit(3)
    os._exit(0)


if len(sys.argv) > 1:
    run(json.loads(sys.argv[1]))
for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        run(job)
    emit("pid", pid)
    sys.stdin.readline()  # "reap": until then the killed writer stays a zombie, so its pid is not reused
    _, status = os.waitpid(pid, 0)
    emit("exit", os.waitstatus_to_exitcode(status))
'''


# --------------------------------------------------------------------------------------------
# Running and killing writers
# --------------------------------------------------------------------------------------------


def _pump(stream: Any, lines: queue.Queue[tuple[str, Any] | None]) -> None:
    for raw in stream:
        if not raw.endswith("\n"):
            break  # a line cut off mid-write was never fully printed: not an acknowledgement
        kind, _, rest = raw[:-1].partition(" ")
        try:
            lines.put((kind, json.loads(rest)))
        except ValueError:
            lines.put(("garbled", raw))
    lines.put(None)


class WriterError(AssertionError):
    pass


@dataclass
class Run:
    lines: list[tuple[str, Any]]
    mode: str


class WriterHost:
    """A `python -c WRITER_SCRIPT` host process that forks writers on request."""

    def __init__(self, stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w+")  # noqa: SIM115 - the host process writes it until close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.pump = threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True)
        self.pump.start()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pump.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()

    def stderr_tail(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text()[-3000:]

    def run_and_kill(self, job: dict[str, Any], rng: random.Random, *, mode: str, fresh_process: bool) -> Run:
        """Start a writer on `job`, SIGKILL it at a moment chosen by `mode`, return all it printed.

        mode: "early" (soon after the process starts, before waiting for anything), "random" (after
        its first acknowledgement plus a random delay), or "at <phase>" (just after the writer
        announced that phase: p <phase>).
        """
        seen: list[tuple[str, Any]] = []
        pid = None
        try:
            if fresh_process:
                proc = subprocess.Popen(
                    [sys.executable, "-c", WRITER_SCRIPT, json.dumps(job)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=self.stderr,
                    text=True,
                )
                lines: queue.Queue[tuple[str, Any] | None] = queue.Queue()
                pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
                pump.start()
                pid = proc.pid
            else:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(job) + "\n")
                self.proc.stdin.flush()
                lines = self.lines
                pid = self._next(lines, seen, lambda kind, _: kind == "pid")[1]

            if mode == "early":
                # forked: usually inside Tract.open (or creating the log); fresh: anywhere from
                # interpreter start-up to the first commits
                time.sleep(rng.uniform(0, 0.6 if fresh_process else 0.03))
            elif mode.startswith("at "):
                phase, nth, count = mode[3:], rng.randint(1, 2), 0

                def announced(kind: str, payload: Any) -> bool:
                    nonlocal count
                    count += kind == "p" and payload == phase
                    return count >= nth

                self._next(lines, seen, announced)
                time.sleep(rng.uniform(0, job["jitter"][phase]))
            else:
                self._next(lines, seen, lambda kind, _: kind in ACKNOWLEDGEMENTS)
                time.sleep(rng.uniform(0, 0.12))
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # not reaped yet, so this pid is still our writer

        if fresh_process:
            status = proc.wait(timeout=WAIT_TIMEOUT)
            pump.join(timeout=WAIT_TIMEOUT)
            self._drain(lines, seen, until=None)
            assert proc.stdout is not None
            proc.stdout.close()
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write("reap\n")
            self.proc.stdin.flush()
            status = self._drain(lines, seen, until="exit")
        errors = [payload for kind, payload in seen if kind in ("error", "garbled")]
        if errors:
            raise WriterError(f"the writer failed before it was killed:\n{errors[0]}")
        assert status == -signal.SIGKILL, f"writer exited with {status}, not by SIGKILL; stderr:\n{self.stderr_tail()}"
        return Run([line for line in seen if line[0] not in ("pid", "exit")], mode)

    def _next(
        self, lines: queue.Queue[tuple[str, Any] | None], seen: list[tuple[str, Any]], wanted: Any
    ) -> tuple[str, Any]:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            try:
                item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise WriterError(
                    f"writer printed nothing awaited in {WAIT_TIMEOUT}s; stderr:\n{self.stderr_tail()}"
                ) from None
            if item is None:
                raise WriterError(f"writer output ended early: {seen[-5:]}; stderr:\n{self.stderr_tail()}")
            seen.append(item)
            if item[0] in ("error", "garbled"):
                raise WriterError(f"the writer failed:\n{item[1]}")
            if wanted(*item):
                return item

    def _drain(self, lines: queue.Queue[tuple[str, Any] | None], seen: list[tuple[str, Any]], until: str | None) -> Any:
        while True:
            try:
                item = lines.get(timeout=WAIT_TIMEOUT)
            except queue.Empty:
                raise WriterError(f"no end of writer output in {WAIT_TIMEOUT}s") from None
            if item is None:
                if until is None:
                    return None
                raise WriterError(f"host ended early; stderr:\n{self.stderr_tail()}")
            seen.append(item)
            if item[0] == until:
                return item[1]


# --------------------------------------------------------------------------------------------
# What the writers acknowledged, and the checks
# --------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything acknowledged in one log directory, over all the writers killed on it."""

    commits: list[str] = field(default_factory=list)
    batches: dict[str, list[str]] = field(default_factory=dict)
    usages: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    def absorb(self, run: Run) -> None:
        for kind, payload in run.lines:
            if kind == "c":
                self.commits.append(payload)
            elif kind == "b":
                self.batches[payload["batch"]] = payload["hashes"]
                self.commits.extend(payload["hashes"])
            elif kind == "u":
                self.usages.append(payload)
            elif kind == "a":
                self.annotations.append(payload)

    def __bool__(self) -> bool:
        return bool(self.commits)


def classify(message: str) -> str | None:
    """The warnings a crash may cause: the torn tail cut, the analytics database rebuilt from the log.
    (An index that does not match the log is rebuilt silently: it is never believed anyway.)"""
    if "cut off a torn tail" in message:
        return "torn tail cut"
    if "rebuilding" in message and "analytics" in message:
        return "analytics rebuilt"
    return None


def check_warnings(messages: list[str], *, allow_torn: bool, where: str) -> list[str | None]:
    kinds = [classify(message) for message in messages]
    for message, kind in zip(messages, kinds, strict=True):
        assert kind is not None and (allow_torn or kind != "torn tail cut"), f"{where}: unexpected warning: {message}"
    return kinds


def caught(records: list[warnings.WarningMessage], where: str) -> list[str]:
    for record in records:
        assert issubclass(record.category, RuntimeWarning), (
            f"{where}: unexpected {record.category.__name__}: {record.message}"
        )
    return [str(record.message) for record in records]


def check_acknowledged(t: Tract, ledger: Ledger) -> None:
    """Everything acknowledged is in the log, on HEAD's chain in acknowledgement order; batches,
    instruction pins and usage-with-config are all-or-nothing."""
    chain = [info.commit_hash for info in reversed(t.log(limit=None))]
    order = {commit: index for index, commit in enumerate(chain)}
    missing = [h for h in ledger.commits if t.get_commit(h) is None]
    assert not missing, f"{len(missing)} acknowledged commits are gone, first {missing[0]}"
    off_chain = [h for h in ledger.commits if h not in order]
    assert not off_chain, f"{len(off_chain)} acknowledged commits are not on HEAD's chain, first {off_chain[0]}"
    indexes = [order[h] for h in ledger.commits]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes), (
        "acknowledged commits out of order on HEAD's chain"
    )

    events = {e.position: e for e in t.events()}
    members: dict[str, list[tuple[int, dict[str, Any], str]]] = defaultdict(list)
    compressions: set[int] = set()
    for position, logged in events.items():
        event = logged.event
        if logged.type == "CommitCreated":
            metadata = event.metadata or {}
            if "batch" in metadata:
                members[metadata["batch"]].append((position, metadata, event.commit_hash))
            if event.operation == "compress":  # the budget's: it lands with the commit it made room for
                assert event.message == BUDGET_COMPRESSION, f"a compression at {position} the writer never made"
                made_room = events.get(position + 1)
                assert made_room is not None and made_room.type == "CommitCreated", (
                    f"the budget's compression at {position} landed without its commit"
                )
                assert made_room.event.parent_hash == event.commit_hash, f"the commit after {position} is not on it"
                compressions.add(position)
            if event.content_type == "instruction" and event.operation == "append":
                pin = events.get(position + 1)
                assert (
                    pin is not None and pin.type == "AnnotationAdded" and pin.event.target_hash == event.commit_hash
                ), f"instruction commit at {position} lacks its pin annotation"
        elif logged.type == "GenerationConfigRecorded":
            usage = events.get(position + 1)
            assert usage is not None and usage.type == "UsageRecorded" and usage.event.head_hash == event.commit_hash, (
                f"config recorded at {position} without its usage"
            )
    for label, rows in members.items():
        size = rows[0][1]["size"]
        assert [row[1]["index"] for row in rows] == list(range(size)), (
            f"batch {label} is half-present: {len(rows)} of {size}"
        )
        span = set(range(rows[0][0], rows[-1][0] + 1)) - compressions  # the budget's compressions may come between
        assert sorted(span) == [row[0] for row in rows], f"batch {label} is not contiguous"
    for label, hashes in ledger.batches.items():
        assert [row[2] for row in members.get(label, [])] == hashes, (
            f"acknowledged batch {label} is not in the log as printed"
        )

    for usage in ledger.usages:
        matches = [
            p for p, e in events.items()
            if e.type == "GenerationConfigRecorded" and e.event.generation_config == usage["config"]
        ]  # fmt: skip
        assert len(matches) == 1, f"acknowledged usage {usage['label']} has {len(matches)} config records"
        recorded = events[matches[0] + 1].event
        assert (recorded.head_hash, recorded.prompt_tokens, recorded.completion_tokens) == (
            usage["head"], usage["usage"]["prompt_tokens"], usage["usage"]["completion_tokens"]
        ), f"acknowledged usage {usage['label']} is not in the log as recorded"  # fmt: skip
        history = [r.generation_config for r in t.config_history(usage["head"]) if r.source == "record_usage"]
        assert usage["config"] in history, f"acknowledged usage {usage['label']} is not in config_history()"
    for note in ledger.annotations:
        logged = events.get(note["position"])
        assert logged is not None and logged.type == "AnnotationAdded", (
            f"acknowledged annotation at {note['position']} is gone"
        )
        assert (logged.event.target_hash, logged.event.priority) == (note["target"], note["priority"]), (
            f"the annotation at {note['position']} is not the acknowledged one"
        )


SQL_TABLES = {
    "commits": "SELECT commit_hash, tract_id, parent_hash, content_type, operation, response_to, message, token_count, "
    "created_at, CAST(generation_config AS VARCHAR), CAST(metadata AS VARCHAR), position, model, temperature "
    "FROM commits ORDER BY position",
    "config_records": "SELECT commit_hash, tract_id, source, CAST(generation_config AS VARCHAR), created_at, position "
    "FROM config_records ORDER BY position",
    "usage": "SELECT * FROM usage ORDER BY position",
    "annotations": "SELECT * FROM annotations ORDER BY position",
    "projection_state": "SELECT schema_version, cursor FROM projection_state",
}


def projections(t: Tract, ledger: Ledger) -> dict[str, Any]:
    """Everything the user reads from the projections (commit view, compiler cache, DuckDB)."""
    chain = t.log(limit=None)
    out: dict[str, Any] = {
        "chain_head": t.chain_head,
        "head": t.head,
        "compile": t.compile().model_dump(),
        "compile_marked": t.compile(include_edit_annotations=True).model_dump(),
        "log": [info.model_dump() for info in chain],
        "annotations": {
            n["target"]: [a.model_dump() for a in t.get_annotations(n["target"])] for n in ledger.annotations
        },
        "config_history": {u["head"]: [r.model_dump() for r in t.config_history(u["head"])] for u in ledger.usages},
    }
    for table, query in SQL_TABLES.items():
        out[table] = t.sql(query).rows
    return out


def differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [key for key in a if a[key] != b.get(key)]


def check_crashed(crashed: Path, scratch: Path, ledger: Ledger) -> Counter[str]:
    """All the checks on a frozen copy of the directory a killed writer left behind."""
    stats: Counter[str] = Counter()
    # 1. As an auditor would first look at it: verify, then open read-only (no lock, no writes,
    #    so the torn tail, if any, is still there).
    try:
        report = verify_log(crashed)
    except LogFormatError:
        # Only possible if the writer died creating the log (no events.log or no header yet).
        assert not ledger, "the log holding acknowledged commits is not a log any more"
        report = None
    assert report is None or report.ok or report.problem.kind == "torn tail", (
        f"a kill left more than a torn tail: {report}"
    )
    torn = report is not None and not report.ok
    stats["torn tails"] += torn
    stats["kills that left a saved index"] += (crashed / "index" / "catalogue").exists()
    stats["kills that left index/catalogue.tmp"] += (crashed / "index" / "catalogue.tmp").exists()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # the test's own garbage, collected anywhere
        try:
            reader = Tract.open(crashed, readonly=True)
        except TractError:
            # Only possible if the writer died before its TractCreated landed.
            assert not ledger, "the log holding acknowledged commits cannot be opened read-only"
            reader = None
    check_warnings(caught(records, "read-only open"), allow_torn=False, where="read-only open")
    if reader is not None:
        with reader:
            assert reader.verify() == report, "tract.verify() and events.verify() disagree"
            check_acknowledged(reader, ledger)
            seen_read_only = {
                "chain_head": reader.chain_head,
                "compile": reader.compile().model_dump(),
                "log": [info.model_dump() for info in reader.log(limit=None)],
            }
    else:
        stats["kills before the log held a tract"] += 1

    # 2. Reopened by a writer, with the crashed index/ and analytics.duckdb.
    reopened_dir = scratch / "reopened"
    if crashed.exists():
        shutil.copytree(crashed, reopened_dir)
    else:  # the writer died before it created the directory
        assert not ledger, "the directory holding acknowledged commits is gone"
        reopened_dir.mkdir(parents=True)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        with Tract.open(reopened_dir) as t:
            assert t.verify().ok, f"verify after the reopen: {t.verify()}"
            check_acknowledged(t, ledger)
            reopened = projections(t, ledger)
            commit_events = sum(1 for _ in t.events(types="CommitCreated"))
            counted = t.sql("SELECT count(*) FROM commits").rows
            assert counted == [(commit_events,)], f"commits table counts {counted}, the log has {commit_events} commits"
            usage_events = sum(1 for _ in t.events(types="UsageRecorded"))
            assert len(reopened["usage"]) == usage_events, (
                f"usage table: {len(reopened['usage'])} rows, {usage_events} events"
            )
    assert not (reopened_dir / "index" / "catalogue.tmp").exists(), "a clean close left index/catalogue.tmp"
    messages = caught(records, "writer reopen")
    kinds = check_warnings(messages, allow_torn=True, where="writer reopen")
    assert ("torn tail cut" in kinds) == torn, f"verify saw a torn tail: {torn}; the reopen warned: {messages}"
    stats.update(f"reopen: {kind}" for kind in kinds)
    if reader is not None:
        assert reopened["chain_head"] == seen_read_only["chain_head"], "the writer reopen kept a different prefix"
        assert reopened["compile"] == seen_read_only["compile"], "compile() differs between read-only and writer reopen"
        assert reopened["log"] == seen_read_only["log"], "log() differs between read-only and writer reopen"

    # 3. A full replay: the same log without index/ and analytics.duckdb (read-only, so
    #    analytics are rebuilt in memory from the log alone). A whole log: no warning at all.
    shutil.rmtree(reopened_dir / "index", ignore_errors=True)
    for name in ("analytics.duckdb", "analytics.duckdb.wal"):
        (reopened_dir / name).unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)
        with Tract.open(reopened_dir, readonly=True) as t:
            replayed = projections(t, ledger)
    wrong = differing(reopened, replayed)
    assert not wrong, f"after the crash the projections disagree with a full replay on {wrong}"
    return stats


# --------------------------------------------------------------------------------------------
# The kill loop shared by the scenarios
# --------------------------------------------------------------------------------------------


def hammer(
    tmp_path: Path,
    scenario: str,
    *,
    ops: dict[str, float],
    sync: str = "always",
    big: float = 0.0,
    mode: str = "stream",
    targets: dict[str, float] | None = None,
    rotate: int = 3,
    budget: int | None = None,
) -> tuple[Counter[str], list[Run]]:
    """Kill writers of `scenario` until the budget is spent, checking the directory after every kill.

    `ops` weighs the writer's operations; `big` is the chance that a commit (or one commit of a
    batch) carries 0.2-1.6 MB; `targets` maps phases the writer announces to the longest delay
    between the announcement and the kill. A new directory every `rotate` kills: the others
    continue on the directory the last writer crashed in. Kill k's directory is frozen (copied)
    as the writer left it; the next writer runs while a thread checks the frozen copy.
    """
    rng = random.Random(f"{BASE_SEED}:{scenario}")
    targets = targets or {}
    deck: list[str] = []  # kill modes, dealt without replacement so every mode comes up often
    stats: Counter[str] = Counter()
    runs: list[Run] = []
    host = WriterHost(tmp_path / "writers.stderr")
    checker = ThreadPoolExecutor(max_workers=1)
    pending: Future[Counter[str]] | None = None
    deadline = time.monotonic() + SCENARIO_BUDGET
    started = time.monotonic()
    directory, ledger = tmp_path, Ledger()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the checking thread must not delay a kill by whole milliseconds
    try:
        kill = 0
        while kill < MIN_KILLS or (time.monotonic() < deadline and kill < MAX_KILLS):
            if kill % rotate == 0:
                directory, ledger = tmp_path / f"log{kill}", Ledger()
            if not deck:
                deck = (
                    ["early"] * 2 + ["random"] * (8 - 2 * len(targets)) + [f"at {t}" for t in targets for _ in range(3)]
                )
                rng.shuffle(deck)
            kill_mode = deck.pop()
            seed = rng.randrange(2**32)
            job = {"dir": str(directory), "sync": sync, "ops": ops, "big": big, "mode": mode, "jitter": targets,
                   "seed": seed, "run": kill, "budget": budget}  # fmt: skip
            fresh = kill % FRESH_PROCESS_EVERY == FRESH_PROCESS_EVERY - 1
            where = (
                f"TRACT_CRASH_SEED={BASE_SEED} scenario={scenario} kill #{kill} ({kill_mode}, writer seed {seed}, "
                f"{'fresh process' if fresh else 'forked'}) on {directory}"
            )
            try:
                run = host.run_and_kill(job, random.Random(seed), mode=kill_mode, fresh_process=fresh)
                ledger.absorb(run)
                for kind, payload in run.lines:
                    if kind == "warn":
                        assert payload["phase"] == "recovery" and payload["category"] == "RuntimeWarning", (
                            f"writer warned outside recovering from the crash: {payload}"
                        )
                        check_warnings([payload["message"]], allow_torn=True, where="writer's own open")
                        stats["writer recovery warnings"] += 1
                scratch = tmp_path / "scratch" / str(kill)
                if directory.exists():
                    shutil.copytree(directory, scratch / "crashed")
            except BaseException as error:
                raise AssertionError(f"{where}: {type(error).__name__}: {error}") from error
            if pending is not None:
                stats.update(pending.result())
            pending = checker.submit(_checked, where, scratch, copy.deepcopy(ledger))
            runs.append(run)
            stats["kills"] += 1
            stats[f"kill mode {kill_mode}"] += 1
            stats["fresh-process kills"] += fresh
            stats["acknowledged lines"] += sum(kind in ACKNOWLEDGEMENTS for kind, _ in run.lines)
            kill += 1
        if pending is not None:
            stats.update(pending.result())
    finally:
        sys.setswitchinterval(switch_interval)
        checker.shutdown(wait=True, cancel_futures=True)
        host.close()
    stats["seconds"] = round(time.monotonic() - started)
    print(f"\n{scenario} (TRACT_CRASH_SEED={BASE_SEED}): {dict(stats)}")
    return stats, runs


def _checked(where: str, scratch: Path, ledger: Ledger) -> Counter[str]:
    try:
        return check_crashed(scratch / "crashed", scratch, ledger)
    except BaseException as error:
        raise AssertionError(f"{where}: {type(error).__name__}: {error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------------------------


def test_every_acknowledged_commit_survives_sigkill(tmp_path: Path) -> None:
    """sync="always": commit() (also instructions with their pin, edits, configs, annotations,
    now and then a record of up to ~1.6 MB) killed anywhere; every acknowledged commit survives."""
    _, runs = hammer(tmp_path, "commits", ops={"commit": 0.92, "annotate": 0.08}, big=0.01)
    assert sum(kind == "c" for run in runs for kind, _ in run.lines) > 0, "no commit was ever acknowledged"


def test_batches_are_all_or_nothing_across_sigkill(tmp_path: Path) -> None:
    """batch() of several commits, acknowledged after the `with` block; killed anywhere, including
    while the batch is staged or being written: no batch is ever half there, every printed one is."""
    _, runs = hammer(tmp_path, "batches", ops={"batch": 0.85, "commit": 0.15}, big=0.05, targets={"append": 0.01})
    assert sum(kind == "b" for run in runs for kind, _ in run.lines) > 0, "no batch was ever acknowledged"


def test_recorded_usage_survives_sigkill(tmp_path: Path) -> None:
    """record_usage() with a generation_config between commits: every acknowledged usage is in
    events(types="UsageRecorded") with its config record, and the config is the commit's history."""
    _, runs = hammer(tmp_path, "usage", ops={"commit": 0.6, "usage": 0.4})
    assert sum(kind == "u" for run in runs for kind, _ in run.lines) > 0, "no usage was ever acknowledged"


def test_kills_during_index_saves_and_duckdb_catch_up(tmp_path: Path) -> None:
    """A writer that cycles commits, sql("SELECT 1") (catches analytics.duckdb up), close() (saves
    the index) and reopen, killed at random moments and right after announcing a catch-up or a
    close. The next open (by the test and by the next writer), through whatever index the kill left,
    serves exactly the acknowledged records, may warn that the analytics database was rebuilt and
    nothing else, and agrees with a full replay. A reopen after the writer's own clean close must
    not warn at all. (The save itself takes well under a millisecond of close(), so few kills land
    inside it: each mix of old and new index files it can leave is set up one by one in
    test_event_log.py, `test_whatever_an_interrupted_index_save_leaves_the_next_open_serves_the_log`.)"""
    _, runs = hammer(
        tmp_path,
        "projections",
        ops={"commit": 0.8, "usage": 0.1, "batch": 0.1},
        mode="cycles",
        targets={"sql": 0.03, "close": 0.01},
        rotate=4,
    )
    landed: Counter[str] = Counter()
    for run in runs:
        phases = [payload for kind, payload in run.lines if kind == "p"]
        if phases:
            landed[phases[-1]] += 1
    print(f"projection phases the kills landed in: {dict(landed)}")
    assert landed["sql"] > 0, f"no kill landed during a DuckDB catch-up: {dict(landed)}"
    assert landed["close"] > 0, f"no kill landed during close() / the index save: {dict(landed)}"
    assert any(line == ("p", "closed") for run in runs for line in run.lines), "no writer ever closed and reopened"


def test_sync_batch_loses_nothing_on_a_process_kill(tmp_path: Path) -> None:
    """sync="batch" (group commit): what can be lost, per the README?

    Every append is written to the OS (os.write into the page cache) before commit() returns, and
    fsynced by a background timer at most ~50 ms later and on close(). A crash of the *process*
    (SIGKILL, a segfault, os._exit) therefore loses nothing: the kernel still holds the bytes and
    writes them back. Only a crash of the OS or a power cut can lose the appends of the last ~50 ms
    (and then only whole batches from the end: the log stays whole). This test checks the process
    bound: with sync="batch", every acknowledged commit, batch, usage and annotation survives SIGKILL.
    """
    _, runs = hammer(
        tmp_path,
        "batch-sync",
        sync="batch",
        ops={"commit": 0.6, "batch": 0.2, "usage": 0.15, "annotate": 0.05},
        big=0.02,
        targets={"append": 0.01},
        rotate=2,
    )
    assert sum(kind in ("c", "b") for run in runs for kind, _ in run.lines) > 0, "nothing was ever acknowledged"


def test_budget_compressions_land_with_their_commits_across_sigkill(tmp_path: Path) -> None:
    """Under a COMPRESS budget (300 tokens) most commits first compress the oldest messages: the
    compression and the commit are one write. Killed anywhere, every compression in the log is
    followed by the commit it made room for, batches hold only their commits and the budget's
    compressions, and every acknowledged commit survives on HEAD's chain."""
    _, runs = hammer(tmp_path, "budget-compress", ops={"commit": 0.8, "batch": 0.2}, budget=300)
    acknowledged = [payload for run in runs for kind, payload in run.lines if kind == "c"]
    assert acknowledged, "no commit was ever acknowledged"
    made = 0
    for directory in tmp_path.glob("log*"):
        with Tract.open(directory, readonly=True) as t:
            made += sum(info.message == BUDGET_COMPRESSION for info in t.log(limit=None))
    assert made, "the budget never compressed: the scenario tests nothing"


TORN_BUDGET_WRITER = r"""
import os, signal, sys
from tract import BudgetAction, Tract, TokenBudgetConfig, TractConfig

def summarize(messages, target_tokens=None):
    return "%d earlier messages" % len(messages)

budget = TokenBudgetConfig(max_tokens=120, action=BudgetAction.COMPRESS, summarizer=summarize)
t = Tract.open(sys.argv[1], config=TractConfig(token_budget=budget))
for number in range(4):
    print(t.user(" ".join(["word"] * 20) + " %d" % number).commit_hash, flush=True)
real_write = os.write

def torn(fd, data):
    data = bytes(data)
    if b"compressed to fit the token budget" in data:  # the budget's write: part of it reaches the file
        real_write(fd, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)

os.write = torn
t.user(" ".join(["word"] * 20) + " 4")
print("not killed", flush=True)
"""


def test_a_budget_compression_torn_with_its_commit_leaves_neither(tmp_path: Path) -> None:
    """The process dies halfway through writing a compression and the commit it made room for (a real
    SIGKILL inside the write): the log holds a torn tail, which readers ignore and the next writer cuts;
    neither record is there, the acknowledged commits are, and the budget works on from there."""
    directory = tmp_path / "log"
    done = subprocess.run(
        [sys.executable, "-c", TORN_BUDGET_WRITER, str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    acknowledged = done.stdout.split()
    assert len(acknowledged) == 4 and "not killed" not in done.stdout
    report = verify_log(directory)
    assert report.problem is not None and report.problem.kind == "torn tail", report
    with Tract.open(directory, readonly=True) as reader:
        assert [info.commit_hash for info in reversed(reader.log(limit=None))] == acknowledged
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        with Tract.open(directory) as writer:
            assert writer.verify().ok
            assert [info.commit_hash for info in reversed(writer.log(limit=None))] == acknowledged
            assert not list(writer.events(types="CommitCreated"))[4:]
    assert [classify(str(record.message)) for record in records] == ["torn tail cut"]
    budget = TokenBudgetConfig(
        max_tokens=120, action=BudgetAction.COMPRESS, summarizer=lambda messages, target_tokens=None: "earlier"
    )
    with Tract.open(directory, config=TractConfig(token_budget=budget)) as writer:
        writer.user(" ".join(["word"] * 20) + " 4")
        assert writer.compile().token_count <= 120
        assert writer.get_commit(writer.log(limit=1)[0].parent_hash or "").operation.value == "compress"  # type: ignore[union-attr]

"""The scale scenarios' measurements, each run in a process of its own against one checkout.

Every function takes JSON-able arguments and returns a JSON-able dict of
samples (lists of seconds or bytes), so `scale.py` can run the same step
against the code before and after a change, in turns, and merge the runs.
Only the public API is used (`Tract.open`, `compile`, `query_by_config`, `close`).
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

from tract import Tract
from tract.tokens import TiktokenCounter

import logapi
from workload import ENCODING

QUERY = ("temperature", ">", 0.5)
_PAGE = os.sysconf("SC_PAGE_SIZE")


# -- resident memory -----------------------------------------------------------------------------


def rss() -> int:
    """Bytes resident now (/proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def peak_rss() -> int:
    """The highest resident bytes since the process started or since `reset_peak` (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak() -> bool:
    """Start a new peak from the current RSS (Linux: "5" to /proc/self/clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def load_tokenizer() -> float:
    """Load the tokenizer every open uses (cached for the process); returns the seconds it took."""
    began = time.perf_counter()
    TiktokenCounter(ENCODING).count_text("warm")
    return time.perf_counter() - began


# -- steps ---------------------------------------------------------------------------------------


def open_compile(directories: dict[str, str], tract_id: str, runs: int) -> dict[str, Any]:
    """The same tract in each directory, in turns: writer open + compile + close, and read-only open + compile.

    One untimed pass first, so no directory pays the process's first-use costs."""
    load_tokenizer()
    out: dict[str, Any] = {}
    for label in directories:
        out[label] = {"writer": [], "writer_open": [], "writer_close": [], "reader": [], "rss_open": []}
    for run in range(runs + 1):
        for label, directory in directories.items():
            samples = out[label]
            gc.collect()
            before = rss()
            began = time.perf_counter()
            t = Tract.open(directory, tract_id=tract_id, sync="batch")
            opened = time.perf_counter()
            grown = rss() - before
            t.compile()
            compiled = time.perf_counter()
            t.close()
            closed = time.perf_counter()
            del t
            gc.collect()
            began_reader = time.perf_counter()
            reader = Tract.open(directory, tract_id=tract_id, readonly=True)
            reader.compile()
            read = time.perf_counter() - began_reader
            reader.close()
            if run == 0:
                continue
            samples["writer"].append(closed - began)
            samples["writer_open"].append(opened - began)
            samples["writer_close"].append(closed - compiled)
            samples["reader"].append(read)
            samples["rss_open"].append(grown)
    return out


def rss_open(directory: str, commits: int) -> dict[str, Any]:
    """In this fresh process: RSS after imports and the tokenizer, after a writer open, and the peaks of
    open and of close, all above that baseline; nothing is compiled, so no content is asked for."""
    load_tokenizer()
    gc.collect()
    baseline = rss()
    resettable = reset_peak()
    began = time.perf_counter()
    t = Tract.open(directory, sync="batch")
    opened = time.perf_counter() - began
    after_open = rss()
    open_peak = peak_rss()
    reset_peak()
    before_close = rss()
    began = time.perf_counter()
    t.close()
    closed = time.perf_counter() - began
    close_peak = peak_rss()
    return {
        "commits": commits,
        "baseline": [baseline],
        "after_open": [after_open - baseline],
        "per_commit": [(after_open - baseline) / commits],
        "open_peak": [open_peak - baseline],
        "close_peak": [close_peak - baseline],
        "close_extra": [close_peak - before_close],
        "open_seconds": [opened],
        "close_seconds": [closed],
        "peak_resettable": resettable,
    }


def open_fresh(directory: str, started: float) -> dict[str, Any]:
    """In this fresh process: read-only `Tract.open` of the tract, once the imports and the tokenizer are in.

    `started` is the wall clock (time.time) when the parent launched the process."""
    imported = time.time() - started
    tokenizer = load_tokenizer()
    began = time.perf_counter()
    t = Tract.open(directory, readonly=True)
    opened = time.perf_counter() - began
    t.close()
    return {"open": [opened], "tokenizer": [tokenizer], "start_to_open": [time.time() - started], "imports": [imported]}


def open_inprocess(directory: str, runs: int) -> dict[str, Any]:
    """Read-only and writer opens of the tract in a process that has opened it before (first open untimed)."""
    load_tokenizer()
    Tract.open(directory, readonly=True).close()
    reader: list[float] = []
    writer: list[float] = []
    for _ in range(runs):
        gc.collect()
        began = time.perf_counter()
        t = Tract.open(directory, readonly=True)
        reader.append(time.perf_counter() - began)
        t.close()
        gc.collect()
        began = time.perf_counter()
        t = Tract.open(directory, sync="batch")
        writer.append(time.perf_counter() - began)
        t.close()
    return {"reader": reader, "writer": writer}


def query(directory: str, runs: int) -> dict[str, Any]:
    """query_by_config: the writer's steady call (its projection caught up by a first call), then the first
    call of read-only opens made after the writer closed (the persisted projection is current then)."""
    load_tokenizer()
    with Tract.open(directory, sync="batch") as t:
        began = time.perf_counter()
        matches = len(t.query_by_config(*QUERY))
        writer_first = time.perf_counter() - began
        steady: list[float] = []
        for _ in range(runs):
            gc.collect()
            began = time.perf_counter()
            t.query_by_config(*QUERY)
            steady.append(time.perf_counter() - began)
    reader_first: list[float] = []
    for _ in range(runs):
        gc.collect()
        reader = Tract.open(directory, readonly=True)
        began = time.perf_counter()
        reader.query_by_config(*QUERY)
        reader_first.append(time.perf_counter() - began)
        reader.close()
    return {"matches": matches, "writer_first": [writer_first], "steady": steady, "reader_first": reader_first}


def disk(directories: dict[str, str]) -> dict[str, Any]:
    """Per directory: the log and each file beside it, as (apparent bytes, allocated bytes)."""
    return {label: logapi.disk_usage(Path(directory)) for label, directory in directories.items()}

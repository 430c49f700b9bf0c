"""Resident memory and open time of one opened tract, per commit: what the commit view costs.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/view_memory.py                        # 10k, 100k and 300k commits
    .venv/bin/python bench/view_memory.py --commits 100000       # one size
    .venv/bin/python bench/view_memory.py --against ../wt-before # and another checkout, side by side

For each size a log is written with `EventLog.append` (the workload of
`bench/run.py`: ~50-word dialogue turns with a generation config each, every
10th commit an edit, a SKIP annotation after every 25th), closed (so its index
is saved), then opened in a fresh process per checkout measured. That process
imports tract and loads the tokenizer, reads its RSS, opens the tract with
`Tract.open`, and reads its RSS again: the difference divided by the commits is
the figure the issue targets (at most 300 B per commit before any content is
read). It then closes the tract and reports how much the close raised the
peak RSS (close must never need more than open), opens it again and times
the first compile (which reads every message's content from the log). A
last process times `Tract.open` of a 10k-commit tract in process (median of
21, tokenizer loaded, the file in the page cache). Figures are printed, never
asserted. Logs live in a temporary directory (honours $TMPDIR) deleted at exit.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # write the logs with this checkout, whatever else is installed

from events import AnnotationAdded, Event, EventLog, TractCreated, sealed_commit  # noqa: E402 - after sys.path, above

from workload import ENCODING  # noqa: E402 - after sys.path, above
from workload import WORDS as ALL_WORDS  # noqa: E402 - after sys.path, above

WORDS = ALL_WORDS[:50]
"""The commits' texts draw on the first 50 of the workload's words."""
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "o3", "gemini-2.5-pro")
EDIT_EVERY, SKIP_EVERY, RECENT, POOL = 10, 25, 50, 4096
BATCH = 10_000
TRACT_ID = "bench"


def write_log(directory: Path, commits: int, seed: int = 7) -> None:
    """`commits` commits (and their SKIP annotations) of one tract, appended in batches of `BATCH` events."""
    from tract.content import ContentRegistry, DialogueContent
    from tract.tokens import TiktokenCounter

    rng = random.Random(seed)
    registry, counter = ContentRegistry(), TiktokenCounter(ENCODING)
    pool: list[tuple[dict[str, Any], int]] = []
    for index in range(POOL):
        text = " ".join(rng.choices(WORDS, k=50)).capitalize() + "."
        _, payload = registry.validate(DialogueContent(role="user" if index % 2 else "assistant", text=text))
        pool.append((payload, counter.count_text(text)))
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    log = EventLog.open(directory, sync="batch")
    try:
        pending: list[Event] = [TractCreated(tract_id=TRACT_ID, created_at=start)]
        originals: list[str] = []
        head: str | None = None
        for ordinal in range(commits):
            payload, tokens = pool[rng.randrange(POOL)]
            config = {
                "model": rng.choice(MODELS),
                "temperature": round(rng.random(), 2),
                "top_p": round(rng.uniform(0.5, 1.0), 2),
                "extra": {
                    "reasoning": {"effort": rng.choice(("low", "medium", "high"))},
                    "seed": rng.randrange(1 << 31),
                },
            }
            edit = ordinal % EDIT_EVERY == EDIT_EVERY - 1 and bool(originals)
            event = sealed_commit(
                tract_id=TRACT_ID,
                created_at=start + timedelta(microseconds=3 * ordinal + 1),
                parent_hash=head,
                content=payload,
                content_type="dialogue",
                operation="edit" if edit else "append",
                response_to=rng.choice(originals[-RECENT:]) if edit else None,
                token_count=tokens,
                tokenizer=counter.name,
                generation_config=config,
            )
            head = event.commit_hash
            if not edit:
                originals.append(head)
            pending.append(event)
            if ordinal % SKIP_EVERY == SKIP_EVERY - 1:
                pending.append(
                    AnnotationAdded(
                        tract_id=TRACT_ID,
                        created_at=start + timedelta(microseconds=3 * ordinal + 2),
                        target_hash=rng.choice(originals[-RECENT:]),
                        priority="skip",
                        anchor=head,
                    )
                )
            if len(pending) >= BATCH:
                log.append(TRACT_ID, pending)
                pending = []
        if pending:
            log.append(TRACT_ID, pending)
        log.flush()
    finally:
        log.close()


_PRELUDE = r"""
import gc, json, resource, statistics, sys, time
sys.path.insert(0, {code!r})

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

from tract import Tract
from tract.tokens import TiktokenCounter
TiktokenCounter({encoding!r}).count_text("warm up")
gc.collect()
"""

_MEMORY = r"""
base = rss()
started = time.perf_counter()
t = Tract.open({directory!r})
opened = time.perf_counter() - started
gc.collect()
after_open, peak_open = rss(), peak()
t.close()
peak_close = peak()
t = Tract.open({directory!r})
started = time.perf_counter()
messages = len(t.compile().messages)
compiled = time.perf_counter() - started
after_compile = rss()
t.close()
print(json.dumps(dict(base=base, open_s=opened, after_open=after_open, peak_open=peak_open, peak_close=peak_close,
    compile_s=compiled, after_compile=after_compile, messages=messages)))
"""

_OPEN_TIME = r"""
Tract.open({directory!r}, readonly=True).close()
times = []
for _ in range(21):
    started = time.perf_counter()
    t = Tract.open({directory!r}, readonly=True)
    times.append(time.perf_counter() - started)
    t.close()
print(json.dumps(dict(median=statistics.median(times), best=min(times))))
"""


def child(code: Path, body: str, directory: Path) -> dict[str, Any]:
    source = (_PRELUDE + body).format(code=str(code), encoding=ENCODING, directory=str(directory))
    out = subprocess.run([sys.executable, "-c", source], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another tract checkout to measure on the same logs (repeatable)",
    )
    args = parser.parse_args(argv)
    checkouts = {"this": REPO, **{str(path): path.resolve() for path in args.against}}
    with tempfile.TemporaryDirectory(prefix="tract-view-memory-") as root:
        small = Path(root) / "open-10k"
        write_log(small, 10_000)
        for name, code in checkouts.items():
            timing = child(code, _OPEN_TIME, small)
            print(
                f"[{name}] in-process Tract.open of a 10k-commit tract (readonly): "
                f"median {timing['median'] * 1e3:.1f} ms, best {timing['best'] * 1e3:.1f} ms"
            )
        print(
            f"{'checkout':>10} {'commits':>8} {'open':>8} {'B/commit':>9} {'close raises peak':>18} "
            f"{'1st compile':>12} {'+ B/commit':>11}"
        )
        for commits in args.commits:
            directory = Path(root) / f"log-{commits}"
            write_log(directory, commits)
            for name, code in checkouts.items():
                m = child(code, _MEMORY, directory)
                per_commit = (m["after_open"] - m["base"]) / commits
                close_extra = (m["peak_close"] - m["peak_open"]) / 2**20
                compile_per_commit = (m["after_compile"] - m["base"]) / commits
                print(
                    f"{name[-10:]:>10} {commits:>8} {m['open_s'] * 1e3:>6.0f}ms {per_commit:>9.0f} "
                    f"{close_extra:>15.1f}MiB {m['compile_s'] * 1e3:>10.0f}ms {compile_per_commit:>11.0f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

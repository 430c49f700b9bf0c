"""Compile after compression: what it costs as history grows.

For each history length N: a system prompt and N ~20-word turns, then everything but the last
20 turns compressed into one summary. Then, on the live tract:

- compile() right after that compression (the cached compile takes the summary in: it costs the
  messages replaced, once);
- compile() after each of 20 more appends (median): the compressed context stays small, so this
  must not grow with N;
- compile() right after compressing the 10 oldest messages again (nesting the summary), as a
  budget does on a commit: it must not grow with N either;
- the context's token count (the same for every N);
- for comparison, a cold compile after reopening, which walks the whole history (it does grow).

    python bench/compression.py                  # N = 200, 1000, 4000 (about half a minute)
    python bench/compression.py --sizes 100,400  # smaller still
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import codepath

codepath.use(codepath.code_argument(sys.argv))

from tract import DialogueContent, Tract  # noqa: E402  (after codepath.use: the checkout measured)

WORDS = [
    "the",
    "log",
    "keeps",
    "every",
    "fact",
    "and",
    "a",
    "summary",
    "stands",
    "for",
    "what",
    "it",
    "replaced",
    "in",
    "the",
    "context",
]
KEPT = 20
"""Turns left uncompressed."""
APPENDS = 20


def turn(number: int) -> DialogueContent:
    """A ~20-word turn whose token count does not depend on its number (so every context is alike)."""
    return DialogueContent(role="user" if number % 2 else "assistant", text=f"{' '.join(WORDS)} {number:06d}")


def timed(call: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(directory: Path, size: int) -> dict[str, float]:
    with Tract.open(directory, sync="batch") as t:
        t.system("You are a careful assistant.")
        with t.batch():
            hashes = [t.commit(turn(number)).commit_hash for number in range(size)]
        t.compile()
        t.compress(to_commit=hashes[-KEPT - 1], content="what was said before, in a few words")
        after_compress = timed(t.compile)
        appends = []
        for number in range(size, size + APPENDS):
            t.commit(turn(number))
            appends.append(timed(t.compile))
        oldest = t.compile().commit_hashes[1:11]
        t.compress(commits=oldest, content="the oldest ten, in a few words")
        after_nested = timed(t.compile)
        tokens = t.compile().token_count
    with Tract.open(directory, readonly=True) as reader:
        cold = timed(reader.compile)
    return {
        "after compress (ms)": after_compress * 1e3,
        "after an append (us)": statistics.median(appends) * 1e6,
        "after a 10-message compress (us)": after_nested * 1e6,
        "context tokens": tokens,
        "cold compile (ms)": cold * 1e3,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,1000,4000", help="history lengths, comma-separated")
    parser.add_argument("--code", help="measure another checkout of the library")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tract-bench-compression-") as scratch:
        for size in sizes:
            rows.append((size, measure(Path(scratch) / str(size), size)))
    labels = list(rows[0][1])
    print(f"{'history':>8}  " + "  ".join(f"{label:>32}" for label in labels))
    for size, figures in rows:
        print(f"{size:>8}  " + "  ".join(f"{figures[label]:>32.1f}" for label in labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

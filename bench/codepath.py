"""Which checkout of the library the benchmark measures: this one, or the one `--code DIR` names.

The bench modules import `events`, `projections` and `tract` from whichever
directory comes first on `sys.path`; `use` puts the chosen one there. It must
run before any of them is imported, so `run.py` calls it first thing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CODE = REPO
"""The checkout under measurement (set by `use`)."""


def code_argument(argv: Sequence[str]) -> Path | None:
    """The directory `--code DIR` (or `--code=DIR`) names in `argv`, if any."""
    for index, argument in enumerate(argv):
        if argument == "--code" and index + 1 < len(argv):
            return Path(argv[index + 1]).resolve()
        if argument.startswith("--code="):
            return Path(argument.split("=", 1)[1]).resolve()
    return None


def use(code: Path | None) -> Path:
    """Measure the checkout in `code` (default: the one this benchmark lives in); returns it."""
    global CODE
    CODE = (code or REPO).resolve()
    if not (CODE / "tract" / "__init__.py").is_file():
        raise SystemExit(f"{CODE}: not a tract checkout (no tract/__init__.py)")
    if "tract" in sys.modules:
        raise RuntimeError("codepath.use() must run before tract is imported")
    sys.path.insert(0, str(CODE))
    return CODE

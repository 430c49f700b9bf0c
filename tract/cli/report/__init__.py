"""`tract report DIR|URL [-o report.html]`: one self-contained HTML page an auditor can open in a browser.

The verification and chain heads at the top, then per tract: counts, branches, token charts,
the graph of every branch, and the conversation as the model saw it at HEAD.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tract import __version__, verify
from tract.cli.common import end_progress, existing, output_file, progress, shown
from tract.cli.output import terminal_safe
from tract.cli.report.collect import collect
from tract.cli.report.page import render
from tract.errors import TractError


def write_report(directory: str | Path, output: str | Path, *, tract_id: str | None = None) -> bool:
    """Write the report of the log in `directory` (or the store a postgresql:// URL names) to `output`
    (whole, or not at all); returns whether the log verified."""
    found = existing(directory)
    location = found.resolve() if isinstance(found, Path) else found
    report = verify(location, progress=progress("verified"))
    end_progress()
    tract_ids = list(report.heads)
    if tract_id is not None:
        if tract_id not in report.heads:
            raise TractError(f"{shown(location)}: no tract {tract_id!r} in this log")
        tract_ids = [tract_id]
    page = render(collect(location, report, tract_ids, __version__))
    with output_file(Path(output)) as out:
        out.write(page.encode("utf-8"))
    return report.ok


def run_report(args: argparse.Namespace) -> int:
    verified = write_report(args.directory, args.output, tract_id=args.tract)
    print(f"wrote {args.output}")
    if not verified:
        print(
            f"tract report: {terminal_safe(shown(args.directory))} does not verify (the report says where)",
            file=sys.stderr,
        )
        return 1
    return 0

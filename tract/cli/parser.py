"""Every command's arguments, in one place: what `tract COMMAND --help` shows."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from tract import __version__
from tract.cli.common import USAGE_EXIT, anchor, limit, point_in_time
from tract.cli.demo import run_demo
from tract.cli.log import run_log
from tract.cli.output import FORMATS
from tract.cli.queries import run_diff, run_events, run_sql
from tract.cli.reads import RENDERINGS, run_branches, run_compile, run_show, run_verify
from tract.cli.report import run_report
from tract.cli.transfer import run_export, run_import
from tract.querying import SQL_TIMEOUT

Command = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line on stderr (exit status 2) like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: usage error: {message} (see '{self.prog} --help')\n")


def output_format(text: str) -> str:
    """An argparse type for `--format`, pointing to `--as` where a provider shape is asked for."""
    if text in RENDERINGS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is a provider shape: use --as {text} (--format is table, json, jsonl or csv)"
        )
    if text not in FORMATS:
        raise argparse.ArgumentTypeError(f"takes one of {', '.join(FORMATS)}, not {text!r}")
    return text


def _moved_to_as(text: str) -> str:
    raise argparse.ArgumentTypeError(f"export writes files: name their format with --as {text}")


def build() -> Parser:
    parser = Parser(prog="tract", description="Version control for LLM context windows.")
    parser.add_argument("--version", action="version", version=f"tract {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, run: Command, help: str, *, directory: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if directory:
            sub.add_argument("directory", help="log directory, or a postgresql:// URL of a store")
        sub.set_defaults(run=run)
        return sub

    def tract_option(
        sub: argparse.ArgumentParser, help: str = "tract id (default: the one the log was created with)"
    ) -> None:
        sub.add_argument("--tract", help=help)

    def format_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--format", type=output_format, default="table", metavar="{table,json,jsonl,csv}",
            help="how to print what was read (default: table)",
        )  # fmt: skip

    demo = command("demo", run_demo, "write a new log that shows what tract is for, and explain it", directory=False)
    demo.add_argument("directory", nargs="?", help="a new or empty directory (default: a fresh ./tract-demo-*)")

    check = command("verify", run_verify, "check a log is whole and unaltered (exit 1 if not)")
    check.add_argument(
        "--anchor", type=anchor,
        help="TRACT:POSITION:HASH, a chain head recorded earlier that the log must still hold "
        "(POSITION:HASH for a whole-log position of a format-1 log)",
    )  # fmt: skip
    format_option(check)

    log = command("log", run_log, "commits newest first, with branch names, HEAD and markers; --graph draws branches")
    log.add_argument("ref", nargs="?", help="a branch, or a commit hash or prefix (default: HEAD)")
    log.add_argument(
        "-n", "--limit", type=limit, default=10, metavar="N", help="how many commits, or 'all' (default 10)"
    )
    log.add_argument("--graph", action="store_true", help="draw branches and merges as git does")
    log.add_argument("--all", action="store_true", help="every branch's commits, not only those of REF")
    tract_option(log)
    format_option(log)

    show = command("show", run_show, "one commit, with its annotations and config history")
    show.add_argument("hash", help="commit hash or a unique prefix of it (4 characters or more)")
    tract_option(show)
    format_option(show)

    compiled = command("compile", run_compile, "the compiled context, now or at a past point")
    compiled.add_argument(
        "--at", type=point_in_time,
        help="a position in the tract (its N-th record), or an ISO time such as 2026-11-25T10:00:00+00:00",
    )  # fmt: skip
    compiled.add_argument("--commit", help="the context as it was at this commit (a hash or a unique prefix)")
    compiled.add_argument(
        "--as", dest="render", choices=tuple(RENDERINGS), help="print the request a provider's API takes, as JSON"
    )
    tract_option(compiled)
    format_option(compiled)

    events = command("events", run_events, "one tract's events, with their positions in the tract")
    events.add_argument("--from", dest="from_position", type=int, default=1, help="first position in the tract")
    events.add_argument("--to", dest="to_position", type=int, help="last position in the tract")
    events.add_argument("--type", action="append", help="only this event type (repeatable), e.g. CommitCreated")
    tract_option(events, "this tract's events (default: the one the log was created with)")
    format_option(events)

    branches = command("branches", run_branches, "the tract's branches (* marks the current one)")
    tract_option(branches)
    format_option(branches)

    diff = command("diff", run_diff, "how the compiled contexts of two branches or commits differ")
    diff.add_argument("a", help="branch name, or commit hash or prefix")
    diff.add_argument("b", help="branch name, or commit hash or prefix")
    tract_option(diff)
    format_option(diff)

    sql = command("sql", run_sql, "run one read-only SQL query over the analytics tables")
    sql.add_argument("query", help='e.g. "SELECT model, count(*) FROM commits GROUP BY model"')
    sql.add_argument(
        "--timeout",
        type=float,
        default=SQL_TIMEOUT,
        help=f"stop the query after this many seconds (default {SQL_TIMEOUT:g})",
    )
    format_option(sql)

    report = command("report", run_report, "write one self-contained HTML page for an auditor")
    report.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    tract_option(report, "only this tract (default: every tract of the log)")

    export = command("export", run_export, "the event log as JSON lines, or the analytics tables as Parquet")
    export.add_argument(
        "--as", dest="file_format", choices=("jsonl", "parquet"), default="jsonl", help="default: jsonl"
    )
    export.add_argument("--format", type=_moved_to_as, help=argparse.SUPPRESS)
    export.add_argument("out", help="output file (jsonl) or directory (parquet)")
    tract_option(export, "export only this tract's records (jsonl; default: every tract)")

    imported = command("import", run_import, "rebuild a log from a JSONL export, all or nothing", directory=False)
    imported.add_argument("jsonl", help="an export written by `tract export`")
    imported.add_argument("directory", help="new (or empty) log directory to create, or a postgresql:// URL of a store")
    return parser

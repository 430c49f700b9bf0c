"""`tract log`: commits newest first, with the names pointing at them and their markers, or (with
`--graph`) branches and merges drawn as git draws them."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from typing import Any

from tract.cli.common import reader
from tract.cli.graph import GraphRow, draw
from tract.cli.history import Markers, decoration_text, decorations, describe, marker_text, newest_first, parents
from tract.cli.output import Column, one_line, print_records
from tract.tract import Tract

FIELDS = (
    "commit_hash", "position", "created_at", "branch", "operation", "content_type", "token_count", "priority",
    "markers", "refs", "parent_hash", "merge_parent", "response_to", "replaces", "message", "text", "generation_config",
    "metadata",
)  # fmt: skip
"""Each commit's fields in json, jsonl and csv (`--graph` adds `graph`)."""

TABLE = (
    Column("commit", lambda record: record["commit_hash"][:12]),
    Column("created_at", lambda record: f"{record['created_at']:%Y-%m-%d %H:%M:%S}"),
    Column("operation", lambda record: record["operation"]),
    Column("type", lambda record: record["content_type"]),
    Column("tokens", lambda record: record["token_count"], ">"),
    Column("text", lambda record: _summary(record)),
)


def run_log(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        if args.graph and args.format == "table":
            for line in graph_lines(tract, args.ref, every_branch=args.all, limit=args.limit):
                print(line)
            return 0
        records, rows = _shown(tract, args.ref, args.all, args.limit)
        if not args.graph:
            print_records(args.format, records, fields=FIELDS, table=TABLE)
        else:
            drawn = (dict(record, graph=[row.lanes, *row.after]) for record, row in zip(records, rows, strict=True))
            print_records(args.format, drawn, fields=(*FIELDS, "graph"))
    return 0


def graph_lines(
    tract: Tract, ref: str | None = None, *, every_branch: bool = False, limit: int | None = None
) -> Iterator[str]:
    """The graph as text: each commit's lanes, short hash, type, tokens, names, markers and the start
    of its text; then the lines that lead to the next commit."""
    records, rows = _shown(tract, ref, every_branch, limit)
    for record, row in zip(records, rows, strict=True):
        yield (
            f"{row.lanes} {record['commit_hash'][:12]} {record['content_type']} {record['token_count']}t "
            f"{_summary(record)}"
        ).rstrip()
        yield from row.after


def _shown(
    tract: Tract, ref: str | None, every_branch: bool, limit: int | None
) -> tuple[Iterator[dict[str, Any]], list[GraphRow]]:
    """The records of the commits shown (read as they are printed) and their graph rows (a row
    depends only on the commits above it, so the first N rows are drawn from the first N commits)."""
    shown = newest_first(tract, ref, every_branch=every_branch, limit=limit)
    markers = Markers.among(shown)
    names = decorations(tract)
    rows = draw([(entry.commit_hash, parents(entry)) for entry in shown])
    return (describe(tract, entry, markers, names) for entry in shown), rows


def _summary(record: Mapping[str, Any]) -> str:
    """The names pointing at a commit, its markers and the start of its text, on one line."""
    parts = (
        decoration_text(record["refs"]),
        marker_text(record["markers"], record["response_to"], record["replaces"]),
        one_line(record["text"]),
    )
    return " ".join(part for part in parts if part)

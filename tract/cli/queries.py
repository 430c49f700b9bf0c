"""The commands that read many things: `events`, `diff` and `sql`, printed in the `--format` asked for."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

import msgspec

from tract.cli.common import CommandLineError, reader
from tract.cli.output import Column, json_text, one_line, print_records, terminal_safe
from tract.models import ContextDiff, LoggedEvent, Message

EVENT_FIELDS = ("position", "type", "created_at", "event")
CHANGE_FIELDS = (
    "change", "commit_hash", "a_position", "b_position", "a_role", "a_content", "b_role", "b_content", "a_config",
    "b_config",
)  # fmt: skip
_OMITTED_DETAILS = frozenset(("type", "tract_id", "created_at"))


def run_events(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        chosen = tract.events(
            tract_id=args.tract, types=args.type, from_position=args.from_position, to_position=args.to_position
        )
        table = (
            Column("position", lambda record: record["position"], ">"),
            Column("created_at", lambda record: record["created_at"]),
            Column("type", lambda record: record["type"]),
            Column("details", lambda record: one_line(json_text(_details(record["event"])), 100)),
        )
        print_records(args.format, _event_records(chosen), fields=EVENT_FIELDS, table=table)
    return 0


def _event_records(chosen: Iterator[LoggedEvent]) -> Iterator[dict[str, Any]]:
    for logged in chosen:
        yield {
            "position": logged.position,
            "type": logged.type,
            "created_at": logged.created_at,
            "event": msgspec.to_builtins(logged.event),
        }


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in _OMITTED_DETAILS}


def run_diff(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        diff = tract.diff(args.a, args.b)
    changes = list(_changes(diff))
    if args.format == "table":
        for change in changes:
            print(terminal_safe(_change_line(change)))
        print(terminal_safe(f"tokens: {args.a} {diff.a_tokens}, {args.b} {diff.b_tokens}"))
    elif args.format == "json":
        record = {
            "a": args.a, "b": args.b, "a_head": diff.a_head, "b_head": diff.b_head,
            "a_tokens": diff.a_tokens, "b_tokens": diff.b_tokens, "changes": changes,
        }  # fmt: skip
        print(json_text(record, indent=2))
    else:
        print_records(args.format, changes, fields=CHANGE_FIELDS)
    return 0


def _changes(diff: ContextDiff) -> Iterator[dict[str, Any]]:
    for kind, changes in (("removed", diff.removed), ("added", diff.added), ("changed", diff.changed)):
        for change in changes:
            yield {
                "change": kind,
                "commit_hash": change.commit_hash,
                "a_position": change.a_position,
                "b_position": change.b_position,
                "a_role": _role(change.a_message),
                "a_content": _content(change.a_message),
                "b_role": _role(change.b_message),
                "b_content": _content(change.b_message),
                "a_config": None,
                "b_config": None,
            }
    for config in diff.config_changes:
        yield {
            "change": "config", "commit_hash": config.commit_hash, "a_position": None, "b_position": None,
            "a_role": None, "a_content": None, "b_role": None, "b_content": None,
            "a_config": config.a_config, "b_config": config.b_config,
        }  # fmt: skip


def _role(message: Message | None) -> str | None:
    return None if message is None else message.role


def _content(message: Message | None) -> str | None:
    return None if message is None else message.content


def _change_line(change: dict[str, Any]) -> str:
    short = change["commit_hash"][:12]
    a = f"{change['a_role']}: {one_line(change['a_content'] or '')}" if change["a_role"] else ""
    b = f"{change['b_role']}: {one_line(change['b_content'] or '')}" if change["b_role"] else ""
    kind = change["change"]
    if kind == "removed":
        return f"- [{change['a_position']}] {short} {a}"
    if kind == "added":
        return f"+ [{change['b_position']}] {short} {b}"
    if kind == "changed":
        return f"~ [{change['a_position']}->{change['b_position']}] {short} {a} => {b}"
    return f"config {short}: {json_text(change['a_config'])} => {json_text(change['b_config'])}"


def run_sql(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        result = tract.sql(args.query, timeout=args.timeout)
    columns = result.columns
    if len(set(columns)) != len(columns) and args.format in ("json", "jsonl"):
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        raise CommandLineError(
            f"the query returns several columns named {', '.join(map(repr, repeated))}: "
            f"name them apart (AS) for --format {args.format}"
        )
    keys = [str(index) for index in range(len(columns))] if args.format in ("table", "csv") else columns
    records = (dict(zip(keys, row, strict=True)) for row in result.rows)
    table = [Column(name, itemgetter(key)) for name, key in zip(columns, keys, strict=True)]
    print_records(args.format, records, fields=keys, header=columns, table=table, row_count=True)
    return 0

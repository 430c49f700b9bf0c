"""The commands that read one thing and print it: `verify`, `show`, `compile` and `branches`.

Each builds records with documented field names and hands them to `tract.cli.output`, which
prints them in the `--format` asked for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tract import verify
from tract.cli.common import CommandLineError, anchor_text, end_progress, existing, progress, reader
from tract.cli.history import content_text
from tract.cli.output import Column, cell_text, json_text, print_record, print_records, terminal_safe
from tract.compiled import CompiledContext
from tract.errors import TractError
from tract.tract import Tract

RENDERINGS: dict[str, Callable[[CompiledContext], Any]] = {
    "openai": CompiledContext.to_openai,
    "openai-responses": CompiledContext.to_openai_responses,
    "anthropic": CompiledContext.to_anthropic,
    "gemini": CompiledContext.to_gemini,
}
MESSAGE_FIELDS = (
    "index", "commit_hash", "content_type", "role", "content", "name", "tool_calls", "tool_call_id", "is_error",
    "generation_config",
)  # fmt: skip
"""`compile`'s items (jsonl, csv): each message, with the commit it comes from and its config."""
BRANCH_FIELDS = ("name", "head", "commit_count", "current")


def run_verify(args: argparse.Namespace) -> int:
    report = verify(existing(args.directory), anchor=args.anchor, progress=progress("verified"))
    end_progress()
    heads = [
        {
            "tract_id": tract_id,
            "position": head.number,
            "hash": head.hash,
            "anchor": anchor_text(tract_id, head.number, head.hash),
        }
        for tract_id, head in report.heads.items()
    ]
    problem = report.problem
    record = {
        "ok": report.ok,
        "summary": str(report),
        "records_checked": report.records_checked,
        "format": report.format,
        "problem": None if problem is None else {
            "tract_id": problem.tract_id, "position": problem.position, "kind": problem.kind,
            "detail": problem.detail, "offset": problem.offset,
        },
        "heads": heads,
        "log_head": None if report.log_head is None else {
            "position": report.log_head.number, "hash": report.log_head.hash
        },
    }  # fmt: skip

    def table() -> str:
        lines = [str(report)] + [f"chain head {head['anchor']}" for head in heads]
        if report.log_head is not None:
            lines.append(
                f"whole-log chain head (format {report.format}) {report.log_head.number}:{report.log_head.hash}"
            )
        return "\n".join(lines)

    if report.ok or args.format != "table":
        print_record(args.format, record, table=table)
    if not report.ok:
        print(f"tract verify: {terminal_safe(str(report))}", file=sys.stderr)
        return 1
    return 0


def run_show(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        commit_hash = tract.resolve(args.hash)
        info = tract.get_commit(commit_hash)
        assert info is not None
        record: dict[str, Any] = info.model_dump(mode="json")
        record["annotations"] = [a.model_dump(mode="json") for a in tract.get_annotations(commit_hash)]
        record["config_history"] = [c.model_dump(mode="json") for c in tract.config_history(commit_hash)]

    def table() -> str:
        shown = {key: value for key, value in record.items() if key != "content"}
        width = max(map(len, shown))
        lines = [f"{key:<{width}}  {cell_text(value)}" for key, value in shown.items()]
        text = terminal_safe(content_text(record["content"]))
        return "\n".join([*lines, "", *("    " + line for line in text.splitlines())])

    print_record(args.format, record, table=table)
    return 0


def run_compile(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        compiled = _compiled(tract, args.at, args.commit)
    if args.render is not None:
        if args.format not in ("table", "json", "jsonl"):
            raise CommandLineError(
                f"--as {args.render} prints the provider's JSON: --format {args.format} does not apply"
            )
        rendered = RENDERINGS[args.render](compiled)
        print(json_text(rendered) if args.format == "jsonl" else json_text(rendered, indent=2))
        return 0
    if args.format == "json":
        print(json_text(compiled.model_dump(mode="json"), indent=2))
        return 0
    if args.format == "table":
        for message in compiled.messages:
            name = f" ({message.name})" if message.name else ""
            print(terminal_safe(f"[{message.role}{name}] {message.content}"))
        print(
            f"-- {compiled.commit_count} messages, {compiled.token_count} tokens ({compiled.token_source}); "
            f"{api_note(compiled)}"
        )
        return 0
    configs = compiled.generation_configs
    records = (
        {"index": index, "commit_hash": commit_hash, "content_type": content_type}
        | message.model_dump(mode="json")
        | {"generation_config": config}
        for index, (message, commit_hash, content_type, config) in enumerate(
            zip(compiled.messages, compiled.commit_hashes, compiled.content_types, configs, strict=True)
        )
    )
    print_records(args.format, records, fields=MESSAGE_FIELDS)
    return 0


def api_note(compiled: CompiledContext) -> str:
    usage = compiled.api_usage
    if usage is None:
        return "no API usage recorded for this context"
    return f"API reported {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"


def _compiled(tract: Tract, at: int | datetime | None, commit: str | None) -> CompiledContext:
    if at is not None and commit is not None:
        raise CommandLineError("give --at or --commit, not both")
    if commit is not None:
        return tract.compile(at_commit=tract.resolve(commit))
    if isinstance(at, int):
        last = tract.chain_head.position
        if at > last:
            raise TractError(f"--at {at} is past the tract's last position, {last}")
        with tract.replay(until_position=at) as then:
            return then.compile()
    if at is not None:
        with tract.replay(until_time=at) as then:
            return then.compile()
    return tract.compile()


def run_branches(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        branches = [branch.model_dump() for branch in tract.list_branches()]
    table = (
        Column("", lambda branch: "*" if branch["current"] else ""),
        Column("branch", lambda branch: branch["name"]),
        Column("head", lambda branch: (branch["head"] or "")[:12]),
        Column("commits", lambda branch: branch["commit_count"], ">"),
    )
    print_records(args.format, branches, fields=BRANCH_FIELDS, table=table)
    return 0

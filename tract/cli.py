"""The `tract` command line. Every failure is one readable line on stderr and a non-zero exit.

Commands that only read open the log read-only: they take no lock, so they
work while a writer runs, and never change a byte of the log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from events import Anchor, LogError
from events.opening import import_location, verify_location
from events.postgres import StoreSettings, is_store_url
from tract.compiled import CompiledContext
from tract.content import DialogueContent, InstructionContent
from tract.errors import TractError, storage_errors
from tract.models import CommitInfo
from tract.querying import SQL_TIMEOUT
from tract.tract import Tract

RENDERINGS: dict[str, Callable[[CompiledContext], Any]] = {
    "openai": CompiledContext.to_openai,
    "openai-responses": CompiledContext.to_openai_responses,
    "anthropic": CompiledContext.to_anthropic,
    "gemini": CompiledContext.to_gemini,
}
FORMATS = ("text", *RENDERINGS, "json")


def _demo(args: argparse.Namespace) -> int:
    store = is_store_url(args.directory)
    with Tract.open(args.directory) as tract:
        where = tract.location if store else Path(args.directory).resolve()
        print(f"{'store' if store else 'log directory'}: {where}  (tract {tract.tract_id})")
        config = {"model": "gpt-4o-mini", "temperature": 0.3, "top_p": 1.0}
        prompt = [
            InstructionContent(text="You are a concise assistant for a bicycle repair shop."),
            DialogueContent(role="user", text="My chain keeps slipping on the smallest cog. What should I check?"),
        ]
        reply = DialogueContent(
            role="assistant", text="Check chain wear first, then the rear derailleur's limit screw and cable tension."
        )
        for content in prompt:
            _show_commit(
                tract.commit(content, generation_config=config if content.content_type == "dialogue" else None)
            )
        compiled = tract.compile()
        print(f"compiled {compiled.commit_count} messages, {compiled.token_count} tokens ({compiled.token_source})")
        for message in compiled.messages:
            print(f"  {message.role:>9}: {message.content}")
        _show_commit(tract.commit(reply, generation_config=config))
        sent = tract.record_usage({"prompt_tokens": 32, "completion_tokens": 19, "total_tokens": 51})
        print(f"recorded usage for the {sent.commit_count} messages sent: {_api_note(sent)}")
        print(f"HEAD {tract.head}")
        head = tract.chain_head
        print(f"chain head {_anchor_text(head.tract_id, head.position, head.hash)}")
    return 0


def _show_commit(info: CommitInfo) -> None:
    print(f"commit {info.commit_hash[:12]}  {info.content_type:<11} {info.token_count:>3} tokens")


def _api_note(compiled: CompiledContext) -> str:
    usage = compiled.api_usage
    if usage is None:
        return "no API usage recorded for this context"
    return f"API reported {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"


def _verify(args: argparse.Namespace) -> int:
    anchor = _anchor(args.anchor) if args.anchor else None
    report = verify_location(_existing(args.directory), anchor=anchor, progress=_progress("verified"))
    _end_progress()
    if report.ok:
        print(report)
        for tract_id, head in report.heads.items():
            print(f"chain head {_anchor_text(tract_id, head.number, head.hash)}")
        if report.log_head is not None:
            print(f"whole-log chain head (format {report.format}) {report.log_head.number}:{report.log_head.hash}")
        return 0
    print(f"tract verify: {report}", file=sys.stderr)
    return 1


def _log(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        for info in tract.log(limit=args.limit):
            text = _preview(info.content)
            print(f"{info.commit_hash[:12]}  {info.created_at:%Y-%m-%d %H:%M:%S}  {info.operation.value:<6} "
                  f"{info.content_type:<11} {info.token_count:>5}  {_summary_mark(info)}{text}")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        commit_hash = tract.resolve(args.hash)
        info = tract.get_commit(commit_hash)
        assert info is not None
        shown: dict[str, Any] = info.model_dump(mode="json")
        shown["annotations"] = [a.model_dump(mode="json") for a in tract.get_annotations(commit_hash)]
        shown["config_history"] = [c.model_dump(mode="json") for c in tract.config_history(commit_hash)]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def _compile(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        view = tract if args.at is None else _replayed(tract, args.at)
        compiled = view.compile()
        if args.format == "text":
            for message in compiled.messages:
                name = f" ({message.name})" if message.name else ""
                print(f"[{message.role}{name}] {message.content}")
            print(
                f"-- {compiled.commit_count} messages, {compiled.token_count} tokens ({compiled.token_source}); "
                f"{_api_note(compiled)}"
            )
        elif args.format in RENDERINGS:
            print(json.dumps(RENDERINGS[args.format](compiled), indent=2, ensure_ascii=False))
        else:
            print(json.dumps(compiled.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def _events(args: argparse.Namespace) -> int:
    encoder = msgspec.json.Encoder()
    with _reader(args) as tract:
        chosen = tract.events(
            tract_id=args.tract, types=args.type, from_position=args.from_position, to_position=args.to_position
        )
        out = sys.stdout.buffer
        for logged in chosen:
            out.write(encoder.encode({"position": logged.position, "type": logged.type, "event": logged.event}))
            out.write(b"\n")
        out.flush()
    return 0


def _branches(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        rows = [("*" if b.current else "", b.name, (b.head or "")[:12], b.commit_count) for b in tract.list_branches()]
    print(format_table(["", "branch", "head", "commits"], rows))
    return 0


def _diff(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        diff = tract.diff(args.a, args.b)
    for change in diff.removed:
        print(f"- [{change.a_position}] {change.commit_hash[:12]} {_message(change.a_message)}")
    for change in diff.added:
        print(f"+ [{change.b_position}] {change.commit_hash[:12]} {_message(change.b_message)}")
    for change in diff.changed:
        print(f"~ [{change.a_position}->{change.b_position}] {change.commit_hash[:12]} "
              f"{_message(change.a_message)} => {_message(change.b_message)}")  # fmt: skip
    for config in diff.config_changes:
        print(f"config {config.commit_hash[:12]}: {json.dumps(config.a_config)} => {json.dumps(config.b_config)}")
    print(f"tokens: {args.a} {diff.a_tokens}, {args.b} {diff.b_tokens}")
    return 0


def _message(message: Any) -> str:
    return "" if message is None else f"{message.role}: {_preview({'text': message.content})}"


def _sql(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        result = tract.sql(args.query, timeout=args.timeout)
    print(format_table(result.columns, result.rows))
    return 0


def _export(args: argparse.Namespace) -> int:
    with _reader(args) as tract:
        if args.format == "parquet":
            for path in tract.export_parquet(args.out):
                print(path)
            return 0
        with _output_file(Path(args.out)) as out:
            count = tract.export_jsonl(out, tract_id=args.tract, progress=_progress("exported"))
        _end_progress()
        print(f"exported {count} records to {args.out}")
        if args.tract is not None:
            head = tract.chain_head
            print(f"chain head {_anchor_text(head.tract_id, head.position, head.hash)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    with open(args.jsonl, "rb") as lines, storage_errors():
        heads = import_location(lines, args.directory, progress=_progress("imported"))
    _end_progress()
    records = sum(head.number for head in heads.values())
    where = StoreSettings.parse(args.directory).where if is_store_url(args.directory) else args.directory
    print(f"imported {records} records of {len(heads)} tract{'' if len(heads) == 1 else 's'} into {where}")
    for tract_id, head in heads.items():
        print(f"chain head {_anchor_text(tract_id, head.number, head.hash)}")
    return 0


# -- helpers ----------------------------------------------------------------------


@contextmanager
def _output_file(target: Path) -> Iterator[IO[bytes]]:
    """A file that becomes `target` only once completely written (on any failure, a full disk,
    nothing is left and an earlier `target` is untouched). A target that is not a regular file
    (/dev/stdout, a pipe) is written directly."""
    if target.exists() and not target.is_file():
        with open(target, "wb") as out:
            yield out
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            with storage_errors():
                out.flush()
                os.fsync(out.fileno())
        with storage_errors():
            os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as an aligned plain-text table, with the row count underneath."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths)) for row in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    return "NULL" if value is None else str(value)


def _summary_mark(info: CommitInfo) -> str:
    """A compress commit's line says what it stands for: `[summary of N: first..last]`."""
    compression = info.compression
    if compression is None:
        return ""
    replaced = compression.replaced
    span = replaced[0][:8] if len(replaced) == 1 else f"{replaced[0][:8]}..{replaced[-1][:8]}"
    kept = f", {len(compression.preserved)} kept" if compression.preserved else ""
    return f"[summary of {len(replaced)}: {span}{kept}] "


def _preview(content: dict[str, Any], width: int = 60) -> str:
    text = content.get("text") or content.get("content") or json.dumps(content, ensure_ascii=False)
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _existing(directory: str) -> Path | str:
    """A log directory that exists, or a store's URL (its server says whether it holds a store)."""
    if is_store_url(directory):
        return directory
    path = Path(directory)
    if not path.is_dir():
        raise TractError(f"{directory}: no such log directory")
    return path


def _reader(args: argparse.Namespace) -> Tract:
    """The log opened read-only (folding it may take a while on a long log without a snapshot)."""
    directory = _existing(args.directory)
    if sys.stderr.isatty():
        shown = "the store" if is_store_url(directory) else directory  # a URL may hold a password
        print(f"\rreading {shown}…", end="", file=sys.stderr, flush=True)
    try:
        return Tract.open(directory, tract_id=getattr(args, "tract", None), readonly=True)
    finally:
        _end_progress()


def _replayed(tract: Tract, at: str) -> Tract:
    if at.isdigit():
        return tract.replay(until_position=int(at))
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise TractError(f"--at takes a position in the tract or an ISO time, not {at!r}") from None
    return tract.replay(until_time=moment)


def _anchor(text: str) -> Anchor:
    """TRACT:POSITION:HASH (a tract's chain head), or POSITION:HASH (a whole-log position of a format-1 log)."""
    parts = text.rsplit(":", 2)
    if len(parts) < 2 or not parts[-2].isdigit() or len(parts[-1]) != 64 or parts[0] == "":
        raise TractError(
            f"--anchor takes TRACT:POSITION:HASH (a chain head as printed by verify, export or import), not {text!r}"
        )
    return (parts[0] if len(parts) == 3 else None), int(parts[-2]), parts[-1]


def _anchor_text(tract_id: str, position: int, digest: str) -> str:
    """A chain head as `verify --anchor` takes it back."""
    return f"{tract_id}:{position}:{digest}"


def _progress(label: str) -> Callable[[int], None] | None:
    """A progress line on stderr, only when a person is watching it."""
    if not sys.stderr.isatty():
        return None
    return lambda count: print(f"\r{label} {count:,} records…", end="", file=sys.stderr, flush=True)


def _end_progress() -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tract", description="Version control for LLM context windows.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help: str, *, directory: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if directory:
            sub.add_argument("directory", help="log directory, or a postgresql:// URL of a store")
        sub.set_defaults(run=run)
        return sub

    def tract_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tract", help="tract id (default: the one the log was created with)")

    demo = command("demo", _demo, "write a short conversation to a log directory and compile it", directory=False)
    demo.add_argument(
        "directory", nargs="?", default="tract-demo", help="log directory or postgresql:// URL (default: ./tract-demo)"
    )

    check = command("verify", _verify, "check a log is whole and unaltered")
    check.add_argument(
        "--anchor",
        help="TRACT:POSITION:HASH, a chain head recorded earlier that the log must still hold "
        "(POSITION:HASH for a whole-log position of a format-1 log)",
    )

    log = command("log", _log, "list commits from HEAD, newest first")
    log.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    tract_option(log)

    show = command("show", _show, "one commit as JSON, with its annotations and config history")
    show.add_argument("hash", help="commit hash or a unique prefix of it")
    tract_option(show)

    compiled = command("compile", _compile, "the compiled context, now or at a past point")
    compiled.add_argument(
        "--at", help="a position in the tract (its N-th record), or an ISO time such as 2026-11-25T10:00:00+00:00"
    )
    compiled.add_argument("--format", choices=FORMATS, default="text")
    tract_option(compiled)

    events = command("events", _events, "the log's events as JSON lines")
    events.add_argument("--from", dest="from_position", type=int, default=1, help="first position in the tract")
    events.add_argument("--to", dest="to_position", type=int, help="last position in the tract")
    events.add_argument("--type", action="append", help="only this event type (repeatable), e.g. CommitCreated")
    events.add_argument("--tract", help="this tract's events (default: the one the log was created with)")

    branches = command("branches", _branches, "the tract's branches (* marks the current one)")
    tract_option(branches)

    diff = command("diff", _diff, "how the compiled contexts of two branches or commits differ")
    diff.add_argument("a", help="branch name or commit hash")
    diff.add_argument("b", help="branch name or commit hash")
    tract_option(diff)

    sql = command("sql", _sql, "run one read-only SQL query over the analytics tables")
    sql.add_argument("query", help='e.g. "SELECT model, count(*) FROM commits GROUP BY model"')
    sql.add_argument(
        "--timeout", type=float, default=SQL_TIMEOUT, help=f"stop the query after this many seconds (default {SQL_TIMEOUT:g})"
    )

    export = command("export", _export, "the event log as JSON lines, or the analytics tables as Parquet")
    export.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    export.add_argument("out", help="output file (jsonl) or directory (parquet)")
    export.add_argument("--tract", help="export only this tract's records (jsonl; default: every tract)")

    imported = command("import", _import, "rebuild a log from a JSONL export", directory=False)
    imported.add_argument("jsonl", help="an export written by `tract export --format jsonl`")
    imported.add_argument("directory", help="new log directory to create, or a store's postgresql:// URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # the reader went away (`| head`): stop quietly
        return 141
    except (TractError, LogError, OSError, ValueError) as error:
        _end_progress()
        message = " ".join(str(error).split())
        print(f"tract {args.command}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tract {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `tract` command line. Every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tract.content import DialogueContent, InstructionContent
from tract.errors import TractError
from tract.tract import Tract


def _demo(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    with Tract.open(directory) as tract:
        print(f"log directory: {directory.resolve()}  (tract {tract.tract_id})")
        turns = [
            InstructionContent(text="You are a concise assistant for a bicycle repair shop."),
            DialogueContent(role="user", text="My chain keeps slipping on the smallest cog. What should I check?"),
            DialogueContent(
                role="assistant",
                text="Check chain wear first, then the rear derailleur's limit screw and cable tension.",
            ),
        ]
        config = {"model": "gpt-4o-mini", "temperature": 0.3, "top_p": 1.0}
        for content in turns:
            info = tract.commit(content, generation_config=config if content.content_type == "dialogue" else None)
            print(f"commit {info.commit_hash[:12]}  {info.content_type:<11} {info.token_count:>3} tokens")
        compiled = tract.compile()
        print(f"compiled {compiled.commit_count} messages, {compiled.token_count} tokens ({compiled.token_source})")
        for message in compiled.messages:
            print(f"  {message.role:>9}: {message.content}")
        after = tract.record_usage({"prompt_tokens": 61, "completion_tokens": 19, "total_tokens": 80})
        print(f"recorded usage: {after.token_count} prompt tokens ({after.token_source})")
        print(f"HEAD {tract.head}")
    return 0


def _sql(args: argparse.Namespace) -> int:
    with Tract.open(_existing(args.directory), readonly=True) as tract:
        result = tract.sql(args.query)
    print(format_table(result.columns, result.rows))
    return 0


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


def _existing(directory: str) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise TractError(f"{directory}: no such log directory")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tract", description="Version control for LLM context windows.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write a short conversation to a log directory and compile it")
    demo.add_argument("directory", nargs="?", default="tract-demo", help="log directory (default: ./tract-demo)")
    demo.set_defaults(run=_demo)
    sql = commands.add_parser("sql", help="run a read-only SQL query over a log's analytics tables")
    sql.add_argument("directory", help="log directory")
    sql.add_argument("query", help='one SELECT, e.g. "SELECT model, count(*) FROM commits GROUP BY model"')
    sql.set_defaults(run=_sql)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (TractError, OSError, ValueError) as error:
        print(f"tract {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tract {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

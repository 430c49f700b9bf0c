"""`tract export` and `tract import`: a log out as JSON lines (or its analytics as Parquet), and back in.

An import is all or nothing: into a directory, `events.jsonl.import_jsonl` builds the log in a
hidden directory beside the target, verifies it, and renames it into place only then; into a
PostgreSQL store, it is one transaction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from events.opening import import_location
from tract.cli.common import anchor_text, end_progress, output_file, progress, reader, shown
from tract.errors import storage_errors


def run_export(args: argparse.Namespace) -> int:
    with reader(args) as tract:
        if args.file_format == "parquet":
            for path in tract.export_parquet(args.out):
                print(path)
            return 0
        with output_file(Path(args.out)) as out:
            count = tract.export_jsonl(out, tract_id=args.tract, progress=progress("exported"))
        end_progress()
        print(f"exported {count} records to {args.out}")
        if args.tract is not None:
            head = tract.chain_head
            print(f"chain head {anchor_text(head.tract_id, head.position, head.hash)}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    with open(args.jsonl, "rb") as lines, storage_errors():
        heads = import_location(lines, args.directory, progress=progress("imported"))
    end_progress()
    records = sum(head.number for head in heads.values())
    print(
        f"imported {records} records of {len(heads)} tract{'' if len(heads) == 1 else 's'} into {shown(args.directory)}"
    )
    for tract_id, head in heads.items():
        print(f"chain head {anchor_text(tract_id, head.number, head.hash)}")
    return 0

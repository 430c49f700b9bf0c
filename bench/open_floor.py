"""What an open that checks every record it reads costs at least, per record, beside what `Tract.open` costs.

    .venv/bin/python bench/open_floor.py DIR [--runs N]

DIR is a log directory holding one tract (e.g. one `bench/scale.py` builds, or
`scale_build.build_tract`). An open reads the tract's records and checks each
(CRC-32, SHA-256 of the record for its hash chain, msgpack decode) before
folding it into the commit view. The floor is those three library calls per
record, on the file's bytes read at once, with nothing kept: no open that
believes nothing but the log can do less in Python. Then the parts of the real
open: the checked read alone (`EventLog.read_hashed`), the fold alone (into a
`CommitView`), and `Tract.open(readonly=True)` as a user calls it. CPU time
(process_time), the minimum of the runs: the machine may be shared.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec

from events import LOG_FILE, EventLog, Record
from events.framing import FILE_HEADER, FRAME_HEADER
from projections.bulk import paused_gc
from projections.commit_view import CommitView
from tract import Tract


def record_bodies(directory: Path) -> list[memoryview]:
    """Every framed record of the log (flags byte first), in file order."""
    data = memoryview((directory / LOG_FILE).read_bytes())
    bodies, at = [], FILE_HEADER.size
    while at + FRAME_HEADER.size <= len(data):
        length, _, _ = FRAME_HEADER.unpack_from(data, at)
        at += FRAME_HEADER.size
        bodies.append(data[at : at + length])
        at += length
    return bodies


def floor(bodies: list[memoryview]) -> None:
    decode = msgspec.msgpack.Decoder(Record).decode
    sha256, crc32 = hashlib.sha256, zlib.crc32
    for body in bodies:
        crc32(body)
        sha256(body[1:]).digest()
        decode(body[1:])


def cpu_seconds(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        began = time.process_time()
        call()
        times.append(time.process_time() - began)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    bodies = record_bodies(args.directory)
    log = EventLog.open(args.directory, readonly=True)
    (tract_id,) = log.tract_ids()
    records = list(log.read_hashed(tract_id))

    def read() -> None:
        with paused_gc():
            for _ in log.read_hashed(tract_id):
                pass

    def fold() -> None:
        view = CommitView(capacity=len(records))
        view.apply_hashed(records)

    Tract.open(args.directory, readonly=True).close()  # the tokenizer and the process's first-use costs
    rows = [
        ("floor: CRC-32 + SHA-256 + msgpack decode per record", cpu_seconds(lambda: floor(bodies), args.runs)),
        ("checked read of the tract (EventLog.read_hashed)", cpu_seconds(read, args.runs)),
        ("fold into the commit view (CommitView.apply_hashed)", cpu_seconds(fold, args.runs)),
        (
            "Tract.open(readonly=True) + close",
            cpu_seconds(lambda: Tract.open(args.directory, readonly=True).close(), args.runs),
        ),
    ]
    log.close()
    print(f"{args.directory}: {len(bodies):,} records, {statistics.mean(map(len, bodies)):,.0f} B each on average")
    print("| part | CPU time | per record |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:,.1f} ms | {seconds / len(bodies) * 1e6:,.2f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

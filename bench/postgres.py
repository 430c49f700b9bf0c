"""The log on PostgreSQL: commits/s with 1, 2 and 4 writer processes on separate tracts beside a plain
INSERT ... COMMIT loop on the same table shape (the floor) and the file log; open and compile of a
long tract; analytics catch-up.

    TRACT_TEST_POSTGRES_URL=postgresql://... python bench/postgres.py [--seconds 3] [--commits 10000] [--events 1000000]

Each figure runs in a schema of its own, dropped after. The machine's cores are shared by the client
processes and the server: where the totals stop growing is where they saturate.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from events import EventLog, UsageRecorded
from events.opening import open_log
from events.postgres.schema import tables
from tract import Tract
from tract.content import DialogueContent

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(tract: str, n: int) -> UsageRecorded:
    return UsageRecorded(
        tract_id=tract, created_at=NOW, head_hash=f"{n:064x}", prompt_tokens=n, completion_tokens=1, total_tokens=n + 1
    )


@contextmanager
def schema(server: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{server}{'&' if '?' in server else '?'}schema={name}"
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _store_writer(
    url: str, tract: str, seconds: float, start: multiprocessing.Barrier, out: multiprocessing.Queue
) -> None:
    log = open_log(url)
    start.wait()
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n = log.append(tract, [event(tract, n)], expected=n)
    log.close()
    out.put(n)


def _insert_writer(
    url: str, tract: str, seconds: float, start: multiprocessing.Barrier, out: multiprocessing.Queue
) -> None:
    """The floor: one autocommit INSERT per commit of a same-sized body into a table of the same shape."""
    base, name = url.split("?schema=")
    body = bytes(120)
    with psycopg.connect(base, autocommit=True) as connection:
        start.wait()
        deadline, n = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            n += 1
            connection.execute(
                f'INSERT INTO "{name}".plain (tract_id, number, batch_end, body) VALUES (%s, %s, true, %s)',
                (tract, n, body),
            )
    out.put(n)


def run_writers(target: Callable[..., None], url: str, writers: int, seconds: float) -> float:
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=target, args=(url, f"w{i}", seconds, start, out)) for i in range(writers)]
    for process in processes:
        process.start()
    total = sum(out.get(timeout=seconds + 60) for _ in processes)
    for process in processes:
        process.join()
    return total / seconds


def commits_per_second(server: str, seconds: float) -> None:
    print("writers  store commits/s  plain INSERT/s  ratio")
    for writers in (1, 2, 4):
        with schema(server) as url:
            open_log(url).close()  # creates the tables
            _, records = tables(url.rsplit("schema=", 1)[1])
            with psycopg.connect(server, autocommit=True) as connection:
                connection.execute(f"CREATE TABLE {records.replace('records', 'plain')} (LIKE {records} INCLUDING ALL)")
            store = run_writers(_store_writer, url, writers, seconds)
            plain = run_writers(_insert_writer, url, writers, seconds)
        print(f"{writers:>7}  {store:>15,.0f}  {plain:>14,.0f}  {store / plain:5.2f}")
    with tempfile.TemporaryDirectory() as directory:
        log, n = EventLog.open(directory), 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            n = log.append("w", [event("w", n)], expected=n)
        log.close()
    print(f"file log, 1 writer (fsync each): {n / seconds:,.0f} commits/s")


def open_and_compile(server: str, commits: int) -> None:
    with schema(server) as url:
        with Tract.open(url, tract_id="long") as tract, tract.batch():
            for n in range(commits):
                tract.commit(DialogueContent(role="user", text=f"message {n} " * 5))
        for other in range(20):  # other tracts' rows must not cost an open
            with Tract.open(url, tract_id=f"other{other}") as tract, tract.batch():
                for n in range(commits // 20):
                    tract.commit(DialogueContent(role="user", text=f"noise {n}"))
        started = time.perf_counter()
        with Tract.open(url, tract_id="long", readonly=True) as tract:
            opened = time.perf_counter()
            compiled = tract.compile()
            done = time.perf_counter()
        print(f"open of a {commits:,}-commit tract: {opened - started:.2f} s; compile: {done - opened:.2f} s "
              f"({compiled.commit_count:,} messages)")  # fmt: skip


def analytics_catch_up(server: str, events: int) -> None:
    with schema(server) as url:
        log = open_log(url)
        tracts, per = 100, events // 100
        for t in range(tracts):
            tract = f"t{t}"
            for first in range(0, per, 1000):
                log.append(tract, [event(tract, n) for n in range(first, min(per, first + 1000))], expected=first)
        log.close()
        with tempfile.TemporaryDirectory() as cache, Tract.open(url, tract_id="reader", analytics_dir=cache) as tract:
            started = time.perf_counter()
            rows = tract.sql("SELECT count(*) FROM usage").rows
            print(f"analytics catch-up of {events:,} events in {tracts} tracts: {time.perf_counter() - started:.1f} s "
                      f"({rows[0][0]:,} usage rows)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per writer configuration")
    parser.add_argument("--commits", type=int, default=10_000, help="commits of the tract opened and compiled")
    parser.add_argument("--events", type=int, default=1_000_000, help="events the analytics catch up")
    args = parser.parse_args()
    server = os.environ["TRACT_TEST_POSTGRES_URL"]
    commits_per_second(server, args.seconds)
    open_and_compile(server, args.commits)
    analytics_catch_up(server, args.events)


if __name__ == "__main__":
    main()

"""The log on a real PostgreSQL server: writers in several processes, the gap problem, SIGKILL, a
server restart, verify against rows damaged with SQL, a SELECT-only role, moving between backends."""

from __future__ import annotations

import multiprocessing
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from events import ConcurrentWriteError, StorageError, TractCreated
from events.jsonl import exported_records, write_jsonl
from events.opening import import_location, open_log, verify_location
from events.postgres import PostgresLog, StoreUnavailableError
from events.postgres.session import Session
from events.postgres.settings import StoreSettings
from tests.pgstore import admin, fresh_schema, store_url, url_as
from tests.test_storage_conformance import conversation, usage
from tract import Tract, TractError
from tract.cli.report import write_report
from tract.content import DialogueContent

pytestmark = pytest.mark.postgres


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as schema:
        yield store_url(schema)


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# -- one tract costs one tract ----------------------------------------------------------------


def test_opening_a_tract_reads_that_tracts_rows_only(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's rows fetched by an open and a compile, counted at the session: the opened tract's
    records (and a row or two of bookkeeping), never another tract's, however many there are."""
    log = open_log(url)
    try:
        for index in range(30):
            tract_id = f"tract-{index}"
            log.append(tract_id, [TractCreated(tract_id=tract_id, created_at=datetime.now(timezone.utc))])
    finally:
        log.close()
    with Tract.open(url, tract_id="tract-7") as tract:
        for n in range(40):
            tract.commit(DialogueContent(role="user", text=f"question {n}"))
    fetched: list[tuple[Any, ...]] = []
    real_rows = Session.rows

    def counted(session: Session, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        rows = real_rows(session, sql, params)
        fetched.extend(rows)
        return rows

    monkeypatch.setattr(Session, "rows", counted)
    with Tract.open(url, tract_id="tract-7", readonly=True) as tract:
        assert len(tract.compile().messages) == 40
    bodies = [row for row in fetched if any(isinstance(value, bytes) and len(value) > 64 for value in row)]
    assert len(bodies) <= 2 * 41  # the tract's 41 records: folded at open, content read back for the compile
    assert len(fetched) - len(bodies) <= 5, fetched[:10]


# -- many writers ------------------------------------------------------------------------------


def _own_tract_writer(url: str, tract_id: str, commits: int) -> None:
    with Tract.open(url, tract_id=tract_id) as tract:
        for n in range(commits):
            tract.commit(DialogueContent(role="user", text=f"{tract_id} {n}"))


def _same_tract_writer(url: str, commits: int, done: multiprocessing.Queue) -> None:
    """Commit to the shared tract; a writer refused (another got there first) reopens and goes on."""
    made = refused = 0
    tract = Tract.open(url, tract_id="shared")
    while made < commits:
        try:
            tract.commit(DialogueContent(role="user", text=f"{os.getpid()} {made}"))
            made += 1
        except StorageError as error:
            assert "another writer" in str(error) and "'shared'" in str(error)
            refused += 1
            tract.close()
            tract = Tract.open(url, tract_id="shared")
    tract.close()
    done.put((made, refused))


def test_writers_in_several_processes_never_fork_a_tract_or_lose_a_commit(url: str) -> None:
    Tract.open(url, tract_id="shared").close()
    context = multiprocessing.get_context("fork")
    done: multiprocessing.Queue = context.Queue()
    own = [context.Process(target=_own_tract_writer, args=(url, f"w{i}", 15)) for i in range(3)]
    racing = [context.Process(target=_same_tract_writer, args=(url, 15, done)) for _ in range(2)]
    for process in own + racing:
        process.start()
    for process in own + racing:
        process.join(120)
        assert process.exitcode == 0
    results = [done.get(timeout=5) for _ in racing]
    log = open_log(url, readonly=True)
    try:
        assert log.tract_length("shared") == 1 + sum(made for made, _ in results)
        assert all(log.tract_length(f"w{i}") == 16 for i in range(3))
        report = log.verify()
        assert report.ok, report
    finally:
        log.close()


def test_a_second_writer_at_the_same_position_is_refused_naming_the_tract(url: str) -> None:
    first, second = open_log(url), open_log(url)
    try:
        first.append("t", [usage(1, "t")], expected=0)
        assert second.tract_length("t") == 1
        first.append("t", [usage(2, "t")], expected=1)
        with pytest.raises(ConcurrentWriteError, match="'t'"):
            second.append("t", [usage(3, "t")], expected=1)
        assert [r.event.prompt_tokens for r in first.read_tract("t")] == [1, 2]
    finally:
        first.close()
        second.close()


def test_a_writer_kept_waiting_past_the_lock_timeout_is_refused_naming_the_tract(url: str) -> None:
    """Another transaction holds the tract's row: the append waits `lock_timeout`, then is refused as a
    concurrent write (not a lost server), nothing written, and the same connection goes on working."""
    impatient = f"{url}&options=-c%20lock_timeout%3D300"
    log = open_log(impatient)
    try:
        log.append("t", [usage(1, "t")], expected=0)
        with admin() as holder, holder.transaction():
            holder.execute(f'SELECT * FROM "{schema_of(url)}".tracts WHERE tract_id = %s FOR UPDATE', ("t",))
            with pytest.raises(ConcurrentWriteError, match="'t'"):
                log.append("t", [usage(2, "t")], expected=1)
        assert log.append("t", [usage(3, "t")], expected=1) == 2
        assert [r.event.prompt_tokens for r in log.read_tract("t")] == [1, 3]
    finally:
        log.close()


# -- the gap problem -----------------------------------------------------------------------------


def test_an_event_committed_late_by_an_earlier_transaction_is_never_skipped(url: str, tmp_path: Path) -> None:
    """A slow transaction takes its id and writes its rows first, then waits on a barrier while a
    fast one writes another tract and commits; readers catch up in between, then the slow one
    commits. The analytics projection and a global reader resuming from its cursor see every event."""
    Tract.open(url, tract_id="watcher").close()
    slow_log, fast_log = open_log(url), open_log(url)
    assert isinstance(slow_log, PostgresLog)
    written, release = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)

    def slow() -> None:
        with slow_log.transaction():
            slow_log.append("slow", conversation("slow", 3), expected=0)
            written.wait()  # its rows are in, uncommitted
            release.wait()  # commits only after the fast one did and readers caught up

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        written.wait()
        fast_log.append("fast", conversation("fast", 2), expected=0)
        watcher = Tract.open(url, tract_id="watcher", readonly=True, analytics_dir=tmp_path / "analytics")
        reader = fast_log.global_reader()
        early = {(r.event.tract_id, r.number) for r in reader.read()}
        cursor = reader.cursor
        reader.close()
        assert ("fast", 3) in early and not any(tract == "slow" for tract, _ in early)
        assert watcher.sql("SELECT count(*) FROM commits WHERE tract_id = 'fast'").rows == [(2,)]
        assert watcher.sql("SELECT count(*) FROM commits WHERE tract_id = 'slow'").rows == [(0,)]
    finally:
        release.wait()
        thread.join(30)
    with admin() as connection:
        slow_ids, fast_ids = (
            connection.execute(
                "SELECT min(txid::text::bigint), max(txid::text::bigint) "
                f'FROM "{schema_of(url)}".records WHERE tract_id = %s',
                (tract,),
            ).fetchone()
            for tract in ("slow", "fast")
        )
    # The slow transaction's rows carry the earlier id, yet committed last: a reader resuming after
    # the highest id it had delivered would have skipped them for good.
    assert slow_ids[1] < fast_ids[0]
    fast_log.refresh()
    reader = fast_log.global_reader()
    after = reader.resume_point(cursor)
    assert after is not None
    late = [(r.event.tract_id, r.number) for r in reader.read(after)]
    reader.close()
    assert late == [("slow", n) for n in range(1, 5)]
    assert watcher.sql("SELECT tract_id, count(*) FROM commits GROUP BY 1 ORDER BY 1").rows == [
        ("fast", 2),
        ("slow", 3),
    ]
    watcher.close()
    slow_log.close()
    fast_log.close()


# -- failures --------------------------------------------------------------------------------------

_KILLED_WRITER = """
import sys
from events.opening import open_log
from tests.test_storage_conformance import usage
log = open_log(sys.argv[1])
n = 0
while True:
    n = log.append("k", [usage(n + i, "k") for i in range(7)], expected=n)
    print(n, flush=True)
"""


def test_a_writer_killed_mid_batch_loses_nothing_acknowledged_and_leaves_no_half_batch(url: str) -> None:
    for round_ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, url],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert child.stdout is not None
        acknowledged = 0
        for _ in range(5 + round_ * 7):
            acknowledged = int(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        log = open_log(url, readonly=True)
        try:
            length = log.tract_length("k")
            assert length >= acknowledged and length % 7 == 0
            assert [r.number for r in log.read_tract("k")] == list(range(1, length + 1))
        finally:
            log.close()
        with admin() as connection:
            connection.execute(f'DROP SCHEMA "{schema_of(url)}" CASCADE')


@pytest.mark.postgres_restart
def test_a_server_restart_fails_writes_clearly_and_the_next_one_reconnects(url: str) -> None:
    log = open_log(url)
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            try:
                started = time.monotonic()
                acknowledged.append(log.append("r", [usage(len(acknowledged), "r")], expected=len(acknowledged)))
            except StorageError as error:
                failures.append(error)
                assert time.monotonic() - started < 30, "a failed append hung"
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(acknowledged) < 20:
            time.sleep(0.01)
        subprocess.run(shlex.split(os.environ["TRACT_TEST_POSTGRES_RESTART"]), check=True, timeout=120)
        before = len(acknowledged)
        deadline = time.monotonic() + 60
        while len(acknowledged) < before + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join(60)
    assert failures and all(isinstance(error, StoreUnavailableError) for error in failures)
    assert len(acknowledged) >= before + 20, "the writer never reconnected"
    log.refresh()
    assert log.tract_length("r") == acknowledged[-1]
    assert [r.event.prompt_tokens for r in log.read_tract("r")] == list(range(len(acknowledged)))
    log.close()


def test_an_unreachable_server_is_a_clear_error_not_a_hang() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=re.escape("127.0.0.1:1/")):
        open_log("postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    assert time.monotonic() - started < 10


# -- audit -------------------------------------------------------------------------------------

DAMAGE = {
    "altered": ("UPDATE {r} SET body = overlay(body placing '\\x5a'::bytea from length(body) - 3 for 1) "
                "WHERE tract_id = 'a' AND number = 3", 4),  # a byte its commit hash does not cover: next link breaks
    "deleted": ("DELETE FROM {r} WHERE tract_id = 'a' AND number = 2", 2),
    "newest deleted": ("DELETE FROM {r} WHERE tract_id = 'a' AND number = 4", 4),
    "reordered": ("UPDATE {r} SET body = CASE number "
                  "WHEN 2 THEN (SELECT body FROM {r} WHERE tract_id = 'a' AND number = 3) "
                  "ELSE (SELECT body FROM {r} WHERE tract_id = 'a' AND number = 2) END "
                  "WHERE tract_id = 'a' AND number IN (2, 3)", 2),
    "inserted": ("INSERT INTO {r} (tract_id, number, batch_end, body) "
                 "SELECT tract_id, 5, true, body FROM {r} WHERE tract_id = 'a' AND number = 4", 5),
    "batch left open": ("UPDATE {r} SET batch_end = false WHERE tract_id = 'a' AND number = 4", 4),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_verify_finds_rows_damaged_with_sql(url: str, damage: str) -> None:
    with Tract.open(url, tract_id="a") as tract:
        for n in range(3):
            tract.commit(DialogueContent(role="user", text=f"message number {n}"))
    Tract.open(url, tract_id="b").close()
    assert verify_location(url).ok
    statement, position = DAMAGE[damage]
    with admin() as connection:
        connection.execute(statement.format(r=f'"{schema_of(url)}".records'))
    report = verify_location(url)
    assert not report.ok and report.problem is not None
    assert (report.problem.tract_id, report.problem.position) == ("a", position), report


def test_an_anchor_catches_newest_records_removed_with_their_row_rewritten(url: str) -> None:
    with Tract.open(url, tract_id="a") as tract:
        tract.commit(DialogueContent(role="user", text="kept"))
        tract.commit(DialogueContent(role="user", text="removed"))
        head = tract.chain_head
    schema = schema_of(url)
    with admin() as connection:
        connection.execute(f'DELETE FROM "{schema}".records WHERE tract_id = %s AND number = 3', ("a",))
        connection.execute(
            f'UPDATE "{schema}".tracts SET length = 2, head = sha256((SELECT body FROM "{schema}".records '
            "WHERE tract_id = 'a' AND number = 2)) WHERE tract_id = 'a'"
        )
    assert verify_location(url).ok
    report = verify_location(url, anchor=(head.tract_id, head.position, head.hash))
    assert report.problem is not None and report.problem.kind == "anchor missing"


def test_a_select_only_role_can_open_compile_replay_verify_and_query(url: str, tmp_path: Path) -> None:
    with Tract.open(url, tract_id="a") as tract:
        for n in range(4):
            tract.commit(DialogueContent(role="user", text=f"m{n}"))
    schema, role = schema_of(url), f"reader_{schema_of(url)}"
    with admin() as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
        connection.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        connection.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    try:
        reader_url = url_as(role, "reader", schema)
        with Tract.open(reader_url, readonly=True, analytics_dir=tmp_path / "cache") as tract:
            assert tract.compile().commit_count == 4
            with tract.replay(until_position=3) as then:
                assert then.compile().commit_count == 2
            assert tract.verify().ok
            assert tract.sql("SELECT count(*) FROM commits").rows == [(4,)]
        log = open_log(reader_url)  # opens (the store exists), but may not write
        with pytest.raises(StorageError, match="permission denied"):
            log.append("a", [usage(1, "a")], expected=5)
        log.close()
    finally:
        with admin() as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"DROP ROLE {role}")


def test_a_reader_cannot_open_a_store_that_was_never_created(url: str) -> None:
    with pytest.raises(StorageError, match="no tract store here"):
        open_log(url, readonly=True)


# -- analytics -------------------------------------------------------------------------------------


def test_analytics_catch_up_incrementally_in_a_cache_of_their_own(url: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with Tract.open(url, tract_id="a", analytics_dir=cache) as tract:
        tract.commit(DialogueContent(role="user", text="one"))
        assert tract.sql("SELECT count(*) FROM commits").rows == [(1,)]
    assert (cache / "analytics.duckdb").exists()
    with Tract.open(url, tract_id="b") as other:
        other.commit(DialogueContent(role="user", text="two"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rebuild of the cache would warn
        with Tract.open(url, tract_id="a", readonly=True, analytics_dir=cache) as tract:
            assert tract.sql("SELECT tract_id, count(*) FROM commits GROUP BY 1 ORDER BY 1").rows == [
                ("a", 1),
                ("b", 1),
            ]


def test_a_report_of_a_store_shows_its_tracts_and_never_its_password(url: str, tmp_path: Path) -> None:
    with Tract.open(url, tract_id="a") as tract:
        tract.commit(DialogueContent(role="user", text="a question kept in the store"))
    out = tmp_path / "report.html"
    assert write_report(url, out)
    page = out.read_text()
    where = StoreSettings.parse(url).where
    assert where in page and "a question kept in the store" in page
    password = urlsplit(url).password
    assert url not in page and (password is None or f":{password}@" not in page)
    with pytest.raises(TractError, match=f"^{re.escape(where)}: no tract 'z' in this log$"):
        write_report(url, tmp_path / "none.html", tract_id="z")
    assert not (tmp_path / "none.html").exists()


# -- moving between backends ---------------------------------------------------------------------


def test_export_and_import_keep_chain_heads_across_backends(url: str, tmp_path: Path) -> None:
    laptop = tmp_path / "laptop"
    for tract_id in ("a", "b"):
        with Tract.open(laptop, tract_id=tract_id) as tract:
            for n in range(3):
                tract.commit(DialogueContent(role="user", text=f"{tract_id}{n}"))
    heads = verify_location(laptop).heads
    exported = tmp_path / "all.jsonl"
    source = open_log(laptop, readonly=True)
    with open(exported, "wb") as out:
        write_jsonl(exported_records(source), out)
    source.close()
    with open(exported, "rb") as lines:
        assert import_location(lines, url) == heads
    assert verify_location(url).heads == heads
    back = tmp_path / "back.jsonl"
    store = open_log(url, readonly=True)
    with open(back, "wb") as out:
        write_jsonl(exported_records(store), out)
    store.close()
    with open(back, "rb") as lines:
        assert import_location(lines, tmp_path / "again") == heads


def test_a_tract_copied_to_a_shared_store_keeps_its_head_and_an_import_is_all_or_nothing(
    url: str, tmp_path: Path
) -> None:
    Tract.open(url, tract_id="theirs").close()
    laptop = tmp_path / "laptop"
    with Tract.open(laptop, tract_id="mine") as tract:
        tract.commit(DialogueContent(role="user", text="hello"))
        head = tract.chain_head
    one = tmp_path / "mine.jsonl"
    with Tract.open(laptop, tract_id="mine", readonly=True) as tract, open(one, "wb") as out:
        tract.export_jsonl(out, tract_id="mine")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(
        one.read_bytes() + one.read_bytes().splitlines(keepends=True)[0].replace(b'"position":1', b'"position":9')
    )
    with open(broken, "rb") as lines, pytest.raises(StorageError):
        import_location(lines, url)
    assert verify_location(url).heads.keys() == {"theirs"}  # nothing of the failed import is left
    with open(one, "rb") as lines:
        heads = import_location(lines, url)
    assert (heads["mine"].number, heads["mine"].hash) == (head.position, head.hash)
    with pytest.raises(StorageError, match="already exists"), open(one, "rb") as lines:
        import_location(lines, url)

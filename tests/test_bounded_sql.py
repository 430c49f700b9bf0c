"""User SQL is bounded: a time limit, no hold on commits, and no file but the projection's tables."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from events import EventLog
from projections.analytics import Analytics
from tract import DialogueContent, InvalidArgumentError, QueryError, Tract, TractClosedError

SLOW = "SELECT count(*) FROM range(1000000000000)"
"""Hours of work for DuckDB (it does not shortcut a count over range())."""
SECRET = "secret-marker-8c1f"


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def fill(tract: Tract, count: int, model: str = "m") -> None:
    for i in range(count):
        tract.commit(user(f"{model}{i}"), generation_config={"model": model})


@contextmanager
def running_query(run: Callable[[], object]) -> Iterator[list[Exception]]:
    """Run `run` in a thread and enter once its query is running; yields what it raised.

    The time limit is a timer thread started as the query starts running: a thread profile
    hook (it only observes) reports the first Timer thread to run, which is that moment."""
    started = threading.Event()
    raised: list[Exception] = []

    def observe(*_: object) -> None:
        if isinstance(threading.current_thread(), threading.Timer):
            started.set()

    def target() -> None:
        try:
            run()
        except Exception as error:  # noqa: BLE001 - handed to the test's thread, which asserts on it
            raised.append(error)

    worker = threading.Thread(target=target)
    threading.setprofile(observe)
    try:
        worker.start()
        assert started.wait(30), "the query never started"
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    try:
        yield raised
    finally:
        worker.join(120)
        assert not worker.is_alive()


# -- the time limit ------------------------------------------------------------------------------


def test_a_slow_query_is_stopped_at_its_timeout_and_leaves_the_projection_usable(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        fill(tract, 3)
        assert tract.sql("SELECT count(*) FROM commits").rows == [(3,)]
        with pytest.raises(QueryError, match=r"stopped after 0\.5 seconds"):
            tract.sql(SLOW, timeout=0.5)
        with pytest.raises(QueryError, match=r"stopped after 0\.25 seconds"):
            tract.sql_relation(SLOW, timeout=0.25)
        assert tract.sql("SELECT count(*) FROM commits").rows == [(3,)]
        fill(tract, 2, "n")
        assert tract.sql("SELECT model, count(*) FROM commits GROUP BY model ORDER BY model").rows == [
            ("m", 3),
            ("n", 2),
        ]
        assert tract.sql_relation("SELECT count(*) FROM commits").fetchall() == [(5,)]
        assert len(tract.query_by_config("model", "=", "n")) == 2
        [(cursor,)] = tract.sql("SELECT cursor FROM projection_state").rows
        assert cursor == whole_log_cursor(log_dir), "the projection holds every record of the log"
        with pytest.raises(QueryError, match="stopped after"):
            tract.sql(SLOW, timeout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a half-applied projection would be rebuilt, with a warning
        with Tract.open(log_dir) as reopened:
            assert reopened.sql("SELECT cursor, (SELECT count(*) FROM commits) FROM projection_state").rows == [
                (cursor, 5)
            ]


def whole_log_cursor(log_dir: Path) -> bytes:
    """The log's own cursor for its last record: what a projection that applied all of it records."""
    log = EventLog.open(log_dir, readonly=True)
    try:
        reader = log.global_reader()
        try:
            return reader.cursor
        finally:
            reader.close()
    finally:
        log.close()


def test_the_default_time_limit_lets_ordinary_queries_finish(memory_tract: Tract) -> None:
    fill(memory_tract, 2)
    assert memory_tract.sql("SELECT sum(range) FROM range(1000000)").rows == [(499999500000,)]


@pytest.mark.parametrize("timeout", [0, -1, -0.5, float("nan"), float("inf"), 1e300, "5", None, True, [1]])
def test_timeout_must_be_a_positive_number_of_seconds(memory_tract: Tract, timeout: object) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout must be a positive number"):
        memory_tract.sql("SELECT 1", timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="timeout must be a positive number"):
        memory_tract.sql_relation("SELECT 1", timeout=timeout)  # type: ignore[arg-type]
    assert memory_tract.sql("SELECT 1", timeout=2).rows == [(1,)]


def test_cli_sql_timeout(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        fill(tract, 1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tract.cli", "sql", str(log_dir), *args], capture_output=True, text=True, check=False
        )

    stopped = cli(SLOW, "--timeout", "0.5")
    assert stopped.returncode == 1 and stopped.stdout == ""
    assert stopped.stderr.splitlines() == ["tract sql: query stopped after 0.5 seconds, its time limit (timeout)"]
    refused = cli("SELECT 1", "--timeout", "0")
    assert (
        refused.returncode == 1 and refused.stderr.count("\n") == 1 and "timeout must be a positive" in refused.stderr
    )
    done = cli("SELECT count(*) AS n FROM commits", "--timeout", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split() == ["1"]


# -- queries never hold up commits ---------------------------------------------------------------


def test_a_running_query_does_not_hold_up_commits_from_other_threads(tract: Tract) -> None:
    fill(tract, 2)
    with running_query(lambda: tract.sql(SLOW, timeout=2)) as raised:
        fill(tract, 5, "during")
        assert not raised, "the query ended before the commits did"
        during = tract.query_by_config("model", "=", "during")  # waits for its turn on the analytics projection
        assert [info.content["text"] for info in during] == [f"during{i}" for i in range(5)]
    assert len(raised) == 1 and isinstance(raised[0], QueryError) and "stopped after 2 seconds" in str(raised[0])
    assert tract.sql("SELECT count(*) FROM commits WHERE model = 'during'").rows == [(5,)]


def test_close_stops_a_running_query(log_dir: Path) -> None:
    tract = Tract.open(log_dir)
    fill(tract, 1)
    with running_query(lambda: tract.sql(SLOW, timeout=120)) as raised:
        tract.close()
    assert len(raised) == 1 and isinstance(raised[0], TractClosedError)
    with pytest.raises(TractClosedError):
        tract.sql("SELECT 1")
    with Tract.open(log_dir) as reopened:
        assert reopened.sql("SELECT count(*) FROM commits").rows == [(1,)]


def test_a_query_with_an_older_snapshot_is_answered_from_the_newer_state(log_dir: Path) -> None:
    """Queries fix their log range first and take turns later, so one holding an older range
    can come second: the projection already holds all it asks for, and must not be rebuilt backwards."""
    with Tract.open(log_dir) as tract:
        fill(tract, 1)
        log = EventLog.open(log_dir, readonly=True)  # a reader beside the writer
        older = log.global_reader()  # the log as it stands now: one commit
        fill(tract, 2)
    log.refresh()
    newer = log.global_reader()
    analytics = Analytics(None)
    try:
        assert [type(record.event).__name__ for record in older.read()] == ["TractCreated", "CommitCreated"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert analytics.sql(newer, "SELECT count(*) FROM commits", timeout=5).rows == [(3,)]
            assert analytics.sql(older, "SELECT count(*) FROM commits", timeout=5).rows == [(3,)]
    finally:
        analytics.close()
        for opened in (older, newer, log):
            opened.close()


# -- nothing but the projection ------------------------------------------------------------------

FILE_ROUTES = [
    "SELECT * FROM read_blob('{db}')",
    "SELECT * FROM read_blob('{db}.wal')",
    "SELECT * FROM read_text('{log}/events.log')",
    "SELECT * FROM read_text('{spilled}')",
    "SELECT * FROM read_csv('{spilled}')",
    "SELECT * FROM read_csv_auto('{spilled}')",
    "SELECT * FROM read_json('{spilled}')",
    "SELECT * FROM read_parquet('{spilled}')",
    "SELECT * FROM read_duckdb('{db}')",
    "SELECT * FROM sniff_csv('{spilled}')",
    "SELECT * FROM parquet_metadata('{spilled}')",
    "SELECT * FROM glob('{temp}/*')",
    "SELECT * FROM glob('{log}/*')",
    "SELECT * FROM '{spilled}'",
    "FROM '{spilled}'",
    "SUMMARIZE '{spilled}'",
    "DESCRIBE '{spilled}'",
    'SHOW "{spilled}"',
    "WITH x AS (SELECT 1) SELECT * FROM x, '{spilled}'",
    "SELECT * FROM (WITH \"{spilled}\" AS (SELECT 1) SELECT 1), '{spilled}'",
    "SELECT (SELECT content FROM read_text('{spilled}'))",
    "SELECT * FROM commits WHERE EXISTS (FROM read_blob('{db}'))",
    "SELECT * FROM query('SELECT * FROM read_text(''{spilled}'')')",
    "SELECT * FROM query_table('{spilled}')",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT * FROM read_text(''{spilled}'')'))",
    "SELECT * FROM system.main.read_text('{spilled}')",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_databases",
    "SELECT * FROM main.duckdb_databases",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1), duckdb_databases",
    "WITH duckdb_databases AS (SELECT * FROM duckdb_databases) SELECT * FROM duckdb_databases",
    "SELECT * FROM histogram(commits, token_count)",
    "SHOW databases",
    "ATTACH '{db}' AS again",
    "ATTACH '{temp}/new.duckdb' AS elsewhere",
    "COPY commits TO '{temp}/out.csv'",
    "COPY commits FROM '{spilled}'",
    "PRAGMA database_list",
    "CALL duckdb_temporary_files()",
    "EXPORT DATABASE '{temp}/dump'",
]


@pytest.fixture
def spill_dir(tract: Tract, log_dir: Path) -> Path:
    """DuckDB's temporary directory, holding a file that only a file route could reveal."""
    fill(tract, 2)
    temp = Path(tract.sql("SELECT current_setting('temp_directory')").rows[0][0])
    temp.mkdir(parents=True, exist_ok=True)
    (temp / "spilled.csv").write_text(f"a\n{SECRET}\n")
    return temp


@pytest.mark.parametrize("route", FILE_ROUTES)
def test_no_route_reaches_a_file_in_the_log_or_temporary_directory(
    tract: Tract, log_dir: Path, spill_dir: Path, route: str
) -> None:
    query = (
        route.replace("{db}", str(log_dir / "analytics.duckdb"))
        .replace("{log}", str(log_dir))
        .replace("{spilled}", str(spill_dir / "spilled.csv"))
        .replace("{temp}", str(spill_dir))
    )
    with pytest.raises(QueryError) as refused:
        tract.sql(query)
    assert SECRET not in str(refused.value)
    with pytest.raises(QueryError):
        tract.sql_relation(query)
    assert sorted(path.name for path in spill_dir.iterdir()) == ["spilled.csv"]
    assert tract.sql("SELECT count(*) FROM commits").rows == [(2,)]


def test_the_temporary_directory_is_private_and_outside_the_log_directory(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        fill(tract, 1)
        temp = Path(tract.sql("SELECT current_setting('temp_directory')").rows[0][0])
        assert log_dir.resolve() not in temp.resolve().parents
        assert temp.parent.stat().st_mode & 0o077 == 0, "readable by other users"
    assert not temp.parent.exists(), "left behind after close()"
    assert sorted(path.name for path in log_dir.iterdir() if "tmp" in path.name) == []


@pytest.mark.parametrize(
    "query, rows",
    [
        ("SELECT count(*) FROM range(3)", [(3,)]),
        ("SELECT count(*) FROM generate_series(1, 4)", [(4,)]),
        ("SELECT * FROM unnest([1, 2])", [(1,), (2,)]),
        ("SELECT key FROM commits, json_each(generation_config) ORDER BY ALL", [("model",), ("model",)]),
        ("WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT y FROM b", [(2,)]),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT sum(n) FROM r", [(6,)]),
        ("WITH commits AS (SELECT 7 AS n) SELECT n FROM commits", [(7,)]),
        ("SELECT count(*) FROM main.commits", [(2,)]),
        ("SELECT column_name FROM (DESCRIBE commits) LIMIT 1", [("commit_hash",)]),
        ("SELECT count(*) FROM (SHOW TABLES) WHERE name = 'commits'", [(1,)]),
        ("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'usage'", [(1,)]),
        ("FROM commits PIVOT (count(*) FOR model IN ('m'))", None),
    ],
)
def test_the_projection_stays_fully_queryable(spill_dir: Path, tract: Tract, query: str, rows: object) -> None:
    result = tract.sql(query)
    assert rows is None or result.rows == rows

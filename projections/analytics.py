"""The DuckDB analytics projection: commits, configs, usage and annotations as tables.

It is a cache of the log like the commit view. It records the cursor of the
last log record it has applied (opaque here: the log's own) and is caught up
from there, in log order, before every query: the new rows are written as
JSON lines and loaded by DuckDB in one statement per table, inside one
transaction, so a crash mid-load leaves the previous state. Nothing on the commit path touches it:
`duckdb` is imported only when analytics are first used.

User SQL runs with file access and extension loading disabled, must be a
single read-only SELECT over the projection's own tables (see `readonly_sql`),
executes in a transaction that is rolled back, and is interrupted at its time
limit (see `query_limits`). Catch-ups and queries take turns on a lock of
their own and get the log as a fixed snapshot, so nothing here waits for or
holds up the writer. DuckDB spills to a private scratch directory, never the
log directory. A database file that turns out damaged (unreadable, cut
short, from another log) is reported with a warning and rebuilt from the log.
A disk that cannot be written (full, failing, read-only) or a database another
process holds is not damage: it raises `AnalyticsStorageError` and the file is
kept. The recorded cursor never runs ahead of what the log holds durably:
callers hand in a reader taken after the log was synced.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from events import (
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    GenerationConfigRecorded,
    GlobalReader,
    Record,
    RefMoved,
    UsageRecorded,
)
from events.files import check_regular
from projections.bulk import paused_gc
from projections.config_query import TYPED_COLUMNS, config_predicate
from projections.query_limits import AnalyticsClosedError, AnalyticsError, AnalyticsStorageError, QueryTimer
from projections.readonly_sql import NotReadOnly, check_read_only, first_line
from projections.tool_rows import TOOL_CONTENT_TYPES, ToolCallRow, ToolResultRow, tool_rows

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

ANALYTICS_FILE = "analytics.duckdb"
SCHEMA_VERSION = 6
_DAMAGE = ("IOException", "SerializationException", "InternalException", "FatalException", "CorruptionException")
"""DuckDB errors that mean the database file itself cannot be trusted (unless they are `_STORAGE_FAILURES`)."""
_STORAGE_FAILURES = (
    *(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES)),
    "Could not set lock on file",
)
"""What DuckDB says when the disk, not the file, is at fault (its messages carry the OS's own words),
or when another process holds the database."""
_DUCKDB_FILES = ("", ".wal", ".wal.checkpoint", ".wal.recovery")
"""The database file and the write-ahead logs DuckDB keeps beside it."""
_FAILURES = (*_DAMAGE, "ConnectionException", "TransactionException")
"""DuckDB errors that mean the database or its disk failed, not the query."""


def _typed(kind: str, key: str, source: str) -> str:
    """SQL for one typed column from a JSON config: NULL unless the value has that JSON type."""
    if kind == "VARCHAR":
        return f"CASE WHEN json_type({source}, '$.{key}') = 'VARCHAR' THEN json_extract_string({source}, '$.{key}') END"
    return (
        f"CASE WHEN json_type({source}, '$.{key}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        f"THEN TRY_CAST(json_extract({source}, '$.{key}') AS DOUBLE) END"
    )


_SCHEMA = """
CREATE TABLE projection_state (schema_version INTEGER, cursor BLOB);
CREATE TABLE commits (
    commit_hash VARCHAR, tract_id VARCHAR, parent_hash VARCHAR, content_type VARCHAR, operation VARCHAR,
    response_to VARCHAR, message VARCHAR, token_count BIGINT, created_at TIMESTAMPTZ,
    generation_config JSON, metadata JSON, position BIGINT, branch VARCHAR, merge_parent VARCHAR,
    model VARCHAR, temperature DOUBLE, top_p DOUBLE, commit_config JSON);
CREATE TABLE recorded_configs (
    commit_hash VARCHAR, tract_id VARCHAR, generation_config JSON, created_at TIMESTAMPTZ, position BIGINT);
CREATE VIEW config_records AS
    SELECT commit_hash, tract_id, 'commit' AS source, commit_config AS generation_config, created_at, position
    FROM commits WHERE commit_config IS NOT NULL
    UNION ALL
    SELECT commit_hash, tract_id, 'record_usage' AS source, generation_config, created_at, position
    FROM recorded_configs;
CREATE TABLE usage (
    tract_id VARCHAR, head_hash VARCHAR, prompt_tokens BIGINT, completion_tokens BIGINT,
    total_tokens BIGINT, created_at TIMESTAMPTZ, position BIGINT, context_hash VARCHAR,
    cache_read_tokens BIGINT, cache_write_tokens BIGINT, reasoning_tokens BIGINT, provider VARCHAR);
CREATE TABLE tool_calls (
    commit_hash VARCHAR, tract_id VARCHAR, call_id VARCHAR, tool_name VARCHAR, arguments JSON,
    call_index BIGINT, created_at TIMESTAMPTZ, position BIGINT);
CREATE TABLE tool_results (
    commit_hash VARCHAR, tract_id VARCHAR, call_id VARCHAR, tool_name VARCHAR, content VARCHAR,
    is_error BOOLEAN, created_at TIMESTAMPTZ, position BIGINT);
CREATE TABLE annotations (
    tract_id VARCHAR, target_hash VARCHAR, priority VARCHAR, reason VARCHAR, anchor VARCHAR,
    created_at TIMESTAMPTZ, position BIGINT);
CREATE TABLE branch_moves (
    tract_id VARCHAR, branch VARCHAR, old_head VARCHAR, new_head VARCHAR, reason VARCHAR,
    created_at TIMESTAMPTZ, position BIGINT);
CREATE VIEW ref_moves AS
    SELECT tract_id, branch, parent_hash AS old_head, commit_hash AS new_head,
           CASE WHEN merge_parent IS NULL THEN 'commit' ELSE 'merge' END AS reason, created_at, position
    FROM commits
    UNION ALL
    SELECT * FROM branch_moves;
"""
RELATIONS = frozenset(re.findall(r"CREATE (?:TABLE|VIEW) (\w+)", _SCHEMA))
"""Every table and view of the projection: all that user SQL may read."""
EXPORTED = ("commits", "config_records", "usage", "tool_calls", "tool_results", "annotations", "ref_moves")
"""What `export_parquet` writes: every table and view a user queries."""
_COMMIT_COLUMNS = [
    "commit_hash", "tract_id", "parent_hash", "content_type", "operation", "response_to", "message",
    "token_count", "created_at", "generation_config", "metadata", "position", "branch", "merge_parent",
    *TYPED_COLUMNS, "commit_config",
]  # fmt: skip
_EFFECTIVE_CONFIGS = f"""
UPDATE commits SET generation_config = latest.generation_config,
    {", ".join(f"{key} = {_typed(kind, key, 'latest.generation_config')}" for key, kind in TYPED_COLUMNS.items())}
FROM (SELECT commit_hash, arg_max(generation_config, position) AS generation_config
      FROM recorded_configs WHERE list_contains(?, commit_hash) GROUP BY commit_hash) AS latest
WHERE commits.commit_hash = latest.commit_hash
"""


class _CommitRow(msgspec.Struct):
    commit_hash: str
    tract_id: str
    parent_hash: str | None
    content_type: str
    operation: str
    response_to: str | None
    message: str | None
    token_count: int
    created_at: datetime
    generation_config: dict[str, Any] | None
    metadata: dict[str, Any] | None
    position: int
    branch: str
    merge_parent: str | None


class _ConfigRow(msgspec.Struct):
    commit_hash: str
    tract_id: str
    generation_config: dict[str, Any]
    created_at: datetime
    position: int


class _UsageRow(msgspec.Struct):
    tract_id: str
    head_hash: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    created_at: datetime
    position: int
    context_hash: str | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    provider: str | None


class _AnnotationRow(msgspec.Struct):
    tract_id: str
    target_hash: str
    priority: str
    reason: str | None
    anchor: str | None
    created_at: datetime
    position: int


class _MoveRow(msgspec.Struct):
    tract_id: str
    branch: str
    old_head: str | None
    new_head: str | None
    reason: str
    created_at: datetime
    position: int


_SQL_TYPES = {dict: "JSON", datetime: "TIMESTAMPTZ", bool: "BOOLEAN", int: "BIGINT", str: "VARCHAR"}
"""Checked in this order: a field's type names the first that fits (`dict[str, Any]` is JSON)."""


def _columns(row: type[msgspec.Struct]) -> str:
    """read_json's column spec for a row struct, e.g. {commit_hash: 'VARCHAR', ...}."""
    specs = []
    for field in msgspec.structs.fields(row):
        base = next(kind for kind in _SQL_TYPES if kind.__name__ in str(field.type))
        specs.append(f"{field.name}: '{_SQL_TYPES[base]}'")
    return "{" + ", ".join(specs) + "}"


_TYPED_SELECT = ", ".join(_typed(kind, key, "generation_config") for key, kind in TYPED_COLUMNS.items())
_LOADS: dict[type[msgspec.Struct], str] = {
    _CommitRow: (
        f"INSERT INTO commits ({', '.join(_COMMIT_COLUMNS)}) "
        f"SELECT *, {_TYPED_SELECT}, generation_config FROM read_json(?, format='newline_delimited', "
        f"columns={_columns(_CommitRow)})"
    ),
    _ConfigRow: f"INSERT INTO recorded_configs SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(_ConfigRow)})",
    _UsageRow: f"INSERT INTO usage SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(_UsageRow)})",
    ToolCallRow: f"INSERT INTO tool_calls SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(ToolCallRow)})",
    ToolResultRow: f"INSERT INTO tool_results SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(ToolResultRow)})",
    _AnnotationRow: f"INSERT INTO annotations SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(_AnnotationRow)})",
    _MoveRow: f"INSERT INTO branch_moves SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(_MoveRow)})",
}
"""How each row type reaches its table: one bulk read of a JSON-lines file per catch-up."""


def _rows(records: Iterable[Record]) -> Iterator[msgspec.Struct]:
    """The analytics rows an event becomes (most events become one row, some none)."""
    for record in records:
        event, position = record.event, record.number
        if isinstance(event, CommitCreated):
            yield _CommitRow(
                event.commit_hash, event.tract_id, event.parent_hash, event.content_type, event.operation,
                event.response_to, event.message, event.token_count, event.created_at, event.generation_config,
                event.metadata, position, event.branch, event.merge_parent,
            )  # fmt: skip
            if event.content_type in TOOL_CONTENT_TYPES:
                yield from tool_rows(event, position)
        elif isinstance(event, GenerationConfigRecorded):
            yield _ConfigRow(event.commit_hash, event.tract_id, event.generation_config, event.created_at, position)
        elif isinstance(event, UsageRecorded):
            yield _UsageRow(
                event.tract_id, event.head_hash, event.prompt_tokens, event.completion_tokens,
                event.total_tokens, event.created_at, position, event.context_hash, event.cache_read_tokens,
                event.cache_write_tokens, event.reasoning_tokens, event.provider,
            )  # fmt: skip
        elif isinstance(event, AnnotationAdded):
            yield _AnnotationRow(
                event.tract_id,
                event.target_hash,
                event.priority,
                event.reason,
                event.anchor,
                event.created_at,
                position,
            )
        elif isinstance(event, RefMoved):
            yield _MoveRow(
                event.tract_id, event.branch, event.old_head, event.new_head, event.reason, event.created_at, position
            )
        elif isinstance(event, BranchCreated):
            yield _MoveRow(event.tract_id, event.name, None, event.head, "branch", event.created_at, position)
        elif isinstance(event, BranchDeleted):
            yield _MoveRow(event.tract_id, event.name, None, None, "delete", event.created_at, position)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: list[str]
    """DuckDB's type of each column, e.g. VARCHAR, DOUBLE, JSON."""

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


@contextmanager
def duckdb_errors() -> Iterator[None]:
    """DuckDB's errors as AnalyticsStorageError when the database or its disk failed, else as
    AnalyticsError: never raw."""
    import duckdb

    try:
        yield
    except duckdb.Error as error:
        failed = AnalyticsStorageError if _is_failure(error) else AnalyticsError
        raise failed(first_line(error)) from error


class Analytics:
    """A DuckDB database (a file in the log directory, or in memory) mirroring the log."""

    def __init__(self, path: Path | None, *, file_access: bool = False) -> None:
        """`file_access` lets this connection write files (only for `export_parquet`)."""
        self._path = path
        self._file_access = file_access
        self._scratch = tempfile.TemporaryDirectory(prefix="tract-analytics-")
        self._disconnected = True
        self._lock = threading.Lock()
        """One catch-up or query at a time on the connection; commits never take it."""
        self._timer: QueryTimer | None = None
        self._answered_to = 0
        """The end (byte offset) of the latest log reader that a query here has caught up with."""
        self._closed = False
        try:
            self._open()
        except BaseException:
            self._scratch.cleanup()
            raise

    def _open(self) -> None:
        """Connect and read the position the database records; a damaged file is replaced by an empty one."""
        with self._storage_failures():
            self._con = self._connect()
            self._disconnected = False
            try:
                self._cursor = self._load_state()
            except Exception as error:
                if not self._is_damage(error):
                    raise
                self._rebuild(error)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        config = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,
            "temp_directory": str(Path(self._scratch.name) / "spill"),
        }
        target = ":memory:" if self._path is None else str(self._path)
        for path in self._files():
            check_regular(path)  # DuckDB would block on a FIFO, or write into a device
        try:
            con = duckdb.connect(target, config=config)
        except duckdb.Error as error:
            if self._path is None or _is_storage_failure(error):
                raise
            self._warn(error)
            self._discard_files()
            con = duckdb.connect(target, config=config)
        con.execute("SET TimeZone = 'UTC'")
        if not self._file_access:
            # Only our private scratch directory (bulk loads) stays reachable; then freeze settings.
            con.execute("SET allowed_directories = ?", [[self._scratch.name + "/"]])
            con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def _is_damage(self, error: BaseException) -> bool:
        return self._path is not None and type(error).__name__ in _DAMAGE and not _is_storage_failure(error)

    @contextmanager
    def _storage_failures(self) -> Iterator[None]:
        """DuckDB's reports of a disk that failed become `AnalyticsStorageError`. DuckDB may have given up
        on the database after such a failure, so the connection is dropped and made anew on next use
        (its write-ahead log keeps everything that was committed)."""
        try:
            yield
        except Exception as error:
            if not _is_storage_failure(error):
                raise
            self._disconnect()
            raise AnalyticsStorageError(f"{self._path or 'analytics'}: {first_line(error)}") from error

    def _disconnect(self) -> None:
        """Close the connection (which discards whatever it had not committed); the next use reconnects."""
        if not self._disconnected:
            self._disconnected = True
            self._con.close()

    def _warn(self, error: BaseException) -> None:
        warnings.warn(
            f"{self._path}: damaged analytics database ({first_line(error)}); rebuilding it from the log",
            RuntimeWarning,
            stacklevel=4,
        )

    def _rebuild(self, error: BaseException) -> None:
        """Throw the file away and start empty: the next catch-up refills it from the log."""
        self._warn(error)
        try:
            self._con.close()
        except Exception:  # closing a damaged database may fail too; the file is going anyway
            pass
        self._discard_files()
        self._con = self._connect()
        self._disconnected = False
        self._cursor = None

    def _recovering(self, log: GlobalReader, action: Callable[[], T]) -> T:
        """Catch up and run `action`; if the file proves damaged, rebuild it and try once more."""
        if self._disconnected:
            self._open()
        with self._storage_failures():
            try:
                self._catch_up(log)
                return action()
            except Exception as error:
                if not self._is_damage(error):
                    raise
                self._rebuild(error)
            self._catch_up(log)
            return action()

    def _files(self) -> list[Path]:
        return [] if self._path is None else [Path(str(self._path) + suffix) for suffix in _DUCKDB_FILES]

    def _discard_files(self) -> None:
        """Remove the database, its write-ahead logs first: a crash in between leaves an older state, never a log
        without its database."""
        for path in reversed(self._files()):
            path.unlink(missing_ok=True)

    def _load_state(self) -> bytes | None:
        tables = {row[0] for row in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "projection_state" not in tables:
            return None
        columns = [row[0] for row in self._con.execute("DESCRIBE projection_state").fetchall()]
        if columns != ["schema_version", "cursor"]:
            return None
        rows = self._con.execute("SELECT schema_version, cursor FROM projection_state").fetchall()
        if len(rows) != 1 or rows[0][0] != SCHEMA_VERSION:
            return None
        return bytes(rows[0][1])

    def _reset(self) -> None:
        """Empty tables of the current schema (inside the catch-up's transaction, so never half done)."""
        con = self._con
        # Whatever an older schema left behind goes too (names come from our own catalog).
        for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
            con.execute(f'DROP VIEW "{view}"')
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            con.execute(f'DROP TABLE "{table}"')
        con.execute(_SCHEMA)

    def _save_state(self) -> None:
        self._con.execute("DELETE FROM projection_state")
        self._con.execute("INSERT INTO projection_state VALUES (?, ?)", [SCHEMA_VERSION, self._cursor])

    # -- catching up ---------------------------------------------------------

    def catch_up(self, log: GlobalReader) -> None:
        """Apply every record the reader has beyond our cursor, as one transaction."""
        self._recovering(log, lambda: None)

    def _catch_up(self, log: GlobalReader) -> None:
        previous = self._cursor
        if previous == log.cursor:
            return
        after = log.resume_point(previous)
        if after is None and previous is not None and log.resume_point(log.cursor) is not None:
            warnings.warn("analytics database does not match the log; rebuilding it", RuntimeWarning, stacklevel=3)
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            if after is None:
                self._reset()
            with paused_gc():
                configured = self._load(log.read(after) if after is not None else log.read())
            if configured:
                con.execute(_EFFECTIVE_CONFIGS, [sorted(configured)])
            self._cursor = log.cursor
            self._save_state()
        except BaseException:
            self._cursor = previous
            self._abandon_transaction()
            raise
        try:
            con.execute("COMMIT")  # a COMMIT that fails (a full disk) ends the transaction itself
        except BaseException:
            self._cursor = previous
            raise

    def _abandon_transaction(self) -> None:
        """Roll back; when the failure already ended the transaction or broke the database, drop the
        connection instead (closing it discards what it had not committed)."""
        import duckdb

        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            self._disconnect()

    def _load(self, records: Iterable[Record]) -> set[str]:
        """Encode the rows as JSON lines (msgspec, in C) and let DuckDB read each table's file
        in one statement: several times faster than appending row by row from Python.
        Returns the commits that were given a config after they were made."""
        encoder = msgspec.json.Encoder()
        buffers: dict[type[msgspec.Struct], bytearray] = {}
        configured: set[str] = set()
        for row in _rows(records):
            if type(row) is _ConfigRow:
                configured.add(row.commit_hash)
            buffer = buffers.get(type(row))
            if buffer is None:
                buffer = buffers[type(row)] = bytearray()
            encoder.encode_into(row, buffer, -1)
            buffer += b"\n"
        for row_type, buffer in buffers.items():
            path = Path(self._scratch.name) / f"{row_type.__name__}.jsonl"
            try:
                path.write_bytes(buffer)
                self._con.execute(_LOADS[row_type], [str(path)])
            finally:
                path.unlink(missing_ok=True)  # also what a full disk left of it
        return configured

    # -- querying ------------------------------------------------------------

    def commits_where_config(self, log: GlobalReader, tract_id: str, field: str, operator: str, value: Any) -> list[str]:
        """Hashes of the tract's commits whose effective config matches, in creation order."""
        predicate, params = config_predicate("generation_config", field, operator, value)
        query = f"SELECT commit_hash FROM commits WHERE tract_id = ? AND {predicate} ORDER BY position"
        rows = self._answer(log, lambda: self._con.execute(query, [tract_id, *params]).fetchall())
        return [row[0] for row in rows]

    def sql(
        self, log: GlobalReader, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float
    ) -> QueryResult:
        """Catch up with `log` (a snapshot that no writer extends) and run a user's query,
        interrupted after `timeout` seconds."""
        return self._answer(log, lambda: self._read(query, params, timeout))

    def _answer(self, log: GlobalReader, action: Callable[[], T]) -> T:
        """Catch up and run `action` under the projection's own lock; DuckDB errors that mean the
        database or its disk failed come out as AnalyticsStorageError, never raw."""
        with self._lock, duckdb_errors():
            if self._closed:
                raise AnalyticsClosedError("the analytics projection is closed")
            if log.until.end < self._answered_to:
                # A query with a later reader got here first: the projection holds all this one asks for.
                return action()
            answer = self._recovering(log, action)
            self._answered_to = log.until.end
            return answer

    def _read(self, query: str, params: list[Any] | dict[str, Any] | None, timeout: float) -> QueryResult:
        """Run a checked read-only query, within its time limit, in a transaction that is always rolled back."""
        con = self._con
        self._check_read_only(query)
        con.execute("BEGIN TRANSACTION")
        timer = self._timer = QueryTimer(con, timeout)
        try:
            if self._closed:  # close() came between the lock and the timer: it may have missed the timer
                timer.stop(closing=True)
            with timer:
                relation = con.sql(query, params=params)
                return QueryResult(relation.columns, relation.fetchall(), [str(kind) for kind in relation.types])
        except Exception as error:
            if timer.stopped is not None:
                raise timer.stopped from None
            if _is_failure(error):
                raise
            raise AnalyticsError(first_line(error)) from None
        finally:
            self._timer = None
            con.execute("ROLLBACK")

    def relation(
        self, log: GlobalReader, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float
    ) -> duckdb.DuckDBPyRelation:
        """The query's result as a relation on a throwaway in-memory database of its own,
        so nothing done with the relation can reach the projection."""
        import duckdb

        result = self.sql(log, query, params, timeout=timeout)
        scratch = duckdb.connect(config={"enable_external_access": False, "autoload_known_extensions": False})
        columns = ", ".join(
            f'"{name.replace(chr(34), chr(34) * 2)}" {kind}' for name, kind in zip(result.columns, result.types)
        )
        scratch.execute(f"CREATE TABLE result ({columns})")
        appender = scratch.appender("result")
        appender.append_rows(result.rows)
        appender.flush()
        return scratch.table("result")

    def _check_read_only(self, query: str) -> None:
        try:
            check_read_only(self._con, query, RELATIONS)
        except NotReadOnly as error:
            raise AnalyticsError(str(error)) from None

    def export_parquet(self, directory: Path) -> list[Path]:
        """Write each table as `<table>.parquet` in `directory`. The files are written in a hidden
        directory beside them and moved into place once all are complete, so a failure (a full
        disk) leaves no partial file."""
        if not self._file_access:
            raise AnalyticsError("this analytics connection was opened without file access")
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tract-export-", dir=directory))
        try:
            with self._storage_failures():
                for table in EXPORTED:
                    quoted = str(staging / f"{table}.parquet").replace("'", "''")
                    self._con.execute(f"COPY (SELECT * FROM {table} ORDER BY position) TO '{quoted}' (FORMAT parquet)")
            written = []
            for table in EXPORTED:
                target = directory / f"{table}.parquet"
                os.replace(staging / target.name, target)
                written.append(target)
            return written
        finally:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()

    def close(self) -> None:
        """Stop the query that is running, if any (it raises AnalyticsClosedError), and close."""
        self._closed = True
        timer = self._timer
        if timer is not None:
            timer.stop(closing=True)
        with self._lock:
            self._con.close()
            self._scratch.cleanup()


def _is_storage_failure(error: BaseException) -> bool:
    import duckdb

    return isinstance(error, duckdb.Error) and any(words in str(error) for words in _STORAGE_FAILURES)


def _is_failure(error: BaseException) -> bool:
    """Did the database or its disk fail (rather than the query)?"""
    return type(error).__name__ in _FAILURES or _is_storage_failure(error)

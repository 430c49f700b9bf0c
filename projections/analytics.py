"""The DuckDB analytics projection: commits, configs, usage and annotations as tables.

It is a cache of the log like the commit view. It records the log record it
has applied (position and hash) and is caught up from there before every
query, in bulk through DuckDB's appender inside one transaction, so a crash
mid-load leaves the previous state. Nothing on the commit path touches it:
`duckdb` is imported only when analytics are first used.

User SQL runs with file access and extension loading disabled, must be a
single read-only SELECT (see `readonly_sql`), and executes in a transaction
that is rolled back. A database file that turns out damaged (unreadable, cut
short, from another log) is reported with a warning and rebuilt from the log.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from events import (
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    Checkpoint,
    CommitCreated,
    EventLog,
    GenerationConfigRecorded,
    Record,
    RefMoved,
    UsageRecorded,
)
from projections.bulk import paused_gc
from projections.config_query import TYPED_COLUMNS, config_predicate
from projections.readonly_sql import NotReadOnly, check_read_only, first_line
from projections.tool_rows import TOOL_CONTENT_TYPES, ToolCallRow, ToolResultRow, tool_rows

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

ANALYTICS_FILE = "analytics.duckdb"
SCHEMA_VERSION = 5
_DAMAGE = ("IOException", "SerializationException", "InternalException", "FatalException", "CorruptionException")
"""DuckDB errors that mean the database file itself cannot be trusted."""


def _typed(kind: str, key: str, source: str) -> str:
    """SQL for one typed column from a JSON config: NULL unless the value has that JSON type."""
    if kind == "VARCHAR":
        return f"CASE WHEN json_type({source}, '$.{key}') = 'VARCHAR' THEN json_extract_string({source}, '$.{key}') END"
    return (
        f"CASE WHEN json_type({source}, '$.{key}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        f"THEN TRY_CAST(json_extract({source}, '$.{key}') AS DOUBLE) END"
    )


_SCHEMA = """
CREATE TABLE projection_state (
    schema_version INTEGER, position BIGINT, log_offset BIGINT, log_end BIGINT, record_hash BLOB);
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
      FROM recorded_configs WHERE position > ? GROUP BY commit_hash) AS latest
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
        event, position = record.event, record.position
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


class AnalyticsError(Exception):
    """A refused or failed analytics query."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: list[str]
    """DuckDB's type of each column, e.g. VARCHAR, DOUBLE, JSON."""

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


class Analytics:
    """A DuckDB database (a file in the log directory, or in memory) mirroring the log."""

    def __init__(self, path: Path | None, *, file_access: bool = False) -> None:
        """`file_access` lets this connection write files (only for `export_parquet`)."""
        self._path = path
        self._file_access = file_access
        self._scratch = tempfile.TemporaryDirectory(prefix="tract-analytics-")
        self._con = self._connect()
        try:
            self._checkpoint = self._load_state()
        except Exception as error:
            if not self._is_damage(error):
                raise
            self._rebuild(error)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        target = ":memory:" if self._path is None else str(self._path)
        try:
            con = duckdb.connect(target, config=config)
        except duckdb.Error as error:
            if self._path is None:
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
        return self._path is not None and type(error).__name__ in _DAMAGE

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
        self._checkpoint = None

    def _recovering(self, log: EventLog, action: Callable[[], T]) -> T:
        """Catch up and run `action`; if the file proves damaged, rebuild it and try once more."""
        try:
            self._catch_up(log)
            return action()
        except Exception as error:
            if not self._is_damage(error):
                raise
            self._rebuild(error)
        self._catch_up(log)
        return action()

    def _discard_files(self) -> None:
        assert self._path is not None
        for suffix in ("", ".wal"):
            Path(str(self._path) + suffix).unlink(missing_ok=True)

    def _load_state(self) -> Checkpoint | None:
        tables = {row[0] for row in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "projection_state" not in tables:
            return None
        rows = self._con.execute(
            "SELECT schema_version, position, log_offset, log_end, record_hash FROM projection_state"
        ).fetchall()
        if len(rows) != 1 or rows[0][0] != SCHEMA_VERSION:
            return None
        row = rows[0]
        return Checkpoint(position=row[1], offset=row[2], end=row[3], record_hash=bytes(row[4]))

    def _reset(self) -> None:
        con = self._con
        # Whatever an older schema left behind goes too (names come from our own catalog).
        for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
            con.execute(f'DROP VIEW "{view}"')
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            con.execute(f'DROP TABLE "{table}"')
        con.execute(_SCHEMA)
        self._checkpoint = Checkpoint(0, 0, 0, bytes(32))
        self._save_state()

    def _save_state(self) -> None:
        assert self._checkpoint is not None
        cp = self._checkpoint
        self._con.execute("DELETE FROM projection_state")
        self._con.execute(
            "INSERT INTO projection_state VALUES (?, ?, ?, ?, ?)",
            [SCHEMA_VERSION, cp.position, cp.offset, cp.end, cp.record_hash],
        )

    @property
    def position(self) -> int:
        return self._checkpoint.position if self._checkpoint is not None else 0

    # -- catching up ---------------------------------------------------------

    def catch_up(self, log: EventLog) -> None:
        """Apply every record the log has beyond our position, as one transaction."""
        self._recovering(log, lambda: None)

    def _catch_up(self, log: EventLog) -> None:
        if (
            self._checkpoint is None
            or not log.contains(self._checkpoint)
            or self._checkpoint.position > log.head_position
        ):
            if self._checkpoint is not None and self._checkpoint.position > 0:
                warnings.warn("analytics database does not match the log; rebuilding it", RuntimeWarning, stacklevel=3)
            self._reset()
        assert self._checkpoint is not None
        if self._checkpoint.position >= log.head_position:
            return
        start = self._checkpoint.position
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            with paused_gc():
                self._load(log.read(start + 1))
            con.execute(_EFFECTIVE_CONFIGS, [start])
            self._checkpoint = log.checkpoint()
            self._save_state()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            self._checkpoint = self._load_state()
            raise

    def _load(self, records: Iterable[Record]) -> None:
        """Encode the rows as JSON lines (msgspec, in C) and let DuckDB read each table's file
        in one statement: several times faster than appending row by row from Python."""
        encoder = msgspec.json.Encoder()
        buffers: dict[type[msgspec.Struct], bytearray] = {}
        for row in _rows(records):
            buffer = buffers.get(type(row))
            if buffer is None:
                buffer = buffers[type(row)] = bytearray()
            encoder.encode_into(row, buffer, -1)
            buffer += b"\n"
        for row_type, buffer in buffers.items():
            path = Path(self._scratch.name) / f"{row_type.__name__}.jsonl"
            path.write_bytes(buffer)
            try:
                self._con.execute(_LOADS[row_type], [str(path)])
            finally:
                path.unlink()

    # -- querying ------------------------------------------------------------

    def commits_where_config(self, log: EventLog, tract_id: str, field: str, operator: str, value: Any) -> list[str]:
        """Hashes of the tract's commits whose effective config matches, in creation order."""
        predicate, params = config_predicate("generation_config", field, operator, value)
        query = f"SELECT commit_hash FROM commits WHERE tract_id = ? AND {predicate} ORDER BY position"
        rows = self._recovering(log, lambda: self._con.execute(query, [tract_id, *params]).fetchall())
        return [row[0] for row in rows]

    def sql(self, log: EventLog, query: str, params: list[Any] | dict[str, Any] | None = None) -> QueryResult:
        return self._recovering(log, lambda: self._read(query, params))

    def _read(self, query: str, params: list[Any] | dict[str, Any] | None) -> QueryResult:
        """Run a checked read-only query in a transaction that is always rolled back."""
        con = self._con
        self._check_read_only(query)
        con.execute("BEGIN TRANSACTION")
        try:
            relation = con.sql(query, params=params)
            return QueryResult(relation.columns, relation.fetchall(), [str(kind) for kind in relation.types])
        except Exception as error:
            if self._is_damage(error):
                raise
            raise AnalyticsError(first_line(error)) from None
        finally:
            con.execute("ROLLBACK")

    def relation(
        self, log: EventLog, query: str, params: list[Any] | dict[str, Any] | None = None
    ) -> duckdb.DuckDBPyRelation:
        """The query's result as a relation on a throwaway in-memory database of its own,
        so nothing done with the relation can reach the projection."""
        import duckdb

        result = self._recovering(log, lambda: self._read(query, params))
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
            check_read_only(self._con, query)
        except NotReadOnly as error:
            raise AnalyticsError(str(error)) from None

    def export_parquet(self, directory: Path) -> list[Path]:
        """Write each table as `<table>.parquet` in `directory`."""
        if not self._file_access:
            raise AnalyticsError("this analytics connection was opened without file access")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for table in EXPORTED:
            target = directory / f"{table}.parquet"
            quoted = str(target).replace("'", "''")
            self._con.execute(f"COPY (SELECT * FROM {table} ORDER BY position) TO '{quoted}' (FORMAT parquet)")
            written.append(target)
        return written

    def close(self) -> None:
        self._con.close()
        self._scratch.cleanup()

"""The analytics projection's tables, and the rows each event becomes.

Kept apart from the database handling (`analytics_files`) and the catch-up and
queries (`analytics`): this is what the projection holds, decided by the log's
events alone. `SCHEMA_VERSION` names it; a database recording another version
is rebuilt (by the writer) or not used (by a reader).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from events import (
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Compression,
    GenerationConfigRecorded,
    Record,
    RefMoved,
    UsageRecorded,
)
from projections.config_query import TYPED_COLUMNS
from projections.tool_rows import TOOL_CONTENT_TYPES, ToolCallRow, ToolResultRow, tool_rows

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION = 7


def _typed(kind: str, key: str, source: str) -> str:
    """SQL for one typed column from a JSON config: NULL unless the value has that JSON type."""
    if kind == "VARCHAR":
        return f"CASE WHEN json_type({source}, '$.{key}') = 'VARCHAR' THEN json_extract_string({source}, '$.{key}') END"
    return (
        f"CASE WHEN json_type({source}, '$.{key}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        f"THEN TRY_CAST(json_extract({source}, '$.{key}') AS DOUBLE) END"
    )


SCHEMA = """
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
CREATE TABLE compressions (
    commit_hash VARCHAR, tract_id VARCHAR, replaced VARCHAR[], preserved VARCHAR[], tokens_before BIGINT,
    tokens_after BIGINT, created_at TIMESTAMPTZ, position BIGINT, branch VARCHAR);
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
RELATIONS = frozenset(re.findall(r"CREATE (?:TABLE|VIEW) (\w+)", SCHEMA))
"""Every table and view of the projection: all that user SQL may read."""
EXPORTED = (
    "commits", "config_records", "usage", "tool_calls", "tool_results", "compressions", "annotations", "ref_moves",
)  # fmt: skip
"""What `export_parquet` writes: every table and view a user queries."""
_COMMIT_COLUMNS = [
    "commit_hash", "tract_id", "parent_hash", "content_type", "operation", "response_to", "message",
    "token_count", "created_at", "generation_config", "metadata", "position", "branch", "merge_parent",
    *TYPED_COLUMNS, "commit_config",
]  # fmt: skip
EFFECTIVE_CONFIGS = f"""
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


class _CompressionRow(msgspec.Struct):
    commit_hash: str
    tract_id: str
    replaced: list[str]
    preserved: list[str]
    tokens_before: int
    tokens_after: int
    created_at: datetime
    position: int
    branch: str


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


_SQL_TYPES = {
    dict: "JSON", list: "VARCHAR[]", datetime: "TIMESTAMPTZ", bool: "BOOLEAN", int: "BIGINT", str: "VARCHAR"
}  # fmt: skip
"""Checked in this order: a field's type names the first that fits (`dict[str, Any]` is JSON, `list[str]`
a list of strings)."""


def _columns(row: type[msgspec.Struct]) -> str:
    """read_json's column spec for a row struct, e.g. {commit_hash: 'VARCHAR', ...}."""
    specs = []
    for field in msgspec.structs.fields(row):
        base = next(kind for kind in _SQL_TYPES if kind.__name__ in str(field.type))
        specs.append(f"{field.name}: '{_SQL_TYPES[base]}'")
    return "{" + ", ".join(specs) + "}"


def _load_all(table: str, row: type[msgspec.Struct]) -> str:
    """The statement that loads a JSON-lines file of `row`s into `table`, every field as it is."""
    return f"INSERT INTO {table} SELECT * FROM read_json(?, format='newline_delimited', columns={_columns(row)})"


_TYPED_SELECT = ", ".join(_typed(kind, key, "generation_config") for key, kind in TYPED_COLUMNS.items())
_LOADS: dict[type[msgspec.Struct], str] = {
    _CommitRow: (
        f"INSERT INTO commits ({', '.join(_COMMIT_COLUMNS)}) "
        f"SELECT *, {_TYPED_SELECT}, generation_config FROM read_json(?, format='newline_delimited', "
        f"columns={_columns(_CommitRow)})"
    ),
    _ConfigRow: _load_all("recorded_configs", _ConfigRow),
    _UsageRow: _load_all("usage", _UsageRow),
    ToolCallRow: _load_all("tool_calls", ToolCallRow),
    ToolResultRow: _load_all("tool_results", ToolResultRow),
    _CompressionRow: _load_all("compressions", _CompressionRow),
    _AnnotationRow: _load_all("annotations", _AnnotationRow),
    _MoveRow: _load_all("branch_moves", _MoveRow),
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
            compression = event.compression
            if isinstance(compression, Compression):
                yield _CompressionRow(
                    event.commit_hash, event.tract_id, compression.replaces, compression.preserves,
                    compression.tokens_before, compression.tokens_after, event.created_at, position, event.branch,
                )  # fmt: skip
            elif event.content_type in TOOL_CONTENT_TYPES:  # (a compacted result's stand-in is no result)
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


def load_rows(con: duckdb.DuckDBPyConnection, scratch: Path, records: Iterable[Record]) -> None:
    """Append the records' rows to the tables of the current database, then give the commits
    configured after they were made their effective config.

    The rows are encoded as JSON lines (msgspec, in C) and DuckDB reads each table's file in
    one statement: several times faster than appending row by row from Python. The files live
    in `scratch` (the projection's private directory) only while they are read."""
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
        path = scratch / f"{row_type.__name__}.jsonl"
        try:
            path.write_bytes(buffer)
            con.execute(_LOADS[row_type], [str(path)])
        finally:
            path.unlink(missing_ok=True)  # also what a full disk left of it
    if configured:
        con.execute(EFFECTIVE_CONFIGS, [sorted(configured)])


def load_state(con: duckdb.DuckDBPyConnection) -> bytes | None:
    """The cursor the current database records, or None when it holds no projection of this schema.
    (One statement: it is asked at every attachment of the shared file.)"""
    import duckdb

    try:
        rows = con.execute("SELECT schema_version, cursor FROM projection_state").fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):
        return None  # an empty database, or a projection of a schema before the cursor
    if len(rows) != 1 or rows[0][0] != SCHEMA_VERSION or rows[0][1] is None:
        return None
    return bytes(rows[0][1])


def save_state(con: duckdb.DuckDBPyConnection, cursor: bytes) -> None:
    con.execute("DELETE FROM projection_state")
    con.execute("INSERT INTO projection_state VALUES (?, ?)", [SCHEMA_VERSION, cursor])


def reset(con: duckdb.DuckDBPyConnection) -> None:
    """Empty tables of the current schema in the current database, whatever an older schema left
    there (inside the caller's transaction, so never half done)."""
    for (view,) in con.execute(f"SELECT view_name FROM duckdb_views() WHERE NOT internal AND {_HERE}").fetchall():
        con.execute(f'DROP VIEW "{view}"')  # names come from our own catalog
    for (table,) in con.execute(f"SELECT table_name FROM duckdb_tables() WHERE {_HERE}").fetchall():
        con.execute(f'DROP TABLE "{table}"')
    con.execute(SCHEMA)


_HERE = "database_name = current_database() AND schema_name = 'main'"
"""The projection's own catalog entries: others may be attached beside it."""

"""Decide whether a user's SQL only reads, from DuckDB's own parse tree.

A statement-type check alone is not enough: `WITH g AS (DELETE ... RETURNING *)
SELECT ...` is a SELECT statement whose CTE writes. So the query must parse
as exactly one SELECT, and every query node in its serialized tree must be
one that only reads. Anything unrecognised is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

READING_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})


class NotReadOnly(ValueError):
    """The query is not one read-only SELECT."""


def check_read_only(con: duckdb.DuckDBPyConnection, query: object) -> None:
    if not isinstance(query, str) or not query.strip():
        raise NotReadOnly("sql() needs a query string")
    try:
        statements = con.extract_statements(query)
    except Exception as error:
        raise NotReadOnly(first_line(error)) from None
    if len(statements) != 1:
        raise NotReadOnly(f"sql() runs exactly one statement, got {len(statements)}")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        raise NotReadOnly(f"sql() is read-only: {kind} statements are refused")
    tree = json.loads(con.execute("SELECT json_serialize_sql(CAST(? AS VARCHAR))", [query]).fetchall()[0][0])
    if tree.get("error"):
        raise NotReadOnly(f"sql() is read-only: {tree.get('error_message', 'not a plain SELECT')}")
    for node in _node_types(tree):
        if node not in READING_NODES:
            raise NotReadOnly(f"sql() is read-only: the query contains a {node.removesuffix('_NODE').lower()}")


def _node_types(tree: Any) -> Iterator[str]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str) and kind.endswith("_NODE"):
                yield kind
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def first_line(error: BaseException) -> str:
    """An error's message cut to one line (DuckDB's run to several)."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__

"""Decide whether a user's SQL only reads the projection, from DuckDB's own parse tree.

A statement-type check alone is not enough: `WITH g AS (DELETE ... RETURNING *)
SELECT ...` is a SELECT statement whose CTE writes, and `SELECT * FROM
read_blob('...')` is a SELECT that reads a file. DuckDB lets a connection read
its own database files and temporary directory even with external access
disabled, so the query itself must name nothing else. It must parse as exactly
one SELECT; every query node in its serialized tree must be one that only
reads; every table it names must be one of the projection's tables and views
or a CTE in scope; and every table function it calls must be one that only
computes rows (`range`, `unnest`, `json_each`, ...). Anything unrecognised is
refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

READING_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "json_each", "json_tree", "duckdb_tables", "duckdb_views", "duckdb_columns"}
)
"""Table functions a query may call: they compute rows or describe the catalog, and open no file."""
PLAIN_SOURCES = frozenset({"JOIN", "SUBQUERY", "EXPRESSION_LIST", "PIVOT", "EMPTY"})
"""Table references that name nothing themselves (what they contain is checked on its own)."""


class NotReadOnly(ValueError):
    """The query is not one read-only SELECT over the projection."""


def check_read_only(con: duckdb.DuckDBPyConnection, query: object, relations: frozenset[str]) -> None:
    """Refuse `query` unless it is one SELECT that reads only `relations` (lower-case names)."""
    if not isinstance(query, str) or not query.strip():
        raise NotReadOnly("sql() needs a query string")
    try:
        statements = con.extract_statements(query)
    except Exception as error:  # noqa: BLE001 - whatever DuckDB's parser raises, the caller is told why
        raise NotReadOnly(first_line(error)) from None
    if len(statements) != 1:
        raise NotReadOnly(f"sql() runs exactly one statement, got {len(statements)}")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        raise NotReadOnly(f"sql() is read-only: {kind} statements are refused")
    tree = json.loads(con.execute("SELECT json_serialize_sql(CAST(? AS VARCHAR))", [query]).fetchall()[0][0])
    if tree.get("error"):
        raise NotReadOnly(f"sql() is read-only: {tree.get('error_message', 'not a plain SELECT')}")
    _check_tree(tree["statements"], relations)


def _check_tree(tree: Any, relations: frozenset[str]) -> None:
    """Check every query node, and every table reference against what is visible where it stands:
    the projection's relations plus the CTEs in scope (a CTE out of scope would bind to a system
    view or a file)."""
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        item, ctes = stack.pop()
        if isinstance(item, list):
            stack.extend((child, ctes) for child in item)
            continue
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE"):
            if kind not in READING_NODES:
                raise NotReadOnly(f"sql() is read-only: the query contains a {kind.removesuffix('_NODE').lower()}")
            if isinstance(item.get("cte_map"), dict):
                ctes = _push_definitions(item["cte_map"].get("map", []), ctes, stack)
                item = {key: value for key, value in item.items() if key != "cte_map"}
        elif isinstance(kind, str) and "sample" in item and "class" not in item:
            _check_source(item, kind, relations, ctes)
        stack.extend((value, ctes) for value in item.values())


def _push_definitions(
    definitions: list[Any], outer: frozenset[str], stack: list[tuple[Any, frozenset[str]]]
) -> frozenset[str]:
    """Queue each CTE's definition with the names it can see (earlier CTEs; itself if recursive);
    return the names visible in the query body."""
    names = outer
    for definition in definitions:
        name = str(definition.get("key", "")).lower()
        body = definition.get("value", {}).get("query_node", {})
        recursive = body.get("type") == "RECURSIVE_CTE_NODE" and str(body.get("cte_name", "")).lower() == name
        stack.append((definition.get("value"), names | {name} if recursive else names))
        names = names | {name}
    return names


def _check_source(ref: dict[str, Any], kind: str, relations: frozenset[str], ctes: frozenset[str]) -> None:
    if kind == "BASE_TABLE":
        _check_table(ref, str(ref.get("table_name", "")), relations, ctes)
    elif kind == "TABLE_FUNCTION":
        function = ref.get("function") or {}
        name = str(function.get("function_name", ""))
        if function.get("schema") or function.get("catalog") or name.lower() not in TABLE_FUNCTIONS:
            allowed = ", ".join(sorted(TABLE_FUNCTIONS))
            raise NotReadOnly(f"sql() may not call {name or 'that'}(): the table functions it allows are {allowed}")
    elif kind == "SHOW_REF":
        show_tables = ref.get("show_type") == "SHOW_SPECIAL" and ref.get("table_name") == '"tables"'
        if ref.get("query") is None and not show_tables:  # SHOW name: a table reference of its own
            _check_table(ref, str(ref.get("table_name", "")), relations, ctes)
    elif kind not in PLAIN_SOURCES:
        raise NotReadOnly(f"sql() does not accept a {kind.lower()} table reference")


def _check_table(ref: dict[str, Any], name: str, relations: frozenset[str], ctes: frozenset[str]) -> None:
    qualified = bool(ref.get("catalog_name")) or ref.get("schema_name") not in ("", "main", None)
    visible = relations if ref.get("schema_name") else relations | ctes
    if qualified or name.lower() not in visible:
        shown = ".".join(part for part in (ref.get("catalog_name"), ref.get("schema_name"), name) if part)
        raise NotReadOnly(
            f"sql() reads only the projection's tables and views ({', '.join(sorted(relations))}) "
            f"and the query's own CTEs, not {shown}"
        )


def first_line(error: BaseException) -> str:
    """An error's message cut to one line (DuckDB's run to several)."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__

"""What a user's analytics query returns: rows with their columns and DuckDB types, and the same
rows as a DuckDB relation on a throwaway database of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: list[str]
    """DuckDB's type of each column, e.g. VARCHAR, DOUBLE, JSON."""

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def as_relation(result: QueryResult) -> duckdb.DuckDBPyRelation:
    """The result as a relation on an in-memory database of its own (no file access), so nothing
    done with the relation can reach the projection."""
    import duckdb

    scratch = duckdb.connect(config={"enable_external_access": False, "autoload_known_extensions": False})
    columns = ", ".join(
        f'"{name.replace(chr(34), chr(34) * 2)}" {kind}'
        for name, kind in zip(result.columns, result.types, strict=True)
    )
    scratch.execute(f"CREATE TABLE result ({columns})")
    appender = scratch.appender("result")
    appender.append_rows(result.rows)
    appender.flush()
    return scratch.table("result")

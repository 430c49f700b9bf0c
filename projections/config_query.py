"""Turn `(field, operator, value)` into a type-respecting SQL predicate over a JSON column.

Nothing the caller passes is pasted into SQL text: the field becomes a JSON
pointer bound as a parameter, the value is bound as a parameter, and the
operator is looked up in a fixed table. Values compare with their own JSON
type only (numbers as DOUBLE, strings as VARCHAR, booleans as BOOLEAN), which
also avoids DuckDB's narrow-DECIMAL cast of numeric literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COMPARISONS = {"=": "=", "!=": "<>", ">": ">", "<": "<", ">=": ">=", "<=": "<="}
TYPED_COLUMNS = {"model": "VARCHAR", "temperature": "DOUBLE", "top_p": "DOUBLE"}
"""Top-level config keys also kept as typed columns (NULL when absent or of another JSON type)."""
MEMBERSHIP = ("in", "not in")
OPERATORS = (*COMPARISONS, *MEMBERSHIP)

# JSON type name(s) DuckDB reports, the SQL type to compare as, and how to extract it.
_NUMBER = ("('BIGINT', 'UBIGINT', 'DOUBLE')", "DOUBLE", "TRY_CAST(json_extract({col}, ?) AS DOUBLE)")
_STRING = ("('VARCHAR')", "VARCHAR", "json_extract_string({col}, ?)")
_BOOLEAN = ("('BOOLEAN')", "BOOLEAN", "TRY_CAST(json_extract({col}, ?) AS BOOLEAN)")


def json_pointer(field: str) -> str:
    """`a.b.c` as the RFC 6901 pointer `/a/b/c` (so no key can break out of the path)."""
    if not isinstance(field, str) or not field:
        raise ValueError("field must be a non-empty string such as 'temperature' or 'extra.reasoning.effort'")
    _check_text(field, "field")
    parts = field.split(".")
    if any(part == "" for part in parts):
        raise ValueError(f"field {field!r} has an empty path segment")
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def config_predicate(column: str, field: str, operator: str, value: Any) -> tuple[str, list[Any]]:
    """SQL text (only our own fragments) and its parameters, for one config filter."""
    pointer = json_pointer(field)
    op = operator.lower().strip() if isinstance(operator, str) else operator
    typed = _typed_column_predicate(field, op, value)
    if typed is not None:
        return typed
    if op in COMPARISONS:
        return _comparison(column, pointer, op, value)
    if op in MEMBERSHIP:
        return _membership(column, pointer, op == "not in", value)
    raise ValueError(f"Unsupported operator {operator!r}; use one of {', '.join(OPERATORS)}")


def _typed_column_predicate(field: str, op: Any, value: Any) -> tuple[str, list[Any]] | None:
    """The fast path: a plain comparison on a typed column, where it means exactly the same
    as the JSON one (same-type comparisons; `!=` and `not in` also match other types, so
    they keep the JSON path)."""
    sql_type = TYPED_COLUMNS.get(field)
    if sql_type is None:
        return None
    if op in COMPARISONS and op != "!=" and value is not None and _kind(value)[1] == sql_type:
        return f"{field} {COMPARISONS[op]} CAST(? AS {sql_type})", [_bindable(value)]
    if (
        op == "in"
        and isinstance(value, (list, tuple))
        and value
        and all(item is not None and _kind(item)[1] == sql_type for item in value)
    ):
        return f"{field} IN (SELECT unnest(CAST(? AS {sql_type}[])))", [[_bindable(item) for item in value]]
    return None


def _kind(value: Any) -> tuple[str, str, str]:
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, (int, float)):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    raise ValueError(f"config values compare with a number, string, boolean or None, not {type(value).__name__}")


def _bindable(value: Any) -> Any:
    """The value as bound to the query: numbers as finite floats (they compare as DOUBLE)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{value!r} is too large to compare") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"cannot compare with {value!r}")
        return number
    if isinstance(value, str):
        _check_text(value, "value")
    return value


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {what} {text!r} is not valid UTF-8 text (lone surrogate)") from None


def _present(column: str) -> str:
    return f"json_type({column}, ?) IS NOT NULL"


def _comparison(column: str, pointer: str, op: str, value: Any) -> tuple[str, list[Any]]:
    if value is None:
        if op not in ("=", "!="):
            raise ValueError(f"None can only be compared with = or !=, not {op}")
        test = "=" if op == "=" else "<>"
        return f"json_type({column}, ?) {test} 'NULL'", [pointer]
    types, sql_type, extract = _kind(value)
    matching = (
        f"(json_type({column}, ?) IN {types} AND {extract.format(col=column)} {COMPARISONS[op]} CAST(? AS {sql_type}))"
    )
    value = _bindable(value)
    if op != "!=":
        return matching, [pointer, pointer, value]
    # Present with another JSON type, or the same type and a different value.
    return (
        f"({_present(column)} AND (json_type({column}, ?) NOT IN {types} "
        f"OR {extract.format(col=column)} <> CAST(? AS {sql_type})))",
        [pointer, pointer, pointer, value],
    )


def _membership(column: str, pointer: str, negate: bool, values: Any) -> tuple[str, list[Any]]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, set, frozenset)):
        raise ValueError("'in' and 'not in' take a list of values")
    groups: dict[tuple[str, str, str], list[Any]] = {}
    has_null = False
    for item in values:
        if item is None:
            has_null = True
        else:
            groups.setdefault(_kind(item), []).append(_bindable(item))
    clauses: list[str] = []
    params: list[Any] = []
    for (types, sql_type, extract), items in groups.items():
        clauses.append(
            f"(json_type({column}, ?) IN {types} "
            f"AND {extract.format(col=column)} IN (SELECT unnest(CAST(? AS {sql_type}[]))))"
        )
        params += [pointer, pointer, items]
    if has_null:
        clauses.append(f"json_type({column}, ?) = 'NULL'")
        params.append(pointer)
    any_match = "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"
    if not negate:
        return any_match, params
    return f"({_present(column)} AND NOT {any_match})", [pointer, *params]

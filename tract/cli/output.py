"""How reading commands print what they read: `--format table|json|jsonl|csv`.

One module decides every format, so the field names a command documents are the
keys of the records it hands over here, whatever the format:

- `table` (the default, terminal or not): aligned columns for people;
- `json`: one JSON document (an array of records, or one object);
- `jsonl`: one compact JSON object per line;
- `csv`: a header row, then one row per record; nested values as JSON text, None empty.

Lists are written as they are produced (a table takes its column widths from the
first rows), so a long result never has to fit in memory.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from itertools import islice
from typing import IO, Any
from uuid import UUID

from pydantic import BaseModel

FORMATS = ("table", "json", "jsonl", "csv")
WIDTH_SAMPLE = 1000
"""A table's column widths come from this many first rows; later, wider cells just stick out."""

Record = Mapping[str, Any]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Column:
    """One column of a table: its header, and how a record's cell is shown."""

    header: str
    cell: Callable[[Record], object]
    align: str = "<"


def jsonable(value: Any) -> Any:
    """`value` as plain JSON: times as ISO 8601 text, decimals as numbers, bytes as hex, models and
    enums by their values. JSON has no NaN or infinity: those travel as the strings "NaN",
    "Infinity" and "-Infinity"."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return (
            value
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
        )
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return jsonable(int(value) if value == value.to_integral_value() else float(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="python"))
    if isinstance(value, (UUID, timedelta)):
        return str(value)
    raise TypeError(f"cannot print a {type(value).__name__} as JSON")


def json_text(value: Any, *, indent: int | None = None) -> str:
    compact = (",", ":") if indent is None else None
    return json.dumps(jsonable(value), ensure_ascii=False, indent=indent, separators=compact)


def terminal_safe(text: str) -> str:
    """Text from the log as a terminal may show it: control characters other than newline and tab
    (an escape sequence could rewrite the screen) written as escapes such as \\x1b."""
    return _CONTROL.sub(_escaped, text)


def cell_text(value: object) -> str:
    """A value in a table cell, on one line: NULL for None, JSON for lists and objects, control
    characters (newlines too) as escapes."""
    if value is None:
        return "NULL"
    if isinstance(value, (Mapping, list, tuple)):
        text = json_text(value)
    elif isinstance(value, Enum):
        text = str(value.value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return _CONTROL_OR_LINE.sub(_escaped, text)


def one_line(text: str, width: int | None = 60) -> str:
    """Whitespace folded to single spaces, control characters escaped, cut to `width` characters
    (with an ellipsis)."""
    text = _CONTROL_OR_LINE.sub(_escaped, " ".join(text.split()))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(character) or f"\\x{ord(character):02x}"


def print_records(
    form: str,
    records: Iterable[Record],
    *,
    fields: Sequence[str],
    header: Sequence[str] | None = None,
    table: Sequence[Column] | None = None,
    row_count: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Print a list of records in `form`; returns how many. `fields` are the records' keys, in
    order (csv's header, even when there are no records, unless `header` names them otherwise);
    `table` the columns people see (default: every field); `row_count` adds "(N rows)" under a
    table."""
    out = out if out is not None else sys.stdout
    if form == "json":
        count = _json_array(records, out)
    elif form == "jsonl":
        count = 0
        for count, record in enumerate(records, 1):  # noqa: B007 - its last value is how many were written
            out.write(json_text(record) + "\n")
    elif form == "csv":
        count = _csv_rows(records, fields, out, header)
    else:
        columns = table if table is not None else [Column(name, _field(name)) for name in fields]
        count = _table(records, columns, out)
        if row_count:
            out.write(f"({count} row{'' if count == 1 else 's'})\n")
    out.flush()
    return count


def print_record(form: str, record: Record, *, table: Callable[[], str], out: IO[str] | None = None) -> None:
    """Print one result: `table()` is its text for people; json is indented, jsonl one line,
    csv a header and one row (nested values as JSON text)."""
    out = out if out is not None else sys.stdout
    if form == "json":
        out.write(json_text(record, indent=2) + "\n")
    elif form == "jsonl":
        out.write(json_text(record) + "\n")
    elif form == "csv":
        _csv_rows([record], list(record), out)
    else:
        out.write(table() + "\n")
    out.flush()


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, row_count: bool = True) -> str:
    """Rows as an aligned plain-text table (with the row count underneath)."""
    cells = [[cell_text(value) for value in row] for row in rows]
    return "\n".join(_table_lines(list(columns), cells, ["<"] * len(columns), row_count))


def _field(name: str) -> Callable[[Record], object]:
    return lambda record: record[name]


def _json_array(records: Iterable[Record], out: IO[str]) -> int:
    count = 0
    out.write("[")
    for count, record in enumerate(records, 1):
        out.write(("\n" if count == 1 else ",\n") + json_text(record))
    out.write("\n]\n" if count else "]\n")
    return count


def _csv_rows(
    records: Iterable[Record], fields: Sequence[str], out: IO[str], header: Sequence[str] | None = None
) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields if header is None else header)
    count = 0
    for count, record in enumerate(records, 1):  # noqa: B007 - its last value is how many were written
        writer.writerow([_csv_cell(record.get(name)) for name in fields])
    return count


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, (Mapping, list, tuple)):
        return json_text(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _table(records: Iterable[Record], columns: Sequence[Column], out: IO[str]) -> int:
    rows = iter(records)
    headers = [column.header for column in columns]
    aligns = [column.align for column in columns]
    first = [_cells(record, columns) for record in islice(rows, WIDTH_SAMPLE)]
    widths = _widths(headers, first)
    for line in _table_lines(headers, first, aligns, False, widths):
        out.write(line + "\n")
    count = len(first)
    for record in rows:
        out.write(_line(_cells(record, columns), widths, aligns) + "\n")
        count += 1
    return count


def _cells(record: Record, columns: Sequence[Column]) -> list[str]:
    return [cell_text(column.cell(record)) for column in columns]


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]


def _table_lines(
    headers: list[str],
    rows: Sequence[Sequence[str]],
    aligns: Sequence[str],
    row_count: bool,
    widths: list[int] | None = None,
) -> Iterator[str]:
    widths = widths if widths is not None else _widths(headers, rows)
    yield _line(headers, widths, ["<"] * len(headers))
    yield _line(["-" * width for width in widths], widths, aligns)
    for row in rows:
        yield _line(row, widths, aligns)
    if row_count:
        yield f"({len(rows)} row{'' if len(rows) == 1 else 's'})"


def _line(cells: Sequence[str], widths: Sequence[int], aligns: Sequence[str]) -> str:
    return "  ".join(
        f"{cell:{align}{width}}" for cell, width, align in zip(cells, widths, aligns, strict=True)
    ).rstrip()

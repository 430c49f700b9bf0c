"""Where two layers keep their own shape of one record on purpose, a test pins them together.

The analytics tables are declared by their row structs (`projections/analytics_schema.py` builds
the DDL from them); the README documents those tables; the commit view's entries (msgspec, inside)
and the SDK's models (pydantic, at the boundary) describe the same facts. Renaming or adding a field
on one side without the other fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import msgspec
import pytest

from events import AnnotationAdded, CommitCreated, GenerationConfigRecorded, UsageRecorded
from projections import analytics_schema
from projections.view_state import ConfigEntry, RefEntry, UsageEntry
from tract.models import CommitInfo, ConfigRecord, RefLogEntry, TokenUsage

README = Path(__file__).resolve().parent.parent / "README.md"


def struct_fields(struct: type[msgspec.Struct]) -> list[str]:
    return [field.name for field in msgspec.structs.fields(struct)]


def database_columns() -> dict[str, list[str]]:
    con = duckdb.connect()
    con.execute(analytics_schema.SCHEMA)
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns ORDER BY table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def readme_columns() -> dict[str, set[str]]:
    """Each table or view of the README's schema table, with the columns its row names (what is
    in parentheses describes a column, and what follows the list the table's rows: left out)."""
    section = README.read_text().split("### Schema", 1)[1].split("\n\n", 2)[1]
    documented: dict[str, set[str]] = {}
    for line in section.splitlines()[2:]:
        name_cell, columns_cell = line.strip("|").split("|", 1)
        while re.search(r"\([^()]*\)", columns_cell):
            columns_cell = re.sub(r"\([^()]*\)", "", columns_cell)
        columns_cell = columns_cell.split(": ", 1)[0]  # then what a row is
        documented[re.findall(r"`(\w+)`", name_cell)[0]] = set(re.findall(r"`(\w+)`", columns_cell))
    return documented


def test_the_readme_documents_every_table_with_exactly_its_columns() -> None:
    actual = database_columns()
    documented = readme_columns()
    assert set(documented) == set(actual) - {"recorded_configs", "branch_moves"}  # read through their views
    for table, columns in documented.items():
        if table != "projection_state":
            assert columns == set(actual[table]), table


@pytest.mark.parametrize(
    ("row", "event"),
    [
        (analytics_schema._CommitRow, CommitCreated),
        (analytics_schema._ConfigRow, GenerationConfigRecorded),
        (analytics_schema._UsageRow, UsageRecorded),
        (analytics_schema._AnnotationRow, AnnotationAdded),
    ],
)
def test_analytics_rows_name_their_events_fields_as_the_event_does(row: type[msgspec.Struct], event: type) -> None:
    assert set(struct_fields(row)) - {"position"} <= set(struct_fields(event))


@pytest.mark.parametrize(
    ("entry", "model"), [(RefEntry, RefLogEntry), (ConfigEntry, ConfigRecord)]
)  # fmt: skip
def test_the_views_entries_and_the_sdks_models_have_the_same_fields(entry: type[msgspec.Struct], model: type) -> None:
    assert set(struct_fields(entry)) == set(model.model_fields)


def test_usage_entries_carry_every_figure_the_sdk_reports() -> None:
    assert (
        set(TokenUsage.model_fields)
        <= set(struct_fields(UsageEntry))
        <= set(struct_fields(UsageRecorded)) | {"position"}
    )


def test_a_commit_info_is_its_event_with_the_records_number() -> None:
    """`CommitInfo` serves every field of `CommitCreated` but the tokenizer's name (the count is served),
    plus the record's number in its tract."""
    event_fields = set(struct_fields(CommitCreated))
    assert set(CommitInfo.model_fields) == event_fields - {"tokenizer"} | {"position"}

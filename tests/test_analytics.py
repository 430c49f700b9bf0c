"""The DuckDB projection: config queries, user SQL, rebuilds."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tract import DialogueContent, Priority, QueryError, Tract


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


TEMPERATURES = [0.84, 0.8, 1e-9, 0.5, 1, "hot", None, True]


@pytest.fixture
def configured(tract: Tract) -> Tract:
    for i, temperature in enumerate(TEMPERATURES):
        tract.commit(
            user(f"t={temperature!r}"),
            generation_config={
                "model": "big" if i % 2 else "small",
                "temperature": temperature,
                "extra": {"reasoning": {"effort": "high" if i < 3 else "low"}},
            },
        )
    tract.commit(user("no config at all"))
    return tract


def texts(infos: list) -> list[str]:
    return [info.content["text"] for info in infos]


def test_numeric_comparisons_do_not_fall_into_the_decimal_trap(configured: Tract) -> None:
    assert texts(configured.query_by_config("temperature", ">", 0.8)) == ["t=0.84", "t=1"]
    assert texts(configured.query_by_config("temperature", ">=", 0.8)) == ["t=0.84", "t=0.8", "t=1"]
    assert texts(configured.query_by_config("temperature", "<", 0.001)) == ["t=1e-09"]
    assert texts(configured.query_by_config("temperature", "=", 1e-9)) == ["t=1e-09"]
    assert texts(configured.query_by_config("temperature", "<=", 0.5)) == ["t=1e-09", "t=0.5"]
    assert texts(configured.query_by_config("temperature", "=", 1)) == ["t=1"]


def test_types_are_respected_and_missing_fields_never_match(configured: Tract) -> None:
    assert texts(configured.query_by_config("temperature", "=", "hot")) == ["t='hot'"]
    assert texts(configured.query_by_config("temperature", ">", "a")) == ["t='hot'"]
    assert texts(configured.query_by_config("temperature", "=", True)) == ["t=True"]
    assert texts(configured.query_by_config("temperature", "=", None)) == ["t=None"]
    not_point_eight = texts(configured.query_by_config("temperature", "!=", 0.8))
    assert "t=0.8" not in not_point_eight and "no config at all" not in not_point_eight
    assert len(not_point_eight) == len(TEMPERATURES) - 1
    assert configured.query_by_config("no_such_field", "!=", 1) == []
    assert texts(configured.query_by_config("temperature", "!=", None)) == [
        f"t={t!r}" for t in TEMPERATURES if t is not None
    ]


def test_in_and_not_in(configured: Tract) -> None:
    assert texts(configured.query_by_config("temperature", "in", [0.8, "hot", True])) == ["t=0.8", "t='hot'", "t=True"]
    excluded = texts(configured.query_by_config("temperature", "not in", [0.84, 0.8, 1e-9, 0.5, 1]))
    assert excluded == ["t='hot'", "t=None", "t=True"]
    assert configured.query_by_config("temperature", "in", []) == []
    with pytest.raises(ValueError):
        configured.query_by_config("temperature", "in", "0.8")


def test_nested_paths(configured: Tract) -> None:
    assert len(configured.query_by_config("extra.reasoning.effort", "=", "high")) == 3
    assert len(configured.query_by_config("extra.reasoning", "=", "high")) == 0
    assert texts(configured.query_by_config("model", "=", "big"))[0] == "t=0.8"


def test_results_are_commit_infos_in_creation_order_scoped_to_the_tract(log_dir: Path) -> None:
    with Tract.open(log_dir) as first:
        a = first.commit(user("a"), generation_config={"model": "m"})
        b = first.commit(user("b"), generation_config={"model": "m"})
    with Tract.open(log_dir, tract_id="other") as other:
        other.commit(user("other"), generation_config={"model": "m"})
        assert texts(other.query_by_config("model", "=", "m")) == ["other"]
    with Tract.open(log_dir) as first:
        assert first.query_by_config("model", "=", "m") == [
            first.get_commit(a.commit_hash),
            first.get_commit(b.commit_hash),
        ]


@pytest.mark.parametrize(
    "field",
    ["temperature'; DROP TABLE commits; --", "$.temperature", "a..b", "", '"temperature"', "x" * 5000, "a/b", "~0"],
)
def test_hostile_fields_are_values_not_sql(configured: Tract, field: str) -> None:
    try:
        assert configured.query_by_config(field, "=", 1) == []
    except ValueError as error:
        assert "field" in str(error)
    assert configured.sql("SELECT count(*) FROM commits").rows == [(len(TEMPERATURES) + 1,)]


def test_hostile_values_are_parameters(configured: Tract) -> None:
    assert configured.query_by_config("model", "=", "big' OR '1'='1") == []
    assert configured.query_by_config("model", "in", ["x') OR (1=1", "$"]) == []


def test_unknown_operator(configured: Tract) -> None:
    with pytest.raises(ValueError, match="Unsupported operator"):
        configured.query_by_config("temperature", "LIKE", "h%")
    with pytest.raises(ValueError, match="Unsupported operator"):
        configured.query_by_config("temperature", "; DROP TABLE commits", 1)


def test_record_usage_config_becomes_the_effective_one(tract: Tract) -> None:
    tract.commit(user("q"), generation_config={"temperature": 0.2})
    assert tract.query_by_config("temperature", ">", 0.5) == []  # analytics now exist and are caught up
    tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"temperature": 0.9})
    assert texts(tract.query_by_config("temperature", ">", 0.5)) == ["q"]
    rows = tract.sql("SELECT source, generation_config->>'temperature' FROM config_records ORDER BY position").rows
    assert rows == [("commit", "0.2"), ("record_usage", "0.9")]


def test_the_latest_recorded_config_is_the_effective_one_caught_up_or_rebuilt(log_dir: Path) -> None:
    with Tract.open(log_dir) as t:
        t.commit(user("q"), generation_config={"temperature": 0.2})
        assert t.query_by_config("temperature", ">", 0.5) == []  # the projection exists, and catches up below
        t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"temperature": 0.9})
        t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"temperature": 0.3})
        caught_up = t.sql("SELECT generation_config->>'temperature', temperature FROM commits").rows
        assert caught_up == [("0.3", 0.3)]
        assert t.query_by_config("temperature", ">", 0.5) == []
        assert texts(t.query_by_config("temperature", "=", 0.3)) == ["q"]
    (log_dir / "analytics.duckdb").unlink()
    with Tract.open(log_dir, readonly=True) as reader:  # the projection rebuilt from the log alone
        assert reader.sql("SELECT generation_config->>'temperature', temperature FROM commits").rows == caught_up
        assert texts(reader.query_by_config("temperature", "=", 0.3)) == ["q"]


def test_sql_sees_every_committed_event_and_has_the_documented_schema(tract: Tract) -> None:
    tract.sql("SELECT 1")
    info = tract.commit(
        user("q"), message="m", metadata={"k": "v"}, generation_config={"model": "gpt", "temperature": 0.3, "top_p": 1}
    )
    tract.annotate(info.commit_hash, Priority.PINNED, reason="keep")
    tract.record_usage({"prompt_tokens": 12, "completion_tokens": 3})
    result = tract.sql("SELECT * FROM commits")
    row = result.dicts()[0]
    assert row["commit_hash"] == info.commit_hash and row["tract_id"] == tract.tract_id
    assert row["parent_hash"] is None and row["content_type"] == "dialogue" and row["operation"] == "append"
    assert row["message"] == "m" and row["token_count"] == info.token_count
    assert row["model"] == "gpt" and row["temperature"] == 0.3 and row["top_p"] == 1.0
    assert isinstance(row["created_at"], datetime) and row["position"] == info.position
    assert tract.sql("SELECT metadata->>'k' FROM commits").rows == [("v",)]
    assert tract.sql("SELECT prompt_tokens, completion_tokens, total_tokens, head_hash FROM usage").rows == [
        (12, 3, 15, info.commit_hash)
    ]
    assert tract.sql("SELECT priority, reason FROM annotations").rows == [("pinned", "keep")]
    assert tract.sql("SELECT count(*) FROM commits WHERE temperature > ?", [0.2]).rows == [(1,)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO commits (commit_hash) VALUES ('x')",
        "DELETE FROM commits",
        "UPDATE commits SET message = 'x'",
        "DROP TABLE commits",
        "CREATE TABLE t (x INT)",
        "ATTACH '/tmp/other.duckdb' AS other",
        "COPY commits TO '/tmp/out.csv'",
        "PRAGMA database_list",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET threads = 1",
        "SELECT 1; DROP TABLE commits",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM query('DROP TABLE commits')",
        "",
    ],
)
def test_sql_refuses_writes_and_file_access(configured: Tract, statement: str) -> None:
    with pytest.raises(QueryError):
        configured.sql(statement)
    assert configured.sql("SELECT count(*) FROM commits").rows == [(len(TEMPERATURES) + 1,)]


def test_sql_relation_for_duckdb_users(configured: Tract) -> None:
    relation = configured.sql_relation(
        "SELECT model, count(*) AS n FROM commits WHERE model IS NOT NULL GROUP BY model ORDER BY model"
    )
    assert relation.fetchall() == [("big", 4), ("small", 4)]
    with pytest.raises(QueryError):
        configured.sql_relation("DROP TABLE commits")


def test_deleting_or_damaging_the_database_only_costs_a_rebuild(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        for i in range(5):
            tract.commit(user(f"q{i}"), generation_config={"temperature": i / 4})
        expected = tract.query_by_config("temperature", ">", 0.3)
        counts = tract.sql("SELECT count(*) FROM commits").rows
    database = log_dir / "analytics.duckdb"
    assert database.exists()
    database.unlink()
    with Tract.open(log_dir) as tract:
        assert tract.query_by_config("temperature", ">", 0.3) == expected
    database.write_bytes(b"this is not a duckdb database" * 100)
    with pytest.warns(RuntimeWarning, match="analytics"), Tract.open(log_dir) as tract:
        assert tract.sql("SELECT count(*) FROM commits").rows == counts


def test_analytics_of_another_log_is_rebuilt(tmp_path: Path) -> None:
    with Tract.open(tmp_path / "a") as a:
        a.commit(user("a"), generation_config={"model": "from-a"})
        a.sql("SELECT 1")
    with Tract.open(tmp_path / "b") as b:
        b.commit(user("b"), generation_config={"model": "from-b"})
    (tmp_path / "b" / "analytics.duckdb").write_bytes((tmp_path / "a" / "analytics.duckdb").read_bytes())
    with pytest.warns(RuntimeWarning, match="does not match"), Tract.open(tmp_path / "b") as b:
        assert b.sql("SELECT model FROM commits").rows == [("from-b",)]


def test_commit_does_not_load_duckdb(log_dir: Path) -> None:
    script = f"""
import sys
from tract import Tract, DialogueContent
with Tract.open({str(log_dir)!r}) as t:
    t.commit(DialogueContent(role="user", text="hi"), generation_config={{"model": "m"}})
    t.compile()
    assert "duckdb" not in sys.modules, "duckdb imported on the commit path"
    t.query_by_config("model", "=", "m")
    assert "duckdb" in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_in_memory_and_readonly_tracts_have_analytics(log_dir: Path) -> None:
    with Tract.open() as memory:
        memory.commit(user("x"), generation_config={"model": "m"})
        assert len(memory.query_by_config("model", "=", "m")) == 1
    with Tract.open(log_dir) as writer:
        writer.commit(user("x"), generation_config={"model": "m"})
        writer.sql("SELECT 1")  # the writer owns analytics.duckdb
        with Tract.open(log_dir, readonly=True) as reader:
            assert len(reader.query_by_config("model", "=", "m")) == 1


def test_cli_sql_prints_a_table_and_refuses_writes(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract.commit(user("q"), generation_config={"model": "gpt", "temperature": 0.84})
    done = subprocess.run(
        [sys.executable, "-m", "tract.cli", "sql", str(log_dir), "SELECT model, temperature FROM commits"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["model", "temperature"] and lines[2].split() == ["gpt", "0.84"]
    assert lines[-1] == "(1 row)"
    refused = subprocess.run(
        [sys.executable, "-m", "tract.cli", "sql", str(log_dir), "DROP TABLE commits"], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "read-only" in refused.stderr and "Traceback" not in refused.stderr


COMPARABLE = (
    [(operator, value) for operator in ("=", "!=", ">", "<", ">=", "<=") for value in (0.8, 1, 1e-9, "hot", True)]
    + [("=", None), ("!=", None)]
    + [(operator, value) for operator in ("in", "not in") for value in ([0.8, 1e-9], ["hot", 0.5], [True, None], [1])]
)


@pytest.mark.parametrize("operator, value", COMPARABLE)
def test_typed_columns_answer_exactly_like_the_json_path(operator: str, value: object) -> None:
    """`temperature` has a typed column (a fast path); the same values under `copy` do not."""
    with Tract.open() as tract:
        for temperature in TEMPERATURES:
            tract.commit(
                user(f"t={temperature!r}"), generation_config={"temperature": temperature, "copy": temperature}
            )
        tract.commit(user("none"))
        fast = texts(tract.query_by_config("temperature", operator, value))
        slow = texts(tract.query_by_config("copy", operator, value))
        assert fast == slow


def test_nothing_done_with_a_relation_reaches_the_projection(configured: Tract) -> None:
    before = configured.sql("SELECT count(*) FROM commits").rows
    relation = configured.sql_relation("SELECT * FROM commits")
    relation.insert_into("result")
    relation.query("v", "DELETE FROM result")
    relation.create("another")
    assert configured.sql("SELECT count(*) FROM commits").rows == before
    assert len(configured.query_by_config("model", "in", ["big", "small"])) == len(TEMPERATURES)
    assert configured.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'another'").rows == [(0,)]

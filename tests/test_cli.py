"""Every CLI command through a subprocess, with its error paths: one line on stderr, exit 1 when the
command fails and 2 when its arguments are wrong."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import events.opening
import tract
from events import LOG_FILE
from tract import DialogueContent, InstructionContent, Tract


def run(*args: object, module: str = "tract.cli", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
    )


def ok(*args: object) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(*args: object, match: str, status: int = 1) -> None:
    done = run(*args)
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert match in lines[0], lines[0]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def populated(log_dir: Path) -> Path:
    with Tract.open(log_dir) as tract:
        tract.commit(InstructionContent(text="be brief"))
        tract.commit(DialogueContent(role="user", text="hello"), generation_config={"model": "m", "temperature": 0.5})
        tract.commit(DialogueContent(role="assistant", text="hi"))
        tract.record_usage({"prompt_tokens": 20, "completion_tokens": 2})
    return log_dir


def test_verify(populated: Path) -> None:
    summary, head_line = ok("verify", populated).splitlines()
    assert summary == "ok: 6 records in 1 tract"
    anchor = head_line.removeprefix("chain head ")
    tract_id, position, digest = anchor.rsplit(":", 2)
    assert position == "6" and len(digest) == 64
    ok("verify", populated, "--anchor", anchor)
    fails(
        "verify", populated, "--anchor", f"{tract_id}:6:" + "0" * 64, match=f"anchor mismatch at {tract_id} position 6"
    )
    fails("verify", populated, "--anchor", f"{tract_id}:7:{digest}", match="anchor missing")
    fails("verify", populated, "--anchor", f"other:6:{digest}", match="no record of the tract")
    fails("verify", populated, "--anchor", "nonsense", match="TRACT:POSITION:HASH", status=2)
    path = populated / LOG_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fails("verify", populated, match="position")


def test_verify_missing_directory(tmp_path: Path) -> None:
    fails("verify", tmp_path / "nowhere", match="no such log directory")
    (tmp_path / "empty").mkdir()
    fails("verify", tmp_path / "empty", match="no tract log here")


def test_verify_in_every_format(populated: Path) -> None:
    report = json.loads(ok("verify", populated, "--format", "json"))
    (head,) = report["heads"]
    assert report["ok"] is True and report["records_checked"] == 6 and report["problem"] is None
    assert head["position"] == 6 and head["anchor"] == f"{head['tract_id']}:6:{head['hash']}"
    assert json_lines(ok("verify", populated, "--format", "jsonl")) == [report]
    (row,) = csv_rows(ok("verify", populated, "--format", "csv"))
    assert row["ok"] == "true" and json.loads(row["heads"]) == report["heads"]
    wrong = f"{head['tract_id']}:6:" + "0" * 64
    done = run("verify", populated, "--anchor", wrong, "--format", "json")
    failed = json.loads(done.stdout)
    assert done.returncode == 1 and failed["ok"] is False and failed["problem"]["kind"] == "anchor mismatch"
    assert done.stderr.count("\n") == 1 and "anchor mismatch" in done.stderr


def test_log_and_show(populated: Path) -> None:
    header, rule, *rows = ok("log", populated, "-n", "2").splitlines()
    assert header.split() == ["commit", "created_at", "operation", "type", "tokens", "text"] and set(rule) <= {"-", " "}
    assert len(rows) == 2 and rows[0].endswith("(HEAD -> main) hi") and rows[1].endswith("hello")
    assert ok("log", populated, "--limit", "2") == ok("log", populated, "-n", "2")
    assert len(ok("log", populated, "-n", "all").splitlines()) == 2 + 3
    prefix = rows[1].split()[0]
    shown = json.loads(ok("show", populated, prefix, "--format", "json"))
    assert shown["content"]["text"] == "hello" and shown["config_history"][0]["source"] == "commit"
    table = ok("show", populated, prefix)
    assert f"commit_hash        {shown['commit_hash']}" in table and table.rstrip().endswith("    hello")
    fails("show", populated, "ffffffff", match="no commit")
    fails("log", populated, "--tract", "nope", match="no tract 'nope'")


@pytest.mark.parametrize("limit", ["-1", "0", "ten", "1.5"])
def test_a_limit_that_is_no_count_is_a_usage_error(populated: Path, limit: str) -> None:
    fails("log", populated, "-n", limit, match="at least 1", status=2)


def test_compile_formats_and_time_travel(populated: Path) -> None:
    text = ok("compile", populated)
    assert "[system] be brief" in text and "API reported 20 prompt + 2 completion tokens" in text
    openai = json.loads(ok("compile", populated, "--as", "openai"))
    assert [m["role"] for m in openai] == ["system", "user", "assistant"]
    anthropic = json.loads(ok("compile", populated, "--as", "anthropic"))
    assert anthropic["system"] == "be brief"
    assert json_lines(ok("compile", populated, "--as", "anthropic", "--format", "jsonl")) == [anthropic]
    full = json.loads(ok("compile", populated, "--format", "json"))
    assert full["generation_configs"][1] == {"model": "m", "temperature": 0.5}
    messages = json_lines(ok("compile", populated, "--format", "jsonl"))
    assert [(m["index"], m["role"], m["content"]) for m in messages] == [
        (0, "system", "be brief"), (1, "user", "hello"), (2, "assistant", "hi")
    ]  # fmt: skip
    assert messages[1]["generation_config"] == {"model": "m", "temperature": 0.5}
    assert [row["commit_hash"] for row in csv_rows(ok("compile", populated, "--format", "csv"))] == full[
        "commit_hashes"
    ]
    at_four = json.loads(ok("compile", populated, "--at", "4", "--as", "openai"))
    assert [m["content"] for m in at_four] == ["be brief", "hello"]
    at_commit = json.loads(ok("compile", populated, "--commit", full["commit_hashes"][1][:8], "--as", "openai"))
    assert at_commit == at_four
    assert json.loads(ok("compile", populated, "--at", "2000-01-01T00:00:00+00:00", "--as", "openai")) == []
    fails("compile", populated, "--at", "yesterday", match="an ISO time", status=2)
    fails("compile", populated, "--at", "9999", match="--at 9999 is past the tract's last position, 6")
    fails("compile", populated, "--at", "2", "--commit", full["commit_hashes"][0], match="not both", status=2)
    fails("compile", populated, "--format", "openai", match="use --as openai", status=2)
    fails("compile", populated, "--as", "openai", "--format", "csv", match="does not apply", status=2)


def test_events_in_every_format(populated: Path) -> None:
    lines = json_lines(ok("events", populated, "--type", "CommitCreated", "--format", "jsonl"))
    assert [e["type"] for e in lines] == ["CommitCreated"] * 3
    assert set(lines[0]) == {"position", "type", "created_at", "event"}
    assert lines[1]["event"]["generation_config"] == {"model": "m", "temperature": 0.5}
    ranged = [
        e["position"] for e in json.loads(ok("events", populated, "--from", "2", "--to", "3", "--format", "json"))
    ]
    assert ranged == [2, 3]
    header, _, *rows = ok("events", populated, "--to", "2").splitlines()
    assert header.split() == ["position", "created_at", "type", "details"]
    assert rows[0].split()[0::2] == ["1", "TractCreated"] and rows[1].split()[2] == "CommitCreated"
    assert [row["type"] for row in csv_rows(ok("events", populated, "--format", "csv"))][:2] == [
        "TractCreated",
        "CommitCreated",
    ]
    fails("events", populated, "--type", "Bogus", match="unknown event type")


def test_sql(populated: Path) -> None:
    assert "(3 rows)" in ok("sql", populated, "SELECT * FROM commits")
    query = "SELECT content_type, token_count, generation_config FROM commits ORDER BY position"
    rows = json.loads(ok("sql", populated, query, "--format", "json"))
    assert [row["content_type"] for row in rows] == ["instruction", "dialogue", "dialogue"]
    assert json_lines(ok("sql", populated, query, "--format", "jsonl")) == rows
    table = csv_rows(ok("sql", populated, query, "--format", "csv"))
    assert [row["content_type"] for row in table] == ["instruction", "dialogue", "dialogue"]
    assert ok("sql", populated, "SELECT 1 AS a, 2 AS a", "--format", "csv") == "a,a\n1,2\n"
    fails("sql", populated, "SELECT 1 AS a, 2 AS a", "--format", "json", match="several columns named 'a'", status=2)
    fails("sql", populated, "DELETE FROM commits", match="read-only")
    fails("sql", populated, "SELECT * FROM missing_table", match="missing_table")


def test_export_import_round_trip(populated: Path, tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    assert ok("export", populated, export).splitlines() == [f"exported 6 records to {export}"]
    assert len(export.read_text().splitlines()) == 6
    head = ok("verify", populated).splitlines()[1]
    imported = ok("import", export, tmp_path / "copy").splitlines()
    assert imported == [f"imported 6 records of 1 tract into {tmp_path / 'copy'}", head]
    assert ok("verify", tmp_path / "copy").splitlines()[1] == head
    fails("import", export, tmp_path / "copy", match="already holds a log")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(export.read_text().replace('"position":4', '"position":5'))
    fails("import", broken, tmp_path / "other", match="out of order")
    assert not (tmp_path / "other").exists()
    (tmp_path / "empty").mkdir()
    assert ok("import", export, tmp_path / "empty").splitlines()[1] == head


def test_an_import_that_fails_midway_leaves_nothing_behind(populated: Path, tmp_path: Path) -> None:
    """Every line is well formed and the first records import; the last one's hash was altered, so
    the import fails there, and no directory (not even a hidden, half-written one) is left."""
    export = tmp_path / "log.jsonl"
    ok("export", populated, export)
    records = [json.loads(line) for line in export.read_text().splitlines()]
    records[-1]["record_hash"] = "0" * 64
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(record) + "\n" for record in records))
    done = run("import", tampered, tmp_path / "copy")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "does not hash as exported" in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["log", "log.jsonl", "tampered.jsonl"]


def test_one_tract_exports_alone_with_its_chain_head(populated: Path, tmp_path: Path) -> None:
    with Tract.open(populated, tract_id="second") as other:
        other.commit(DialogueContent(role="user", text="another conversation"))
    heads = ok("verify", populated).splitlines()[1:]
    assert len(heads) == 2 and heads[1].startswith("chain head second:")
    export = tmp_path / "second.jsonl"
    assert ok("export", populated, export, "--tract", "second").splitlines() == [
        f"exported 2 records to {export}",
        heads[1],
    ]
    assert ok("import", export, tmp_path / "copy").splitlines()[1:] == [heads[1]]
    assert ok("verify", tmp_path / "copy", "--anchor", heads[1].removeprefix("chain head ")).startswith("ok: 2 records")
    assert "another conversation" in ok("compile", tmp_path / "copy", "--tract", "second")


def test_export_parquet(populated: Path, tmp_path: Path) -> None:
    out = ok("export", populated, "--as", "parquet", tmp_path / "pq")
    assert {Path(line).name for line in out.splitlines()} == {
        "commits.parquet", "config_records.parquet", "usage.parquet", "tool_calls.parquet", "tool_results.parquet",
        "compressions.parquet", "annotations.parquet", "ref_moves.parquet",
    }  # fmt: skip
    assert (tmp_path / "pq" / "commits.parquet").stat().st_size > 0
    fails("export", populated, "--format", "parquet", tmp_path / "pq2", match="--as parquet", status=2)


def test_reading_commands_work_while_a_writer_holds_the_log(populated: Path) -> None:
    with Tract.open(populated) as writer:
        writer.commit(DialogueContent(role="user", text="while open"))
        assert "while open" in ok("compile", populated)
        assert "ok: " in ok("verify", populated)


def test_corrupt_log_is_one_line(populated: Path) -> None:
    path = populated / LOG_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    fails("log", populated, match="position")


def test_usage_errors_are_one_line_and_exit_2() -> None:
    for args in (["compile"], ["log"], ["nonsense"], ["log", "DIR", "--bogus"]):
        done = run(*args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage error" in done.stderr, done.stderr


def test_version_everywhere() -> None:
    assert tract.__version__ == version("tract-context")
    assert ok("--version") == f"tract {tract.__version__}\n"
    assert run("--version", module="tract").stdout == f"tract {tract.__version__}\n"
    assert tract.verify is events.opening.verify_location  # a log directory, or a store's URL


def test_python_dash_m_tract_runs_the_commands(populated: Path) -> None:
    done = run("verify", populated, module="tract")
    assert done.returncode == 0 and done.stdout.startswith("ok: 6 records")


def test_branches_and_diff_in_every_format(populated: Path) -> None:
    with Tract.open(populated) as writer:
        writer.branch("alt")
        writer.commit(DialogueContent(role="assistant", text="another answer"), generation_config={"model": "n"})
    branches = json.loads(ok("branches", populated, "--format", "json"))
    assert [(b["name"], b["commit_count"], b["current"]) for b in branches] == [("alt", 4, True), ("main", 3, False)]
    assert [row["name"] for row in csv_rows(ok("branches", populated, "--format", "csv"))] == ["alt", "main"]
    diff = json.loads(ok("diff", populated, "main", "alt", "--format", "json"))
    assert (diff["a"], diff["b"], diff["b_tokens"] > diff["a_tokens"]) == ("main", "alt", True)
    (added,) = diff["changes"]
    assert added["change"] == "added" and added["b_content"] == "another answer" and added["b_position"] == 3
    assert json_lines(ok("diff", populated, "main", "alt", "--format", "jsonl")) == diff["changes"]
    by_prefix = json.loads(ok("diff", populated, "main", added["commit_hash"][:10], "--format", "json"))
    assert by_prefix["changes"] == diff["changes"] and by_prefix["b_head"] == diff["b_head"]
    fails("diff", populated, "main", "nobranch", match="no branch 'nobranch'")


READS = {
    "log": ["log"],
    "show": ["show", "HEAD_PREFIX"],
    "compile": ["compile"],
    "events": ["events"],
    "branches": ["branches"],
    "diff": ["diff", "main", "main"],
    "sql": ["sql", "SELECT tract_id, count(*) AS n FROM commits GROUP BY ALL"],
    "verify": ["verify"],
}


@pytest.mark.parametrize("command", READS)
def test_every_reading_command_prints_every_format(populated: Path, command: str) -> None:
    with Tract.open(populated, readonly=True) as reader:
        head = reader.head
    assert head is not None
    name, *rest = READS[command]
    args = [name, populated, *(head[:8] if arg == "HEAD_PREFIX" else arg for arg in rest)]
    table = ok(*args)
    assert ok(*args, "--format", "table") == table and table.strip()
    document = json.loads(ok(*args, "--format", "json"))
    lines = json_lines(ok(*args, "--format", "jsonl"))
    rows = csv_rows(ok(*args, "--format", "csv"))
    # json is the whole result as one document; jsonl and csv hold its items, each once, in order
    if isinstance(document, list):
        items = document
    elif command == "diff":
        items = document["changes"]
    elif command == "compile":
        items = [
            {
                "index": index,
                "commit_hash": commit_hash,
                "content_type": content_type,
                **message,
                "generation_config": config,
            }
            for index, (message, commit_hash, content_type, config) in enumerate(
                zip(
                    document["messages"],
                    document["commit_hashes"],
                    document["content_types"],
                    document["generation_configs"],
                    strict=True,
                )
            )
        ]
    else:
        items = [document]
    assert lines == items and len(rows) == len(items)
    assert command == "diff" or items
    assert all(list(row) == list(item) for row, item in zip(rows, items, strict=True))


def test_text_from_the_log_cannot_drive_the_terminal(log_dir: Path) -> None:
    with Tract.open(log_dir) as writer:
        writer.commit(DialogueContent(role="user", text="\x1b[2J\x1b]0;owned\x07 hello"))
    for args in (["log"], ["compile"], ["sql", "SELECT message, content_type FROM commits"], ["events"]):
        out = ok(*args[:1], log_dir, *args[1:])
        assert "\x1b" not in out and "\x07" not in out, args
    assert "\\x1b[2J" in ok("compile", log_dir)


@pytest.mark.parametrize("url", ["postgresql://u@h:abc/db", "postgresql://[::1/db", "postgresql://h:99999/db"])
def test_a_malformed_store_url_is_one_readable_line(url: str) -> None:
    with pytest.raises(tract.StorageError, match="not a valid PostgreSQL URL"):
        tract.Tract.open(url)
    for command in ("verify", "log"):
        fails(command, url, match="not a valid PostgreSQL URL")

"""Every CLI command through a subprocess, with its error paths: one line on stderr, non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from events import LOG_FILE
from tract import DialogueContent, InstructionContent, Tract


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tract.cli", *map(str, args)], capture_output=True, text=True)


def ok(*args: str) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(*args: str, match: str) -> None:
    done = run(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert match in lines[0], lines[0]


@pytest.fixture
def populated(log_dir: Path) -> Path:
    with Tract.open(log_dir) as tract:
        tract.commit(InstructionContent(text="be brief"))
        tract.commit(DialogueContent(role="user", text="hello"), generation_config={"model": "m", "temperature": 0.5})
        tract.commit(DialogueContent(role="assistant", text="hi"))
        tract.record_usage({"prompt_tokens": 20, "completion_tokens": 2})
    return log_dir


def test_demo_writes_a_real_log(tmp_path: Path) -> None:
    out = ok("demo", tmp_path / "demo")
    assert "compiled 2 messages" in out and "for the 2 messages sent: API reported 32 prompt + 19 completion" in out
    assert "ok: " in ok("verify", tmp_path / "demo")


def test_verify(populated: Path) -> None:
    summary, head_line = ok("verify", populated).splitlines()
    assert summary == "ok: 6 records in 1 tract"
    anchor = head_line.removeprefix("chain head ")
    tract_id, position, digest = anchor.rsplit(":", 2)
    assert position == "6" and len(digest) == 64
    ok("verify", populated, "--anchor", anchor)
    fails("verify", populated, "--anchor", f"{tract_id}:6:" + "0" * 64, match=f"anchor mismatch at {tract_id} position 6")
    fails("verify", populated, "--anchor", f"{tract_id}:7:{digest}", match="anchor missing")
    fails("verify", populated, "--anchor", f"other:6:{digest}", match="no record of the tract")
    fails("verify", populated, "--anchor", "nonsense", match="TRACT:POSITION:HASH")
    path = populated / LOG_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fails("verify", populated, match="position")


def test_verify_missing_directory(tmp_path: Path) -> None:
    fails("verify", tmp_path / "nowhere", match="no such log directory")
    (tmp_path / "empty").mkdir()
    fails("verify", tmp_path / "empty", match="no tract log here")


def test_log_and_show(populated: Path) -> None:
    lines = ok("log", populated, "--limit", "2").splitlines()
    assert len(lines) == 2 and "hi" in lines[0] and "hello" in lines[1]
    prefix = lines[1].split()[0]
    shown = json.loads(ok("show", populated, prefix))
    assert shown["content"]["text"] == "hello" and shown["config_history"][0]["source"] == "commit"
    fails("show", populated, "ffffffff", match="no commit")
    fails("log", populated, "--tract", "nope", match="no tract 'nope'")


def test_compile_formats_and_time_travel(populated: Path) -> None:
    text = ok("compile", populated)
    assert "[system] be brief" in text and "API reported 20 prompt + 2 completion tokens" in text
    openai = json.loads(ok("compile", populated, "--format", "openai"))
    assert [m["role"] for m in openai] == ["system", "user", "assistant"]
    anthropic = json.loads(ok("compile", populated, "--format", "anthropic"))
    assert anthropic["system"] == "be brief"
    full = json.loads(ok("compile", populated, "--format", "json"))
    assert full["generation_configs"][1] == {"model": "m", "temperature": 0.5}
    at_four = json.loads(ok("compile", populated, "--at", "4", "--format", "openai"))
    assert [m["content"] for m in at_four] == ["be brief", "hello"]
    assert json.loads(ok("compile", populated, "--at", "2000-01-01T00:00:00+00:00", "--format", "openai")) == []
    fails("compile", populated, "--at", "yesterday", match="--at takes")


def test_events_json_lines(populated: Path) -> None:
    lines = [json.loads(line) for line in ok("events", populated, "--type", "CommitCreated").splitlines()]
    assert [e["type"] for e in lines] == ["CommitCreated"] * 3
    assert lines[1]["event"]["generation_config"] == {"model": "m", "temperature": 0.5}
    ranged = [json.loads(line)["position"] for line in ok("events", populated, "--from", "2", "--to", "3").splitlines()]
    assert ranged == [2, 3]
    fails("events", populated, "--type", "Bogus", match="unknown event type")


def test_sql(populated: Path) -> None:
    assert "(3 rows)" in ok("sql", populated, "SELECT * FROM commits")
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


def test_one_tract_exports_alone_with_its_chain_head(populated: Path, tmp_path: Path) -> None:
    with Tract.open(populated, tract_id="second") as other:
        other.commit(DialogueContent(role="user", text="another conversation"))
    heads = ok("verify", populated).splitlines()[1:]
    assert len(heads) == 2 and heads[1].startswith("chain head second:")
    export = tmp_path / "second.jsonl"
    assert ok("export", populated, export, "--tract", "second").splitlines() == [
        f"exported 2 records to {export}", heads[1]
    ]
    assert ok("import", export, tmp_path / "copy").splitlines()[1:] == [heads[1]]
    assert ok("verify", tmp_path / "copy", "--anchor", heads[1].removeprefix("chain head ")).startswith("ok: 2 records")
    assert "another conversation" in ok("compile", tmp_path / "copy", "--tract", "second")


def test_export_parquet(populated: Path, tmp_path: Path) -> None:
    out = ok("export", populated, "--format", "parquet", tmp_path / "pq")
    assert {Path(line).name for line in out.splitlines()} == {
        "commits.parquet", "config_records.parquet", "usage.parquet", "tool_calls.parquet", "tool_results.parquet",
        "compressions.parquet", "annotations.parquet", "ref_moves.parquet",
    }  # fmt: skip
    assert (tmp_path / "pq" / "commits.parquet").stat().st_size > 0


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


def test_usage_errors_exit_non_zero() -> None:
    done = run("compile")
    assert done.returncode == 2 and "usage" in done.stderr

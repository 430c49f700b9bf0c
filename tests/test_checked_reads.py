"""Reading is checked: a record whose checksums are right but which does not decode, or decodes
to something that is not a record, is a `CorruptLogError` naming its position wherever it is read."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from logcraft import START, append_bytes, encoded, framed, frames, record_hash, replace_record

from events import LOG_FILE, UsageRecorded, verify
from tract import CorruptLogError, DialogueContent, InstructionContent, Tract
from tract.cli import main

HEAD = 8
"""Records in the log `build` writes."""
MIDDLE = 5


def build(directory: Path) -> None:
    with Tract.open(directory) as tract:
        tract.commit(InstructionContent(text="be brief"))
        for i in range(4):
            tract.commit(DialogueContent(role="user", text=f"message {i}"), generation_config={"temperature": i / 4})
        tract.record_usage({"prompt_tokens": 30, "completion_tokens": 3})
    assert verify(directory).last_position == HEAD


def usage(tract_id: str, **changes: Any) -> dict[str, Any]:
    """A UsageRecorded as the log would encode it, with some fields changed."""
    fields = msgspec.to_builtins(
        UsageRecorded(
            tract_id=tract_id,
            created_at=START,
            head_hash="0" * 64,
            prompt_tokens=1,
            completion_tokens=1,
            total_tokens=2,
        ),
        builtin_types=(datetime,),
    )
    return {"type": "UsageRecorded", **fields, **changes}


def _commit_with_extension(directory: Path, position: int, prev: bytes) -> bytes:
    log_frames = frames(directory)
    event = msgspec.msgpack.decode(log_frames[MIDDLE - 1][2][1:])[2]  # a CommitCreated, as plain data
    event["metadata"] = {"blob": msgspec.msgpack.Ext(7, b"\x00")}
    return encoded(position, prev, event)


BadBody = Callable[[Path, int, bytes, str], bytes]
BAD_BODIES: dict[str, BadBody] = {
    "not msgpack": lambda d, p, prev, t: b"\xc1" * 40,
    "not a record": lambda d, p, prev, t: msgspec.msgpack.encode({"position": p, "event": "?"}),
    "unknown event type": lambda d, p, prev, t: encoded(p, prev, {"type": "Nope", "tract_id": t}),
    "wrong field type": lambda d, p, prev, t: encoded(p, prev, usage(t, prompt_tokens="many")),
    "count beyond 63 bits": lambda d, p, prev, t: encoded(p, prev, usage(t, total_tokens=2**64 - 1)),
    "naive timestamp": lambda d, p, prev, t: encoded(p, prev, usage(t, created_at=datetime(2026, 3, 1))),
    "extension value": lambda d, p, prev, t: _commit_with_extension(d, p, prev),
}


def tract_id_of(directory: Path) -> str:
    with Tract.open(directory, readonly=True) as tract:
        return tract.tract_id


def corrupt(directory: Path, where: str, bad: BadBody) -> int:
    """Put a bad record in the middle or at the end of the log; returns its position."""
    tract_id = tract_id_of(directory)
    if where == "end":
        append_bytes(directory, framed(bad(directory, HEAD + 1, record_hash(directory, HEAD), tract_id)))
        return HEAD + 1
    replace_record(directory, MIDDLE, bad(directory, MIDDLE, record_hash(directory, MIDDLE - 1), tract_id))
    return MIDDLE


def assert_names(caught: pytest.ExceptionInfo[CorruptLogError], position: int) -> None:
    assert caught.value.position == position
    assert caught.value.kind == "undecodable record"
    assert f"position {position}" in str(caught.value)


@pytest.mark.parametrize("bad", list(BAD_BODIES))
@pytest.mark.parametrize(
    ("where", "snapshot"), [("middle", False), ("end", False), ("end", True)], ids=["middle", "end", "end+snapshot"]
)
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_open_names_a_record_that_does_not_decode(
    log_dir: Path, bad: str, where: str, snapshot: bool, readonly: bool
) -> None:
    build(log_dir)
    if not snapshot:
        (log_dir / "snapshot.bin").unlink()
    position = corrupt(log_dir, where, BAD_BODIES[bad])
    before = (log_dir / LOG_FILE).read_bytes()
    with pytest.raises(CorruptLogError) as caught:
        Tract.open(log_dir, readonly=readonly)
    assert_names(caught, position)
    assert (log_dir / LOG_FILE).read_bytes() == before, "a corrupt log is never cut back or repaired"
    report = verify(log_dir)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "undecodable record")
    assert report.records_checked == position - 1


def _readers() -> dict[str, Callable[[Tract, Path], Any]]:
    return {
        "events": lambda t, tmp: list(t.events()),
        "replay": lambda t, tmp: t.replay(),
        "compile at a time": lambda t, tmp: t.compile(at_time=datetime.now(timezone.utc)),
        "export jsonl": lambda t, tmp: t.export_jsonl(io.BytesIO()),
        "export parquet": lambda t, tmp: t.export_parquet(tmp / "parquet"),
        "sql (analytics catch-up)": lambda t, tmp: t.sql("SELECT count(*) FROM commits"),
        "query_by_config (analytics catch-up)": lambda t, tmp: t.query_by_config("temperature", ">", 0.1),
    }


@pytest.mark.parametrize("reader", list(_readers()))
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_every_reader_names_a_bad_record_the_snapshot_skipped(
    tmp_path: Path, log_dir: Path, reader: str, readonly: bool
) -> None:
    """A same-length bad record under a matching snapshot: open does not read it, every full read does."""
    build(log_dir)
    offset, end, _ = frames(log_dir)[MIDDLE - 1]
    replace_record(log_dir, MIDDLE, b"\xc1" * (end - offset - 13))
    with Tract.open(log_dir, readonly=readonly) as tract:
        assert tract.compile().commit_count == 5  # from the snapshot
        assert tract.replay(until_position=MIDDLE - 1).compile().commit_count == 2  # before the bad record
        with pytest.raises(CorruptLogError) as caught:
            _readers()[reader](tract, tmp_path)
        assert_names(caught, MIDDLE)
        report = tract.verify()
        assert report.problem is not None
        assert (report.problem.position, report.problem.kind) == (MIDDLE, "undecodable record")


def test_refresh_names_a_bad_record_and_keeps_the_last_whole_batch(log_dir: Path) -> None:
    build(log_dir)
    tract_id = tract_id_of(log_dir)
    with Tract.open(log_dir, readonly=True) as reader:
        before = reader.compile()
        head = reader.chain_head
        good = encoded(HEAD + 1, record_hash(log_dir, HEAD), usage(tract_id, head_hash=reader.head))
        # One batch: a record that decodes, then one that does not.
        append_bytes(log_dir, framed(good, batch_end=False) + framed(b"\xc1" * 20))
        for _ in range(2):  # the same answer every time: nothing half taken in
            with pytest.raises(CorruptLogError) as caught:
                reader.refresh()
            assert_names(caught, HEAD + 2)
            assert reader.chain_head == head
            assert reader.compile() == before
            assert [e.position for e in reader.events()] == list(range(1, HEAD + 1))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([*args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("command", [["log"], ["compile"], ["events"], ["sql", "SELECT 1"], ["verify"]])
def test_cli_names_a_record_that_does_not_decode_in_one_line(
    log_dir: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    build(log_dir)
    (log_dir / "snapshot.bin").unlink()
    corrupt(log_dir, "middle", BAD_BODIES["wrong field type"])
    code, err = cli(capsys, command[0], str(log_dir), *command[1:])
    assert code == 1
    assert len(err.splitlines()) == 1 and f"position {MIDDLE}" in err and "undecodable record" in err, err


def test_cli_export_names_a_bad_record_the_snapshot_skipped(
    tmp_path: Path, log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(log_dir)
    offset, end, _ = frames(log_dir)[MIDDLE - 1]
    replace_record(log_dir, MIDDLE, b"\xc1" * (end - offset - 13))
    for command in (["export", str(log_dir), str(tmp_path / "out.jsonl")], ["events", str(log_dir)]):
        code, err = cli(capsys, *command)
        assert code == 1
        assert len(err.splitlines()) == 1 and f"position {MIDDLE}" in err, err

"""Reading is checked: a record whose checksums are right but which does not decode, or decodes
to something that is not a record, is a `CorruptLogError` naming its position wherever it is read,
whatever the index beside the log says (missing, as saved, or forged with its checksum recomputed)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events import LOG_FILE, UsageRecorded, verify
from events.framing import FRAME_HEADER
from events.tract_index import INDEX_DIR
from tract import CorruptLogError, DialogueContent, InstructionContent, Tract
from tract.cli import main

from logcraft import (
    START,
    RawRecord,
    append_bytes,
    catalogue,
    encoded,
    forge_count,
    forge_index,
    framed,
    frames,
    owner,
    record_hash,
    record_of,
    replace_record,
)

HEAD = 8
"""Records in the tract `build` writes."""
MIDDLE = 5
OTHER = "other"
"""The second tract `build_two` writes, after the first."""


def build(directory: Path) -> str:
    """One tract of 8 records; returns its id."""
    with Tract.open(directory) as tract:
        tract.commit(InstructionContent(text="be brief"))
        for i in range(4):
            tract.commit(DialogueContent(role="user", text=f"message {i}"), generation_config={"temperature": i / 4})
        tract.record_usage({"prompt_tokens": 30, "completion_tokens": 3})
        tract_id = tract.tract_id
    report = verify(directory)
    assert report.ok and report.heads[tract_id].number == HEAD
    return tract_id


def build_two(directory: Path) -> str:
    """The tract `build` writes, then a second one (`OTHER`, 8 records as well) after it."""
    tract_id = build(directory)
    with Tract.open(directory, tract_id=OTHER) as other:
        other.commit(InstructionContent(text="be thorough"))
        for i in range(4):
            config = {"temperature": 0.5 + i / 8}
            other.commit(DialogueContent(role="user", text=f"other {i}"), generation_config=config)
        other.record_usage({"prompt_tokens": 40, "completion_tokens": 4})
    report = verify(directory)
    assert report.ok and report.heads[OTHER].number == HEAD
    return tract_id


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


def _commit_with_extension(directory: Path, tract_id: str, number: int, prev: bytes) -> bytes:
    # a CommitCreated, as plain data
    event = msgspec.msgpack.decode(record_of(directory, tract_id, MIDDLE).record[1:])[2]
    event["metadata"] = {"blob": msgspec.msgpack.Ext(7, b"\x00")}
    return encoded(number, prev, event)


BadBody = Callable[[Path, str, int, bytes], bytes]
"""(directory, tract id, number, previous record's hash) -> the body of a bad record."""
BAD_BODIES: dict[str, BadBody] = {
    "not msgpack": lambda d, t, n, prev: b"\xc1" * 40,
    "not a record": lambda d, t, n, prev: msgspec.msgpack.encode({"position": n, "event": "?"}),
    "unknown event type": lambda d, t, n, prev: encoded(n, prev, {"type": "Nope", "tract_id": t}),
    "wrong field type": lambda d, t, n, prev: encoded(n, prev, usage(t, prompt_tokens="many")),
    "count beyond 63 bits": lambda d, t, n, prev: encoded(n, prev, usage(t, total_tokens=2**64 - 1)),
    "naive timestamp": lambda d, t, n, prev: encoded(n, prev, usage(t, created_at=datetime(2026, 3, 1))),
    "extension value": _commit_with_extension,
}


def corrupt(directory: Path, tract_id: str, where: str, bad: BadBody) -> RawRecord:
    """Put a bad record (chained as the tract's next) at the end of the log, or in place of the
    tract's record MIDDLE; returns where it is."""
    if where == "end":
        size, position = (directory / LOG_FILE).stat().st_size, len(frames(directory)) + 1
        frame = framed(bad(directory, tract_id, HEAD + 1, record_hash(directory, tract_id, HEAD)))
        append_bytes(directory, frame)
        return RawRecord(size, size + len(frame), frame[FRAME_HEADER.size :], position)
    body = bad(directory, tract_id, MIDDLE, record_hash(directory, tract_id, MIDDLE - 1))
    return replace_record(directory, tract_id, MIDDLE, body)


def same_length_garbage(directory: Path, tract_id: str, number: int) -> RawRecord:
    """Replace the tract's record `number` by bytes that do not decode, of the same length (so
    every offset the index holds stays right); returns where it is."""
    raw = record_of(directory, tract_id, number)
    return replace_record(directory, tract_id, number, b"\xc1" * (len(raw.record) - 1))


def assert_names(error: BaseException, tract_id: str, number: int, raw: RawRecord) -> None:
    """The error names the bad record: its tract and number there when it was read as one of the
    tract's records, else (found by a read of the whole log, before its tract is known) its place
    in the log; the byte offset in both."""
    assert isinstance(error, CorruptLogError), repr(error)
    assert error.kind == "undecodable record", error
    message = str(error)
    if f"tract {tract_id!r}" in message:
        assert error.position == number and f"tract {tract_id!r} position {number}," in message, message
    else:
        assert error.position == raw.position and f"(position {raw.position}," in message, message
    assert f"byte offset {raw.offset}" in message, message


def names_in_line(err: str, tract_id: str, number: int, raw: RawRecord) -> bool:
    """Does the CLI's one line name the bad record (as `assert_names` describes, or as verify does)?"""
    as_read = f"tract {tract_id!r} position {number}," in err or f"at {tract_id} position {number} " in err
    as_scanned = f"(position {raw.position}," in err or f"at position {raw.position} " in err
    return (as_read or as_scanned) and (f"byte offset {raw.offset}" in err or f"(byte {raw.offset})" in err)


def assert_verify_names(report: Any, tract_id: str, number: int, raw: RawRecord) -> None:
    problem = report.problem
    assert problem is not None and problem.kind == "undecodable record", report
    assert problem.offset == raw.offset
    assert (problem.tract_id, problem.position) in ((tract_id, number), (None, raw.position)), problem
    assert report.records_checked == raw.position - 1


def tract_as_damaged(directory: Path, tract_id: str, raw: RawRecord) -> list[RawRecord]:
    """The tract's records where the log now holds them, the bad one (`raw`) included."""
    return [r for r in frames(directory) if owner(r) == tract_id or r.offset == raw.offset]


INDEX_STATES: dict[str, Callable[[Path, str, RawRecord], Any]] = {
    "no index": lambda d, t, raw: shutil.rmtree(d / INDEX_DIR),
    "index as saved": lambda d, t, raw: None,  # stale if the bad record's length differs
    "index forged to match": lambda d, t, raw: forge_index(d, t, tract_as_damaged(d, t, raw)),
    "index forged around it": lambda d, t, raw: forge_index(  # the record after it is read in its place
        d, t, [r for r in tract_as_damaged(d, t, raw) if r.offset != raw.offset]
    ),
    "index forged to hide it": lambda d, t, raw: forge_index(
        d, t, [r for r in tract_as_damaged(d, t, raw) if r.offset < raw.offset]
    ),
}
"""What the index beside the damaged log says (forged: checksums recomputed, the covered record right)."""


@pytest.mark.parametrize("bad", list(BAD_BODIES))
@pytest.mark.parametrize(
    ("where", "index"),
    [(w, s) for w in ("middle", "end") for s in INDEX_STATES if (w, s) != ("end", "index forged around it")],
)
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_open_names_a_record_that_does_not_decode(
    log_dir: Path, bad: str, where: str, index: str, readonly: bool
) -> None:
    """Opening a tract reads its records through the index: whatever the index says, the bad record
    is read (or the index is rebuilt from the log, which reads it) and named."""
    tract_id = build(log_dir)
    raw = corrupt(log_dir, tract_id, where, BAD_BODIES[bad])
    number = MIDDLE if where == "middle" else HEAD + 1
    INDEX_STATES[index](log_dir, tract_id, raw)
    before = (log_dir / LOG_FILE).read_bytes()
    with pytest.raises(CorruptLogError) as caught:
        Tract.open(log_dir, readonly=readonly)
    assert_names(caught.value, tract_id, number, raw)
    assert (log_dir / LOG_FILE).read_bytes() == before, "a corrupt log is never cut back or repaired"
    assert_verify_names(verify(log_dir), tract_id, number, raw)


# -- a bad record the index points around ---------------------------------------------------------


Reader = Callable[[Tract, str, Path], Any]
"""(an open tract, the tract whose record is bad, scratch directory) -> what the reader serves."""
WHOLE_LOG_READERS: dict[str, Reader] = {
    "export jsonl": lambda t, bad, tmp: t.export_jsonl(io.BytesIO()),
    "export jsonl of the tract": lambda t, bad, tmp: t.export_jsonl(io.BytesIO(), tract_id=bad),
    "export parquet": lambda t, bad, tmp: t.export_parquet(tmp / "parquet"),
    "sql (analytics catch-up)": lambda t, bad, tmp: t.sql("SELECT count(*) FROM commits"),
    "query_by_config (analytics catch-up)": lambda t, bad, tmp: t.query_by_config("temperature", ">", 0.1),
}
"""Readers whose range is the whole log (or a tract found by reading it all)."""
READERS: dict[str, Reader] = {
    "events of the tract": lambda t, bad, tmp: list(t.events(tract_id=bad)),
    **WHOLE_LOG_READERS,
}


def answers(t: Tract) -> dict[str, Any]:
    """What the readers of the tract `t` serve from its own records: now, replayed and at a time."""
    with t.replay(until_position=MIDDLE) as then:
        replayed = (then.compile(), then.log(limit=None), list(then.events()))
    return {
        "compile": t.compile(),
        "log": t.log(limit=None),
        "events": list(t.events()),
        "replayed": replayed,
        "at a time": t.compile(at_time=datetime.now(timezone.utc)),
        "chain head": t.chain_head,
    }


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_every_reader_names_a_bad_record_the_index_points_around(
    tmp_path: Path, log_dir: Path, reader: str, readonly: bool
) -> None:
    """A same-length bad record in tract OTHER, under an index that matches the log: opening the
    first tract reads its own records only (the index points around OTHER's) and answers exactly as
    before the damage (its events, replays and compiles at a time read none of OTHER's records);
    every reader whose range holds the bad record names it, and so does opening OTHER."""
    tract_id = build_two(log_dir)
    with Tract.open(log_dir, readonly=True) as t:
        expected = answers(t)
    raw = same_length_garbage(log_dir, OTHER, MIDDLE)
    with Tract.open(log_dir, readonly=readonly) as tract:
        assert answers(tract) == expected
        with pytest.raises(CorruptLogError) as caught:
            READERS[reader](tract, OTHER, tmp_path)
        assert_names(caught.value, OTHER, MIDDLE, raw)
        assert_verify_names(tract.verify(), OTHER, MIDDLE, raw)
        assert answers(tract) == expected
    with pytest.raises(CorruptLogError) as caught:
        Tract.open(log_dir, tract_id=OTHER, readonly=readonly)
    assert_names(caught.value, OTHER, MIDDLE, raw)
    with Tract.open(log_dir, tract_id=tract_id, readonly=readonly) as again:
        assert answers(again) == expected


@pytest.mark.parametrize("reader", list(WHOLE_LOG_READERS))
def test_a_forged_index_hides_at_most_a_tracts_newest_records(tmp_path: Path, log_dir: Path, reader: str) -> None:
    """A catalogue forged (checksum recomputed, its counts adding up, the tract of the covered record
    counted right) to say the first tract ends before its bad record: the tract then reads as its
    first records, exactly as the log holds them (as a replay to that point showed them), nothing
    else; every reader of the whole log names the bad record, and so does verify. (Without the bad
    record, the chain head an auditor wrote down is what tells that records are hidden: the tract's
    head is older than it.)"""
    tract_id = build_two(log_dir)
    with Tract.open(log_dir, tract_id="third") as third:  # the log's last record is of a third tract
        third.commit(InstructionContent(text="third"))
    with Tract.open(log_dir, readonly=True) as t:
        auditor = t.chain_head
        with t.replay(until_position=MIDDLE - 1) as then:
            expected = {"compile": then.compile(), "log": then.log(limit=None), "events": list(then.events())}
            expected["chain head"] = then.chain_head
    raw = same_length_garbage(log_dir, tract_id, MIDDLE)
    hidden = HEAD - (MIDDLE - 1)
    forge_count(log_dir, tract_id, MIDDLE - 1)
    forge_count(log_dir, OTHER, HEAD + hidden)  # the counts still add up to the records the index covers
    counts = dict(catalogue(log_dir)[1])
    assert (counts[tract_id], counts[OTHER]) == (MIDDLE - 1, HEAD + hidden) and sum(counts.values()) == 2 * HEAD + 3
    with Tract.open(log_dir, readonly=True) as tract:
        served = {"compile": tract.compile(), "log": tract.log(limit=None), "events": list(tract.events())}
        served["chain head"] = tract.chain_head
        assert served == expected and served["chain head"].position < auditor.position
        with pytest.raises(CorruptLogError) as caught:
            WHOLE_LOG_READERS[reader](tract, tract_id, tmp_path)
        assert_names(caught.value, tract_id, MIDDLE, raw)
        assert_verify_names(tract.verify(anchor=auditor), tract_id, MIDDLE, raw)


@pytest.mark.parametrize("kind", ["broken chain", "position mismatch"])
def test_damage_in_one_tract_is_named_with_that_tract_and_its_number(log_dir: Path, kind: str) -> None:
    """A record of OTHER that decodes but does not continue its tract's chain (names another
    previous record, or another number): verify names OTHER and the record's number there, opening
    OTHER names the record, and the first tract's chain is reported whole up to the damage."""
    tract_id = build_two(log_dir)
    heads = verify(log_dir).heads
    prev, number = record_hash(log_dir, OTHER, HEAD), HEAD + 1
    if kind == "broken chain":
        prev = record_hash(log_dir, OTHER, HEAD - 1)
    else:
        number = HEAD + 5
    frame = framed(encoded(number, prev, usage(OTHER, head_hash="0" * 64)))
    offset = (log_dir / LOG_FILE).stat().st_size
    append_bytes(log_dir, frame)
    report = verify(log_dir)
    assert report.problem is not None
    assert (report.problem.tract_id, report.problem.position, report.problem.kind) == (OTHER, HEAD + 1, kind)
    assert report.problem.offset == offset and f"at {OTHER} position {HEAD + 1} (byte {offset})" in str(report.problem)
    assert report.heads == heads
    with pytest.raises(CorruptLogError) as caught:
        Tract.open(log_dir, tract_id=OTHER, readonly=True)
    assert caught.value.kind == kind and f"byte offset {offset}" in str(caught.value)
    if kind == "broken chain":  # read as OTHER's record 9 (a number that does not fit cannot be indexed)
        assert caught.value.position == HEAD + 1 and f"tract {OTHER!r} position {HEAD + 1}," in str(caught.value)
        with Tract.open(log_dir, tract_id=tract_id, readonly=True) as first:
            assert first.chain_head.position == HEAD and first.verify(anchor=first.chain_head).problem == report.problem


def test_refresh_names_a_bad_record_and_keeps_the_last_whole_batch(log_dir: Path) -> None:
    tract_id = build(log_dir)
    with Tract.open(log_dir, readonly=True) as reader:
        before = reader.compile()
        head = reader.chain_head
        good = encoded(HEAD + 1, record_hash(log_dir, tract_id, HEAD), usage(tract_id, head_hash=reader.head))
        first, bad = framed(good, batch_end=False), framed(b"\xc1" * 20)
        offset = (log_dir / LOG_FILE).stat().st_size + len(first)
        append_bytes(log_dir, first + bad)  # one batch: a record that decodes, then one that does not
        raw = RawRecord(offset, offset + len(bad), bad[FRAME_HEADER.size :], HEAD + 2)
        for _ in range(2):  # the same answer every time: nothing half taken in
            with pytest.raises(CorruptLogError) as caught:
                reader.refresh()
            assert_names(caught.value, tract_id, HEAD + 2, raw)
            assert reader.chain_head == head
            assert reader.compile() == before
            assert [e.position for e in reader.events()] == list(range(1, HEAD + 1))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([*args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("index", ["no index", "index as saved"])
@pytest.mark.parametrize("command", [["log"], ["compile"], ["events"], ["sql", "SELECT 1"], ["verify"]])
def test_cli_names_a_record_that_does_not_decode_in_one_line(
    log_dir: Path, capsys: pytest.CaptureFixture[str], command: list[str], index: str
) -> None:
    tract_id = build(log_dir)
    raw = corrupt(log_dir, tract_id, "middle", BAD_BODIES["wrong field type"])
    INDEX_STATES[index](log_dir, tract_id, raw)
    code, err = cli(capsys, command[0], str(log_dir), *command[1:])
    assert code == 1
    assert len(err.splitlines()) == 1 and names_in_line(err, tract_id, MIDDLE, raw) and "undecodable record" in err, err


def test_cli_names_a_bad_record_the_index_points_around(
    tmp_path: Path, log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first tract reads whole; every command whose range holds OTHER's bad record names it."""
    build_two(log_dir)
    raw = same_length_garbage(log_dir, OTHER, MIDDLE)
    for command in (["log"], ["compile"], ["events"]):
        code, err = cli(capsys, command[0], str(log_dir))
        assert (code, err) == (0, ""), err
    for command in (
        ["export", str(log_dir), str(tmp_path / "out.jsonl")],
        ["events", str(log_dir), "--tract", OTHER],
        ["log", str(log_dir), "--tract", OTHER],
        ["compile", str(log_dir), "--tract", OTHER],
        ["sql", str(log_dir), "SELECT 1"],
        ["verify", str(log_dir)],
    ):
        code, err = cli(capsys, *command)
        assert code == 1
        assert len(err.splitlines()) == 1 and names_in_line(err, OTHER, MIDDLE, raw), err

"""Auditing: verify finds every kind of damage at the right position; replay and export are exact."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import LOG_FILE, EventLog, TractHead, verify
from events.framing import FRAME_HEADER, seal_frame
from events.jsonl import import_jsonl
from tract import ChainHead, DialogueContent, Priority, ReadOnlyError, Tract

from properties import examples


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def build_log(directory: Path, commits: int = 6) -> list[str]:
    with Tract.open(directory) as tract:
        hashes = [tract.commit(user(f"message {i}"), generation_config={"i": i}).commit_hash for i in range(commits)]
    return hashes


def frame(record: bytes) -> bytes:
    """A record framed exactly as the log frames it (how a forger would re-checksum it)."""
    out = bytearray(FRAME_HEADER.size) + record
    seal_frame(out, 0)
    return bytes(out)


def spans(directory: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every record, position 1 first."""
    log = EventLog.open(directory, readonly=True)
    try:
        return [(f.offset, f.end) for f in log.frames()]
    finally:
        log.close()


def damage(directory: Path, edit) -> None:
    path = directory / LOG_FILE
    path.write_bytes(bytes(edit(bytearray(path.read_bytes()))))


def test_clean_log_verifies(log_dir: Path) -> None:
    build_log(log_dir)
    report = verify(log_dir)
    start, end = spans(log_dir)[-1]
    last_record = (log_dir / LOG_FILE).read_bytes()[start + FRAME_HEADER.size : end]
    digest = hashlib.sha256(last_record[1:]).hexdigest()  # the record's body, without its flags byte
    with Tract.open(log_dir, readonly=True) as tract:
        assert report.ok and report.records_checked == 7 and report.format == 2
        assert report.heads == {tract.tract_id: TractHead(7, digest)}
        assert tract.verify() == report
        assert tract.chain_head == ChainHead(tract_id=tract.tract_id, position=7, hash=digest)


def test_flipped_byte_in_a_middle_record(log_dir: Path) -> None:
    build_log(log_dir)
    start, end = spans(log_dir)[3]  # position 4

    def flip(data: bytearray) -> bytearray:
        data[(start + end) // 2] ^= 0x20
        return data

    damage(log_dir, flip)
    report = verify(log_dir)
    assert not report.ok and report.problem is not None
    assert (report.problem.position, report.problem.kind) == (4, "bad checksum")
    assert report.records_checked == 3


def test_altered_record_with_recomputed_checksum_breaks_the_hashes(log_dir: Path) -> None:
    build_log(log_dir)
    start, end = spans(log_dir)[2]  # position 3, a commit

    def forge(data: bytearray) -> bytearray:
        record = bytes(data[start + 12 : end]).replace(b"message 1", b"massage 1")
        return data[:start] + frame(record) + data[end:]

    damage(log_dir, forge)
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (3, "hash mismatch")


def test_altered_unhashed_field_is_caught_by_the_chain(log_dir: Path) -> None:
    build_log(log_dir)
    start, end = spans(log_dir)[2]

    def forge(data: bytearray) -> bytearray:
        record = bytes(data[start + 12 : end])
        assert b'{"i"' not in record  # msgpack, so forge the config value in place
        index = record.rindex(b"\xa1i") + 2
        forged = record[:index] + bytes([record[index] ^ 0x01]) + record[index + 1 :]
        return data[:start] + frame(forged) + data[end:]

    damage(log_dir, forge)
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (4, "broken chain")


def test_deleted_record(log_dir: Path) -> None:
    build_log(log_dir)
    start, end = spans(log_dir)[2]
    damage(log_dir, lambda data: data[:start] + data[end:])
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (3, "position mismatch")


def test_swapped_records(log_dir: Path) -> None:
    build_log(log_dir)
    (a_start, a_end), (b_start, b_end) = spans(log_dir)[3:5]
    damage(log_dir, lambda d: d[:a_start] + d[b_start:b_end] + d[a_start:a_end] + d[b_end:])
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (4, "position mismatch")


def test_inserted_record(log_dir: Path) -> None:
    build_log(log_dir)
    start, end = spans(log_dir)[2]
    damage(log_dir, lambda d: d[:end] + d[start:end] + d[end:])
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (4, "position mismatch")


def test_truncated_mid_record_is_a_torn_tail_not_tampering(log_dir: Path) -> None:
    build_log(log_dir)
    _, end = spans(log_dir)[-1]
    damage(log_dir, lambda d: d[: end - 7])
    report = verify(log_dir)
    assert report.problem is not None and (report.problem.position, report.problem.kind) == (7, "torn tail")
    assert report.records_checked == 6


@pytest.mark.parametrize("garbage", [b"\x01\x02\x03", b"garbage appended by someone" * 3])
def test_appended_garbage(log_dir: Path, garbage: bytes) -> None:
    build_log(log_dir)
    damage(log_dir, lambda d: d + garbage)
    report = verify(log_dir)
    assert report.problem is not None and report.problem.position == 8
    assert report.problem.kind == ("torn tail" if len(garbage) < 12 else "bad header")


def test_anchor_proves_the_log_only_grew(log_dir: Path) -> None:
    build_log(log_dir, 3)
    with Tract.open(log_dir, readonly=True) as tract:
        anchor = tract.chain_head
    with Tract.open(log_dir) as tract:
        tract.commit(user("later"))
    with Tract.open(log_dir, readonly=True) as tract:
        assert tract.verify(anchor=anchor).ok
        assert tract.verify(anchor=(anchor.position, "0" * 64)).problem.kind == "anchor mismatch"  # type: ignore[union-attr]
        assert tract.verify(anchor=(99, anchor.hash)).problem.kind == "anchor missing"  # type: ignore[union-attr]


def test_replay_equals_what_compile_returned_live(log_dir: Path) -> None:
    seen: list[tuple[int, datetime, object]] = []
    with Tract.open(log_dir) as tract:
        first = tract.commit(user("first"), generation_config={"temperature": 0.2})
        seen.append((tract.chain_head.position, datetime.now(timezone.utc), tract.compile()))
        # Then the first commit is given another config: the past must not see it.
        tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"temperature": 0.05})
        tract.commit(user("second"))
        tract.annotate(first.commit_hash, Priority.SKIP)
        seen.append((tract.chain_head.position, datetime.now(timezone.utc), tract.compile()))
        tract.record_usage({"prompt_tokens": 9, "completion_tokens": 2}, generation_config={"temperature": 0.9})
        seen.append((tract.chain_head.position, datetime.now(timezone.utc), tract.compile()))
        tract.commit(user("edit"), operation="edit", response_to=tract.head)
        seen.append((tract.chain_head.position, datetime.now(timezone.utc), tract.compile()))
    with Tract.open(log_dir, readonly=True) as auditor:
        for position, moment, compiled in seen:
            assert auditor.replay(until_position=position).compile() == compiled
            assert auditor.replay(until_time=moment).compile() == compiled
        past = auditor.replay(until_position=seen[0][0])
        assert [c.content["text"] for c in past.log()] == ["first"]
        assert [c.commit_hash for c in past.query_by_config("temperature", ">", 0.1)] == [first.commit_hash]
        assert past.sql("SELECT count(*), any_value(temperature) FROM commits").rows == [(1, 0.2)]
        assert past.sql("SELECT count(*) FROM usage").rows == [(0,)]
        assert len(past.config_history(first.commit_hash)) == 1
        assert first.commit_hash not in [c.commit_hash for c in auditor.query_by_config("temperature", ">", 0.1)]
        assert auditor.replay(until_position=0).compile().messages == []
        with pytest.raises(ReadOnlyError):
            past.commit(user("no"))


@examples(25)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("commit"), st.text(max_size=20), st.none() | st.floats(0, 1)),
            st.tuples(st.just("skip"), st.integers(0, 50), st.none()),
            st.tuples(st.just("edit"), st.integers(0, 50), st.text(max_size=10)),
            st.tuples(st.just("usage"), st.integers(0, 500), st.none() | st.floats(0, 1)),
        ),
        max_size=25,
    )
)
def test_replay_at_every_point_equals_the_live_compile(operations: list[tuple]) -> None:
    with Tract.open() as tract:
        recorded = []
        originals: list[str] = []
        for kind, a, b in operations:
            if kind == "commit":
                config = None if b is None else {"temperature": b}
                originals.append(tract.commit(user(a), generation_config=config).commit_hash)
            elif kind == "skip" and originals:
                tract.annotate(originals[a % len(originals)], Priority.SKIP)
            elif kind == "edit" and originals:
                tract.commit(user(b), operation="edit", response_to=originals[a % len(originals)])
            elif kind == "usage" and tract.head:
                config = None if b is None else {"temperature": b}
                tract.record_usage({"prompt_tokens": a, "completion_tokens": 1}, generation_config=config)
            recorded.append((tract.chain_head.position, tract.compile()))
        for position, compiled in recorded:
            replayed = tract.replay(until_position=position).compile()
            assert replayed == compiled
            assert replayed.generation_configs == compiled.generation_configs


def test_events_iterator_filters(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        first_id = tract.tract_id
        tract.commit(user("a"))
        tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1})
    with Tract.open(log_dir, tract_id="other") as other:
        other.commit(user("b"))
        everything = list(other.events())
        assert {e.event.tract_id for e in everything} == {"other"}  # this tract's events, numbered in it
        assert [e.position for e in everything] == list(range(1, len(everything) + 1))
        assert [e.event.content["text"] for e in other.events(types="CommitCreated")] == ["b"]
        theirs = list(other.events(tract_id=first_id))
        assert {e.event.tract_id for e in theirs} == {first_id}
        assert [e.position for e in theirs] == list(range(1, len(theirs) + 1))
        assert [e.type for e in theirs][-2:] == ["CommitCreated", "UsageRecorded"]
        assert [e.event.content["text"] for e in other.events(tract_id=first_id, types="CommitCreated")] == ["a"]
        assert [e.position for e in other.events(from_position=2, to_position=3)] == [2, 3][: len(everything) - 1]
        assert [e.position for e in other.events(tract_id=first_id, from_position=2, to_position=3)] == [2, 3]
        assert list(other.events(tract_id="nobody")) == []
        with pytest.raises(ValueError, match="unknown event type"):
            list(other.events(types="Nope"))


def test_export_import_gives_the_identical_chain_head(tmp_path: Path) -> None:
    source = tmp_path / "source"
    with Tract.open(source) as tract:
        with tract.batch():
            tract.commit(user("batched 1"), metadata={"f": 1.5, "n": [None, True, "\u2603"]})
            tract.commit(user("batched 2"), generation_config={"temperature": 1e-9})
        tract.annotate(tract.head or "", Priority.PINNED)
        tract.record_usage({"input_tokens": 5, "output_tokens": 1}, generation_config={"model": "m"})
        buffer = io.BytesIO()
        count = tract.export_jsonl(buffer)
        head = tract.chain_head
    assert count == head.position
    imported = import_jsonl(buffer.getvalue().splitlines(), tmp_path / "copy")
    assert imported == {head.tract_id: TractHead(head.position, head.hash)}
    assert (tmp_path / "copy" / LOG_FILE).read_bytes() == (source / LOG_FILE).read_bytes()
    with pytest.raises(Exception, match="already holds a log"):
        import_jsonl(buffer.getvalue().splitlines(), tmp_path / "copy")


def interleaved(directory: Path, rounds: int = 3) -> dict[str, ChainHead]:
    """Tracts "a" and "b" written turn about (b's records sit between a's); returns their chain heads."""
    heads = {}
    for i in range(rounds):
        for tract_id in ("a", "b"):
            with Tract.open(directory, tract_id=tract_id) as tract:
                first = tract.commit(user(f"{tract_id} {i}"), generation_config={"i": i})
                tract.annotate(first.commit_hash, Priority.PINNED)
                if i == rounds - 1:
                    tract.record_usage({"prompt_tokens": i, "completion_tokens": 1})
                heads[tract_id] = tract.chain_head
    return heads


def test_a_log_with_two_tracts_verifies_and_reports_both_heads(log_dir: Path) -> None:
    heads = interleaved(log_dir)
    report = verify(log_dir)
    assert report.ok, report
    assert report.heads == {tract_id: TractHead(head.position, head.hash) for tract_id, head in heads.items()}
    assert list(report.heads) == ["a", "b"]  # in the order the tracts were created
    assert report.records_checked == heads["a"].position + heads["b"].position
    with Tract.open(log_dir, tract_id="b", readonly=True) as b:
        assert b.verify() == report
        assert b.verify(anchor=heads["a"]).ok and b.verify(anchor=heads["b"]).ok
        assert b.verify(anchor=(heads["b"].position, heads["b"].hash)).ok  # (position, hash): this tract's
        crossed = b.verify(anchor=(heads["a"].position, heads["a"].hash)).problem  # a's head is not b's record
        assert crossed is not None and crossed.tract_id == "b" and crossed.kind in ("anchor mismatch", "anchor missing")
        later = ChainHead(tract_id="a", position=heads["a"].position + 1, hash=heads["a"].hash)
        missing = b.verify(anchor=later).problem
        assert missing is not None and (missing.tract_id, missing.kind) == ("a", "anchor missing")


def test_a_record_altered_in_one_tract_is_named_by_its_number_in_that_tract(log_dir: Path) -> None:
    interleaved(log_dir)
    with Tract.open(log_dir, tract_id="b", readonly=True) as b:
        [altered] = [e.position for e in b.events(types="CommitCreated") if e.event.content["text"] == "b 1"]
    data = (log_dir / LOG_FILE).read_bytes()
    [(start, end)] = [(s, e) for s, e in spans(log_dir) if b"b 1" in data[s:e]]

    def forge(data: bytearray) -> bytearray:
        record = bytes(data[start + FRAME_HEADER.size : end])
        index = record.rindex(b"\xa1i") + 2  # the config {"i": 1}: not hashed into the commit
        forged = record[:index] + bytes([record[index] ^ 0x02]) + record[index + 1 :]
        return data[:start] + frame(forged) + data[end:]

    damage(log_dir, forge)
    report = verify(log_dir)
    assert report.problem is not None
    assert (report.problem.tract_id, report.problem.position, report.problem.kind) == ("b", altered + 1, "broken chain")
    with Tract.open(log_dir, tract_id="a", readonly=True) as a:  # the other tract's chain is whole
        assert a.compile().commit_count == 3


def test_one_tract_exported_alone_imports_with_the_same_chain_head(tmp_path: Path) -> None:
    source = tmp_path / "source"
    heads = interleaved(source)
    exports: dict[str, bytes] = {}
    with Tract.open(source, tract_id="a", readonly=True) as a:
        for tract_id in ("a", "b"):  # this tract, and another, named by id
            buffer = io.BytesIO()
            assert a.export_jsonl(buffer, tract_id=tract_id) == heads[tract_id].position
            exports[tract_id] = buffer.getvalue()
            with Tract.open(source, tract_id=tract_id, readonly=True) as original:
                expected = (original.compile(), original.log(limit=None))
            copy = tmp_path / f"copy-{tract_id}"
            imported = import_jsonl(exports[tract_id].splitlines(), copy)
            head = TractHead(heads[tract_id].position, heads[tract_id].hash)
            assert imported == {tract_id: head}
            report = verify(copy)
            assert report.ok and report.heads == {tract_id: head}
            with Tract.open(copy, readonly=True) as alone:
                assert alone.tract_id == tract_id and alone.chain_head == heads[tract_id]
                assert (alone.compile(), alone.log(limit=None)) == expected
                assert alone.verify(anchor=heads[tract_id]).ok
    # Each tract is its own chain: the two exports one after the other make a log with both heads.
    both = import_jsonl([*exports["a"].splitlines(), *exports["b"].splitlines()], tmp_path / "both")
    assert both == {tract_id: TractHead(head.position, head.hash) for tract_id, head in heads.items()}
    assert verify(tmp_path / "both").heads == both


def test_readonly_reader_during_writes_from_another_process(log_dir: Path) -> None:
    writer_script = f"""
from tract import Tract, DialogueContent
with Tract.open({str(log_dir)!r}) as t:
    print("ready", flush=True)
    for i in range(300):
        with t.batch():
            t.commit(DialogueContent(role="user", text=f"q{{i}}"))
            t.commit(DialogueContent(role="assistant", text=f"a{{i}}"))
"""
    writer = subprocess.Popen([sys.executable, "-c", writer_script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    seen_counts = []
    with Tract.open(log_dir, readonly=True) as reader:
        while writer.poll() is None:
            reader.refresh()
            compiled = reader.compile()
            # Batches are atomic: a reader never sees a question without its answer.
            assert compiled.commit_count % 2 == 0
            assert [m.role for m in compiled.messages] == ["user", "assistant"] * (compiled.commit_count // 2)
            seen_counts.append(compiled.commit_count)
            time.sleep(0.005)
        assert writer.wait() == 0
        reader.refresh()
        assert reader.compile().commit_count == 600
        assert reader.verify().ok
    assert len(set(seen_counts)) > 1, "the reader should have watched the log grow"

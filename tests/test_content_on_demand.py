"""Content stays in the log: an opened tract reads a commit's payload, config and metadata when they
are first needed, and what it serves is exactly what the log holds.

The commit view keeps hashes, parents and positions; everything else is read back by the record's
number, checked (checksum, tract, number) and found to hash to what was read at open. So a record
damaged after the tract was opened, by accident or rewritten with its checksums recomputed, is a
`CorruptLogError` naming the tract and the record's number when its content is needed, never a
wrong answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from events import LOG_FILE, EventLog
from events.framing import seal_frame
from events.records import decode_owner
from tract import CorruptLogError, DialogueContent, Priority, Tract


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def _record_span(log_dir: Path, tract_id: str, number: int) -> tuple[int, int]:
    """(offset, end) in the log file of the tract's record `number` (found by scanning the log)."""
    log = EventLog.open(log_dir, readonly=True)
    try:
        for frame in log.frames():
            if decode_owner(frame.body, frame.position, frame.offset) == (tract_id, number):
                return frame.offset, frame.end
    finally:
        log.close()
    raise AssertionError(f"no record {number} of tract {tract_id}")


def _write_tracts(log_dir: Path) -> dict[str, str]:
    """Two tracts in one log, their records interleaved; returns commit hashes by text."""
    hashes: dict[str, str] = {}
    for round_ in range(3):
        for tract_id in ("aaaa", "bbbb"):
            with Tract.open(log_dir, tract_id=tract_id) as t:
                for i in range(3):
                    text = f"{tract_id} turn {round_}.{i}"
                    hashes[text] = t.commit(user(text), generation_config={"seed": i}).commit_hash
    return hashes


def _position(log_dir: Path, tract_id: str, commit_hash: str) -> int:
    with Tract.open(log_dir, tract_id=tract_id, readonly=True) as t:
        info = t.get_commit(commit_hash)
        assert info is not None
        return info.position


@pytest.mark.parametrize("readonly", [True, False])
def test_a_record_damaged_after_open_is_named_when_its_content_is_first_needed(log_dir: Path, readonly: bool) -> None:
    hashes = _write_tracts(log_dir)
    target = hashes["bbbb turn 1.1"]
    number = _position(log_dir, "bbbb", target)
    with Tract.open(log_dir, tract_id="bbbb", readonly=readonly) as t:
        # Opened: no content read yet. Now a byte of the commit's text flips in the log.
        path = log_dir / LOG_FILE
        data = bytearray(path.read_bytes())
        data[data.find(b"bbbb turn 1.1") + 5] ^= 0x01
        path.write_bytes(bytes(data))
        # History, refs and hashes need no content.
        assert t.list_branches()[0].commit_count == 9 and t.resolve(target[:8]) == target
        assert [entry.new_head for entry in t.reflog()][-1] == t.head
        readers = (lambda: t.get_commit(target), t.compile, lambda: t.log(limit=None), lambda: t.config_history(target))
        for read in readers:
            with pytest.raises(CorruptLogError) as caught:
                read()
            assert (caught.value.tract_id, caught.value.position, caught.value.kind) == ("bbbb", number, "bad checksum")
            assert f"tract 'bbbb' position {number}" in str(caught.value)
        # Commits whose records are whole are still served.
        first = t.get_commit(hashes["bbbb turn 0.0"])
        assert first is not None and first.content["text"] == "bbbb turn 0.0"


def test_a_record_rewritten_after_open_with_its_checksums_recomputed_is_named(log_dir: Path) -> None:
    """Checksums catch accidents; the record hash remembered at open catches a consistent rewrite."""
    hashes = _write_tracts(log_dir)
    target = hashes["aaaa turn 2.0"]
    number = _position(log_dir, "aaaa", target)
    with Tract.open(log_dir, tract_id="aaaa", readonly=True) as t:
        offset, end = _record_span(log_dir, "aaaa", number)
        path = log_dir / LOG_FILE
        data = bytearray(path.read_bytes())
        frame = bytearray(data[offset:end])
        at = frame.find(b"aaaa turn 2.0")
        frame[at : at + 13] = b"aaaa TURN 2.0"  # same length: the record still decodes, and chains as before
        seal_frame(frame, 0)
        data[offset:end] = frame
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptLogError) as caught:
            t.get_commit(target)
        assert (caught.value.tract_id, caught.value.position, caught.value.kind) == ("aaaa", number, "hash mismatch")
        assert f"tract 'aaaa' position {number}" in str(caught.value)
        with pytest.raises(CorruptLogError):
            t.compile()
        earlier = t.compile(at_commit=hashes["aaaa turn 1.2"])  # a history without it is served
        assert [m.content for m in earlier.messages][-1] == "aaaa turn 1.2" and len(earlier.messages) == 6
    # A fresh open reads the rewritten record whole and finds its chain broken at the next record.
    report = EventLog.open(log_dir, readonly=True).verify()
    assert not report.ok


def test_content_read_back_is_what_was_served_before_close_whatever_the_cache_holds(log_dir: Path) -> None:
    """More commits than the cache of decoded content holds (4,096): a cold compile, the whole log,
    a config, an edit and a SKIP annotation all read back exactly what was committed."""
    texts = [f"message {i}" for i in range(4_300)]
    with Tract.open(log_dir, sync="batch") as t:
        with t.batch():
            hashes = [
                t.commit(user(text), generation_config={"n": i} if i % 3 == 0 else None).commit_hash
                for i, text in enumerate(texts)
            ]
        t.commit(user("an edit of message 7"), operation="edit", response_to=hashes[7])
        t.annotate(hashes[11], Priority.SKIP)
        compiled, logged = t.compile(), t.log(limit=None)
        config = t.get_commit(hashes[9])
    with Tract.open(log_dir, readonly=True) as again:
        assert again.compile() == compiled
        assert again.log(limit=None) == logged
        assert again.get_commit(hashes[9]) == config and config is not None
        assert config.generation_config == {"n": 9}
        assert [m.content for m in compiled.messages[:8]][-1] == "an edit of message 7"
        assert "message 11" not in [m.content for m in compiled.messages]
        again_compiled = again.compile()
        assert again_compiled == compiled  # the second compile comes from the compile cache
    with Tract.open(log_dir) as writer:
        assert writer.compile() == compiled
        writer.annotate(hashes[11], Priority.NORMAL)
        after = writer.compile()  # the SKIP lifted: a recompile, reusing the messages it rendered
    assert [m.content for m in after.messages].count("message 11") == 1
    assert len(after.messages) == len(compiled.messages) + 1
    with Tract.open(log_dir, readonly=True) as reader:
        assert reader.compile() == after  # a cold compile reads and renders every message


def test_what_a_caller_changes_in_a_commit_it_was_given_changes_nothing_served(log_dir: Path) -> None:
    """get_commit, log and query_by_config hand out commits whose payload, config and metadata are the
    caller's own: editing them in place changes nothing another call serves."""
    with Tract.open(log_dir) as t:
        first = t.commit(user("keep me"), generation_config={"temperature": 0.7}, metadata={"tag": "a"})
        t.commit(user("and me"), generation_config={"temperature": 0.9})
        before = t.compile().to_openai()
        handed_out = [t.get_commit(first.commit_hash), *t.log(), *t.query_by_config("temperature", ">", 0.5)]
        for info in handed_out:
            assert info is not None
            info.content["text"] = "changed"
            if info.generation_config is not None:
                info.generation_config["temperature"] = 0.0
            if info.metadata is not None:
                info.metadata["tag"] = "changed"
        assert t.compile().to_openai() == before
        again = t.get_commit(first.commit_hash)
        assert again is not None
        assert (again.content["text"], again.generation_config, again.metadata) == (
            "keep me",
            {"temperature": 0.7},
            {"tag": "a"},
        )
        assert [info.content["text"] for info in t.query_by_config("temperature", ">", 0.5)] == ["keep me", "and me"]

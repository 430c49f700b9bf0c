"""The SDK through its public API: commit, compile, annotate, usage, batch, reopen."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from pydantic import BaseModel

from events import LOG_FILE
from tract import (
    ArtifactContent,
    BudgetAction,
    BudgetExceededError,
    CommitNotFoundError,
    CommitOperation,
    ContentValidationError,
    CorruptLogError,
    DialogueContent,
    EditTargetError,
    FreeformContent,
    InstructionContent,
    InvalidArgumentError,
    InvalidJSONError,
    LogLockedError,
    NullTokenCounter,
    OutputContent,
    Priority,
    ReadOnlyError,
    ReasoningContent,
    StorageError,
    TiktokenCounter,
    TokenBudgetConfig,
    TokenUsage,
    ToolIOContent,
    Tract,
    TractClosedError,
    TractConfig,
    TractError,
    UsageError,
)


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def assistant(text: str) -> DialogueContent:
    return DialogueContent(role="assistant", text=text)


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- commits and hashes ---------------------------------------------------------


def test_commit_returns_info_with_design_hashes(tract: Tract) -> None:
    info = tract.commit(user("hello"), message="greeting", metadata={"turn": 1})
    payload = {"content_type": "dialogue", "role": "user", "text": "hello", "name": None}
    assert info.content == payload
    assert info.content_hash == hashlib.sha256(canonical(payload)).hexdigest()
    identity = {
        "content_hash": info.content_hash,
        "parent_hash": None,
        "content_type": "dialogue",
        "operation": "append",
        "timestamp": info.created_at.isoformat(),
        "response_to": None,
    }
    assert info.commit_hash == hashlib.sha256(canonical(identity)).hexdigest()
    assert info.parent_hash is None and info.tract_id == tract.tract_id
    assert info.message == "greeting" and info.metadata == {"turn": 1}
    assert info.operation is CommitOperation.APPEND
    assert info.token_count == TiktokenCounter().count_text("hello")
    assert tract.head == info.commit_hash
    second = tract.commit(assistant("hi"))
    assert second.parent_hash == info.commit_hash


def test_every_builtin_content_type_compiles_with_its_role(tract: Tract) -> None:
    tract.commit(InstructionContent(text="be brief"))
    tract.commit(DialogueContent(role="user", text="q", name="ann"))
    tract.commit(ToolIOContent(tool_name="search", direction="call", payload={"q": "x"}))
    tract.commit(ReasoningContent(text="thinking"))
    tract.commit(ArtifactContent(artifact_type="code", content="print(1)", language="python"))
    tract.commit(OutputContent(text="# done", format="markdown"))
    tract.commit(FreeformContent(payload={"k": [1, 2]}))
    messages = tract.compile().messages
    assert [m.role for m in messages] == ["system", "user", "tool", "assistant", "assistant", "assistant", "assistant"]
    assert messages[1].name == "ann" and messages[2].name == "search"
    assert json.loads(messages[2].content)["payload"] == {"q": "x"}
    assert [m.content for m in messages[3:6]] == ["thinking", "print(1)", "# done"]
    assert json.loads(messages[6].content) == {"payload": {"k": [1, 2]}}


def test_dict_content_is_validated_into_its_type(tract: Tract) -> None:
    info = tract.commit({"content_type": "dialogue", "role": "assistant", "text": "ok"})
    assert info.content_type == "dialogue"
    assert tract.compile().messages[0].role == "assistant"


@pytest.mark.parametrize(
    "content",
    [
        {"content_type": "dialogue", "role": "robot", "text": "x"},
        {"content_type": "dialogue", "text": "missing role"},
        {"content_type": "nope", "text": "x"},
        {"role": "user", "text": "no type"},
        {"content_type": "instruction", "text": "x", "extra": 1},
        {"content_type": "freeform", "payload": {"x": float("nan")}},
        {"content_type": "tool_io", "tool_name": "t", "direction": "sideways", "payload": {}},
        "just a string",
    ],
)
def test_invalid_content_is_refused_and_nothing_is_written(tract: Tract, log_dir: Path, content: object) -> None:
    before = (log_dir / LOG_FILE).read_bytes()
    with pytest.raises(ContentValidationError):
        tract.commit(content)  # type: ignore[arg-type]
    assert (log_dir / LOG_FILE).read_bytes() == before
    assert tract.head is None


def test_custom_content_type(tract: Tract) -> None:
    class Ticket(BaseModel):
        ticket_id: int
        text: str

    tract.register_content_type("ticket", Ticket)
    info = tract.commit(Ticket(ticket_id=7, text="printer on fire"))
    assert info.content_type == "ticket" and info.content["ticket_id"] == 7
    tract.commit({"content_type": "ticket", "ticket_id": 8, "text": "still on fire"})
    assert [m.content for m in tract.compile().messages] == ["printer on fire", "still on fire"]
    with pytest.raises(ContentValidationError):
        tract.commit({"content_type": "ticket", "ticket_id": "eight", "text": "x"})
    with pytest.raises(TractError):
        tract.register_content_type("dialogue", Ticket)


def test_non_json_metadata_and_config_are_refused(tract: Tract) -> None:
    for bad in ({"s": {1, 2}}, {"f": float("inf")}, {"o": object()}, {"t": (1, 2)}, {1: "int key"}):
        with pytest.raises(InvalidJSONError):
            tract.commit(user("x"), metadata=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidJSONError):
            tract.commit(user("x"), generation_config=bad)  # type: ignore[arg-type]
    assert tract.head is None


# -- edits, annotations, compile ------------------------------------------------


def test_edit_replaces_its_target_latest_wins(tract: Tract) -> None:
    original = tract.commit(user("first draft"))
    tract.commit(assistant("reply"))
    tract.commit(user("second draft"), operation=CommitOperation.EDIT, response_to=original.commit_hash)
    tract.commit(user("third draft"), operation="edit", response_to=original.commit_hash)
    compiled = tract.compile()
    assert [m.content for m in compiled.messages] == ["third draft", "reply"]
    assert compiled.commit_count == 2
    assert compiled.commit_hashes[0] == original.commit_hash
    marked = tract.compile(include_edit_annotations=True)
    assert marked.messages[0].content == "[edited] third draft"
    assert marked.token_count > compiled.token_count


def test_edit_errors(tract: Tract) -> None:
    original = tract.commit(user("x"))
    edit = tract.commit(user("y"), operation="edit", response_to=original.commit_hash)
    with pytest.raises(EditTargetError):
        tract.commit(user("z"), operation="edit")
    with pytest.raises(EditTargetError):
        tract.commit(user("z"), operation="edit", response_to="0" * 64)
    with pytest.raises(EditTargetError):
        tract.commit(user("z"), operation="edit", response_to=edit.commit_hash)
    with pytest.raises(ValueError):
        tract.commit(user("z"), operation="rewrite")
    with pytest.raises(CommitNotFoundError):
        tract.commit(user("z"), response_to="f" * 64)


def test_skip_annotation_leaves_commit_out_and_history_is_kept(tract: Tract) -> None:
    a = tract.commit(user("keep"))
    b = tract.commit(user("drop"))
    tract.annotate(b.commit_hash, Priority.SKIP, reason="off topic")
    assert [m.content for m in tract.compile().messages] == ["keep"]
    tract.annotate(b.commit_hash, "normal")
    assert [m.content for m in tract.compile().messages] == ["keep", "drop"]
    history = tract.get_annotations(b.commit_hash)
    assert [(x.priority, x.reason) for x in history] == [(Priority.SKIP, "off topic"), (Priority.NORMAL, None)]
    assert tract.get_annotations(a.commit_hash) == []
    with pytest.raises(CommitNotFoundError):
        tract.annotate("0" * 64, Priority.SKIP)


def test_instructions_are_pinned_by_default(tract: Tract) -> None:
    info = tract.commit(InstructionContent(text="rules"))
    assert [a.priority for a in tract.get_annotations(info.commit_hash)] == [Priority.PINNED]


def test_token_count_is_the_chat_formula(tract: Tract) -> None:
    counter = TiktokenCounter()
    tract.commit(InstructionContent(text="You are terse."))
    tract.commit(DialogueContent(role="user", text="Name three rivers.", name="sam"))
    tract.commit(assistant("Nile, Amazon, Yangtze."))
    compiled = tract.compile()
    expected = 3
    for m in compiled.messages:
        expected += 3 + counter.count_text(m.role) + counter.count_text(m.content)
        if m.name:
            expected += 1 + counter.count_text(m.name)
    assert compiled.token_count == expected == counter.count_messages(compiled.to_openai())
    assert compiled.token_source == "tiktoken:o200k_base"


def test_cl100k_and_null_counters(log_dir: Path) -> None:
    with Tract.open(log_dir, config=TractConfig(tokenizer_encoding="cl100k_base")) as tract:
        tract.commit(user("hello world"))
        assert tract.compile().token_source == "tiktoken:cl100k_base"
    with Tract.open(tokenizer=NullTokenCounter()) as tract:
        tract.commit(user("hello world"))
        assert tract.compile().token_count == 0


def test_compile_time_travel(tract: Tract) -> None:
    first = tract.commit(user("one"))
    middle = datetime.now(timezone.utc)
    second = tract.commit(user("two"))
    tract.commit(user("three"))
    assert [m.content for m in tract.compile(at_commit=second.commit_hash).messages] == ["one", "two"]
    assert [m.content for m in tract.compile(at_time=middle).messages] == ["one"]
    assert tract.compile(at_time=first.created_at - timedelta(seconds=1)).messages == []
    with pytest.raises(ValueError):
        tract.compile(at_time=middle, at_commit=second.commit_hash)
    with pytest.raises(CommitNotFoundError):
        tract.compile(at_commit="0" * 64)


def test_at_time_sees_annotations_as_they_were(tract: Tract) -> None:
    a = tract.commit(user("a"))
    before_skip = datetime.now(timezone.utc)
    tract.annotate(a.commit_hash, Priority.SKIP)
    assert tract.compile().messages == []
    assert [m.content for m in tract.compile(at_time=before_skip).messages] == ["a"]


def test_compile_is_incremental_and_equals_a_full_compile(tract: Tract) -> None:
    hashes = [tract.commit(user(f"message {i}")).commit_hash for i in range(20)]
    tract.compile()
    tract.commit(assistant("appended"))
    tract.commit(user("edited"), operation="edit", response_to=hashes[3])
    incremental = tract.compile()
    full = tract.compile(at_commit=tract.head)
    assert incremental.messages == full.messages
    assert incremental.token_count == full.token_count
    assert incremental.generation_configs == full.generation_configs


def test_compiled_results_do_not_alias_the_cache(tract: Tract) -> None:
    tract.commit(user("a"), generation_config={"model": "m", "extra": {"k": [1]}})
    first = tract.compile()
    first.messages.append(first.messages[0])
    first.generation_configs[0]["model"] = "changed"
    first.commit_hashes.clear()
    again = tract.compile()
    assert len(again.messages) == 1 and again.commit_hashes
    assert again.generation_configs == [{"model": "m", "extra": {"k": [1]}}]
    configs = again.generation_configs
    configs[0]["extra"]["k"].append(2)
    assert again.generation_configs[0]["extra"]["k"] == [1]


def test_provider_formats(tract: Tract) -> None:
    tract.commit(InstructionContent(text="sys"))
    tract.commit(user("u1"))
    tract.commit(user("u2"))
    tract.commit(ToolIOContent(tool_name="calc", direction="result", payload={"v": 2}, status="success"))
    tract.commit(assistant("a1"))
    compiled = tract.compile()
    assert (
        compiled.messages[3].role == "tool" and compiled.messages[3].name == "calc"
    )  # the legacy form compiles as before
    openai = compiled.to_openai()
    assert openai[0] == {"role": "system", "content": "sys"}
    # no call id, so no provider takes it as a tool message: it travels as labelled user text
    assert openai[3]["role"] == "user" and openai[3]["content"].startswith("[tool calc] ")
    anthropic = compiled.to_anthropic()
    assert anthropic["system"] == "sys"
    roles = [m["role"] for m in anthropic["messages"]]
    assert roles == ["user", "assistant"]
    texts = [block["text"] for block in anthropic["messages"][0]["content"]]
    assert texts[:2] == ["u1", "u2"] and texts[2].startswith("[tool calc] ")


# -- usage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "usage, expected",
    [
        ({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}, (10, 4, 14)),
        ({"input_tokens": 7, "output_tokens": 3}, (7, 3, 10)),
        ({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}, (5, 2, 7)),
        (TokenUsage(prompt_tokens=1, completion_tokens=1), (1, 1, 2)),
    ],
)
def test_record_usage_shapes(tract: Tract, usage: object, expected: tuple[int, int, int]) -> None:
    tract.commit(user("q"))
    sent = tract.compile()
    tract.commit(assistant("a"))
    compiled = tract.record_usage(usage)  # type: ignore[arg-type]
    # the figures belong to the context that was sent; the count keeps describing the messages
    assert compiled == tract.compile(at_commit=sent.commit_hashes[-1])
    assert compiled.api_usage is not None
    assert (
        compiled.api_usage.prompt_tokens,
        compiled.api_usage.completion_tokens,
        compiled.api_usage.total_tokens,
    ) == expected
    assert (compiled.token_count, compiled.token_source) == (sent.token_count, "tiktoken:o200k_base")
    assert tract.compile().api_usage is None and tract.compile().token_source == "tiktoken:o200k_base"


def test_record_usage_errors(tract: Tract) -> None:
    with pytest.raises(UsageError, match="no commits"):
        tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1})
    tract.commit(user("q"))
    with pytest.raises(UsageError, match=r"\['bananas', 'tokens'\]"):
        tract.record_usage({"tokens": 1, "bananas": 2})
    with pytest.raises(UsageError, match="head_hash"):
        tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, head_hash="0" * 64)
    with pytest.raises(UsageError):
        tract.record_usage({"prompt_tokens": -1, "completion_tokens": 1})


# -- budget -----------------------------------------------------------------------


def test_budget_reject_writes_nothing(log_dir: Path) -> None:
    config = TractConfig(token_budget=TokenBudgetConfig(max_tokens=30, action=BudgetAction.REJECT))
    with Tract.open(log_dir, config=config) as tract:
        tract.commit(user("short"))
        head, size = tract.head, (log_dir / LOG_FILE).stat().st_size
        with pytest.raises(BudgetExceededError):
            tract.commit(user("word " * 50))
        assert tract.head == head and (log_dir / LOG_FILE).stat().st_size == size


def test_budget_warn_and_callback() -> None:
    seen: list[tuple[int, int]] = []
    callback = TokenBudgetConfig(max_tokens=10, action=BudgetAction.CALLBACK, callback=lambda c, m: seen.append((c, m)))
    with Tract.open(config=TractConfig(token_budget=callback)) as tract:
        tract.commit(user("word " * 20))
        assert seen and seen[0][1] == 10 and seen[0][0] == tract.compile().token_count
    budget = TractConfig(token_budget=TokenBudgetConfig(max_tokens=10))
    with Tract.open(config=budget) as tract, pytest.warns(RuntimeWarning, match="over the budget"):
        tract.commit(user("word " * 20))
    with pytest.raises(ValueError):
        TokenBudgetConfig(max_tokens=10, action=BudgetAction.CALLBACK)


# -- batch ------------------------------------------------------------------------


def test_batch_lands_together(tract: Tract, log_dir: Path) -> None:
    with tract.batch():
        a = tract.commit(user("a"))
        b = tract.commit(user("b"))
        assert b.parent_hash == a.commit_hash and tract.head == b.commit_hash
    assert [m.content for m in tract.compile().messages] == ["a", "b"]


def test_batch_exception_leaves_everything_as_before(tract: Tract, log_dir: Path) -> None:
    kept = tract.commit(user("kept"))
    tract.compile()
    before = (log_dir / LOG_FILE).read_bytes()
    with pytest.raises(RuntimeError), tract.batch():
        tract.commit(user("lost 1"))
        tract.commit(user("lost 2"))
        raise RuntimeError("agent crashed")
    assert (log_dir / LOG_FILE).read_bytes() == before
    assert tract.head == kept.commit_hash
    assert [m.content for m in tract.compile().messages] == ["kept"]
    tract.commit(user("next"))
    assert tract.log(limit=None)[1].commit_hash == kept.commit_hash


# -- opening, reopening, closing ----------------------------------------------------


def test_reopen_restores_everything(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract_id = tract.tract_id
        a = tract.commit(InstructionContent(text="sys"), generation_config={"model": "m"})
        b = tract.commit(user("q"))
        tract.annotate(b.commit_hash, Priority.SKIP)
        tract.record_usage({"prompt_tokens": 9, "completion_tokens": 1})
        compiled = tract.compile()
        log = tract.log()
        head = tract.chain_head
    for _ in range(2):  # once through the tract index, once after deleting it
        with Tract.open(log_dir) as again:
            assert again.tract_id == tract_id and again.head == b.commit_hash
            assert again.compile() == compiled
            assert again.log() == log
            assert again.get_commit(a.commit_hash) == log[-1]
            assert again.get_annotations(b.commit_hash)[-1].priority is Priority.SKIP
            assert again.chain_head == head
        assert (log_dir / "index" / "catalogue").is_file(), "closing a writer saves the tract index"
        shutil.rmtree(log_dir / "index")


def _index_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (directory / "index").iterdir()}


def test_an_index_that_does_not_match_the_log_costs_a_rebuild_never_a_wrong_answer(tmp_path: Path) -> None:
    """The index beside the log only says where records are: a foreign, damaged or stale one is
    found out by the checks of the records read through it, and the log answers."""
    with Tract.open(tmp_path / "a", tract_id="t") as a:
        a.commit(user("from a"))
        a.commit(user("more from a"))
    with Tract.open(tmp_path / "b", tract_id="t") as b:
        b.commit(user("from b"))
        expected = (b.compile(), b.log(limit=None), b.chain_head)
    stale = _index_files(tmp_path / "b")  # it knows nothing of what comes next
    with Tract.open(tmp_path / "b") as b:
        b.commit(user("after the index was saved"))
        expected_later = (b.compile(), b.log(limit=None), b.chain_head)
    good = _index_files(tmp_path / "b")
    foreign = _index_files(tmp_path / "a")  # same tract id, so the same file names, other records
    idx = next(name for name in good if name.endswith(".idx"))
    cases = {
        "foreign index": foreign,
        "garbage catalogue": {**good, "catalogue": b"garbage"},
        "garbage offsets": {**good, idx: b"\x07" * len(good[idx])},
        "offsets of another log": {**good, idx: foreign[idx][: len(good[idx])]},
        "stale index": stale,
    }
    for name, files in cases.items():
        for readonly in (True, False):
            shutil.rmtree(tmp_path / "b" / "index")
            (tmp_path / "b" / "index").mkdir()
            for file, data in files.items():
                (tmp_path / "b" / "index" / file).write_bytes(data)
            with Tract.open(tmp_path / "b", readonly=readonly) as b:
                assert (b.compile(), b.log(limit=None), b.chain_head) == expected_later, name
                with b.replay(until_position=2) as then:
                    assert (then.compile(), then.log(limit=None), then.chain_head) == expected, name
                assert b.verify().ok
    assert _index_files(tmp_path / "b") == good, "the writer saved the index rebuilt from the log"


def test_several_tracts_share_one_log(log_dir: Path) -> None:
    with Tract.open(log_dir) as first:
        first_id = first.tract_id
        first.commit(user("first tract"))
    with Tract.open(log_dir, tract_id="second") as second:
        assert second.head is None
        second.commit(user("second tract"))
    with Tract.open(log_dir) as default:
        assert default.tract_id == first_id
        assert [m.content for m in default.compile().messages] == ["first tract"]
    with Tract.open(log_dir, tract_id="second") as second:
        assert [m.content for m in second.compile().messages] == ["second tract"]


def test_empty_log_reopens_as_the_same_tract(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract_id = tract.tract_id
    with Tract.open(log_dir) as again:
        assert again.tract_id == tract_id


def test_close_is_idempotent_and_methods_refuse_afterwards(log_dir: Path) -> None:
    tract = Tract.open(log_dir)
    tract.commit(user("x"))
    tract.close()
    tract.close()
    assert "closed=True" in repr(tract)
    with pytest.raises(TractClosedError):
        tract.commit(user("y"))
    with pytest.raises(TractClosedError):
        tract.compile()


def test_second_writer_gets_a_clear_error(tract: Tract, log_dir: Path) -> None:
    with pytest.raises(LogLockedError, match="already open for writing"):
        Tract.open(log_dir)


def test_readonly_tract_refuses_writes(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract.commit(user("x"))
        with Tract.open(log_dir, readonly=True) as reader:
            assert [m.content for m in reader.compile().messages] == ["x"]
            with pytest.raises(ReadOnlyError):
                reader.commit(user("y"))
            with pytest.raises(ReadOnlyError):
                reader.annotate(tract.head or "", Priority.SKIP)


@pytest.mark.parametrize("with_index", [True, False])
def test_torn_tail_is_recovered_through_the_facade(log_dir: Path, with_index: bool) -> None:
    with Tract.open(log_dir) as tract:
        for i in range(5):
            tract.commit(user(f"m{i}"))
        head_before_last = tract.replay(until_position=tract.chain_head.position - 1).chain_head
    if not with_index:
        shutil.rmtree(log_dir / "index")
    path = log_dir / LOG_FILE
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 10)
    with pytest.warns(RuntimeWarning, match="torn tail"), Tract.open(log_dir) as tract:
        assert [m.content for m in tract.compile().messages] == ["m0", "m1", "m2", "m3"]
        assert tract.chain_head == head_before_last
        tract.commit(user("m4 again"))
    with Tract.open(log_dir, readonly=True) as reader:
        assert [m.content for m in reader.compile().messages] == ["m0", "m1", "m2", "m3", "m4 again"]
        assert reader.verify().ok


def _two_tracts(log_dir: Path) -> None:
    """Tracts a and b, their records interleaved: a's numbers are not places in the log."""
    for i in range(5):
        for tract_id in ("a", "b"):
            with Tract.open(log_dir, tract_id=tract_id) as tract:
                tract.commit(user(f"{tract_id} message number {i}"))


def test_corrupt_middle_record_is_a_tract_error_with_position(log_dir: Path) -> None:
    _two_tracts(log_dir)
    with Tract.open(log_dir, tract_id="a", readonly=True) as tract:
        [damaged] = [e.position for e in tract.events(types="CommitCreated") if "number 3" in e.event.content["text"]]
    with Tract.open(log_dir, tract_id="b", readonly=True) as other:
        b_expected = (other.compile(), other.chain_head)
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[data.find(b"a message number 3") + 3] ^= 0x01
    path.write_bytes(bytes(data))
    # Read through the index: the record is named by its number in its tract.
    for readonly in (True, False):
        with pytest.raises(CorruptLogError) as caught:
            Tract.open(log_dir, tract_id="a", readonly=readonly)
        assert isinstance(caught.value, TractError)
        assert (caught.value.tract_id, caught.value.position, caught.value.kind) == ("a", damaged, "bad checksum")
        assert f"tract 'a' position {damaged}" in str(caught.value)
    # Another tract's records are read (and checked) alone; verify finds the damage.
    with Tract.open(log_dir, tract_id="b", readonly=True) as other:
        assert (other.compile(), other.chain_head) == b_expected
        report = other.verify()
        assert not report.ok and report.problem is not None and report.problem.kind == "bad checksum"
    # Without the index, the open's scan of the log finds it first, before its tract is known:
    # it is named by its place in the whole log.
    shutil.rmtree(log_dir / "index")
    with pytest.raises(CorruptLogError) as caught:
        Tract.open(log_dir, tract_id="a", readonly=True)
    assert caught.value.tract_id is None and caught.value.kind == "bad checksum"
    assert caught.value.position == report.problem.position and 1 < caught.value.position < 12


def test_threads_share_one_tract_safely(tract: Tract) -> None:
    def worker(n: int) -> None:
        for i in range(25):
            tract.commit(user(f"thread {n} message {i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = tract.log(limit=None)
    assert len(history) == 100
    for newer, older in pairwise(history):
        assert newer.parent_hash == older.commit_hash
    assert tract.compile().commit_count == 100


def test_memory_tract(memory_tract: Tract) -> None:
    memory_tract.commit(user("in memory"))
    assert memory_tract.compile().commit_count == 1
    assert ":memory:" in repr(memory_tract)


def test_a_result_keeps_showing_its_own_moment(tract: Tract) -> None:
    """Results are read lazily: later appends, edits and recorded configs must not show through."""
    first = tract.commit(user("first"), generation_config={"v": 1})
    before = tract.compile()
    tract.commit(user("second"))
    tract.commit(user("first, edited"), operation="edit", response_to=first.commit_hash)
    tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"v": 2})
    after = tract.compile()
    assert [m.content for m in before.messages] == ["first"]
    assert before.generation_configs == [{"v": 1}] and before.commit_count == 1
    assert [m.content for m in after.messages] == ["first, edited", "second"]
    assert before != after and tract.compile() == after


def test_a_writer_in_another_process_is_refused_at_once(tract: Tract, log_dir: Path) -> None:
    import subprocess
    import sys
    import time

    script = f"from tract import Tract\nTract.open({str(log_dir)!r})"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "LogLockedError" in done.stderr and "already open for writing" in done.stderr
    assert time.monotonic() - started < 30  # refused, not waiting for the lock
    tract.commit(user("still writable"))


def test_close_inside_a_batch_is_refused_and_nothing_half_lands(log_dir: Path) -> None:
    tract = Tract.open(log_dir)
    tract.commit(user("kept"))
    with pytest.raises(TractError, match="inside batch"), tract.batch():
        tract.commit(user("staged"))
        tract.close()
    assert [m.content for m in tract.compile().messages] == ["kept"]
    tract.close()
    with Tract.open(log_dir) as again:
        assert [m.content for m in again.compile().messages] == ["kept"] and again.verify().ok


def test_a_failed_inner_batch_is_undone_inside_an_outer_one(tract: Tract) -> None:
    with tract.batch():
        tract.commit(user("outer"))
        with pytest.raises(RuntimeError), tract.batch():
            tract.commit(user("inner"))
            raise RuntimeError("inner step failed")
        tract.commit(user("outer again"))
    assert [m.content for m in tract.compile().messages] == ["outer", "outer again"]
    assert tract.verify().ok


def test_a_replay_outlives_the_tract_it_came_from(log_dir: Path, tmp_path: Path) -> None:
    tract = Tract.open(log_dir)
    tract.commit(user("then"))
    past = tract.replay()
    tract.close()
    with Tract.open(tmp_path / "other") as other:
        other.commit(user("another log entirely"))
        assert [m.content for m in past.compile().messages] == ["then"]
        assert [e.type for e in past.events()] == ["TractCreated", "CommitCreated"]
        assert past.verify().records_checked == 2
    past.close()


def test_a_file_where_the_directory_should_be_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("hello")
    with pytest.raises(StorageError):
        Tract.open(tmp_path / "not-a-dir")


def test_bad_arguments_are_tract_errors(tract: Tract) -> None:
    info = tract.commit(user("x"))
    for call in (
        lambda: tract.commit(user("y"), operation="bogus"),
        lambda: tract.commit(user("y"), operation="merge"),
        lambda: tract.annotate(info.commit_hash, "bogus"),
        lambda: tract.merge("main", strategy="mine"),
        lambda: tract.compile(at_time=info.created_at, at_commit=info.commit_hash),
        lambda: tract.events(types=["Nope"]),
        lambda: tract.query_by_config("temperature", "LIKE", 1),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


def test_an_unknown_encoding_is_a_clear_error() -> None:
    from tract import EncodingError

    with pytest.raises(EncodingError, match="not shipped"):
        Tract.open(config=TractConfig(tokenizer_encoding="no_such_base"))

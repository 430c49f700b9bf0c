"""The write boundary: whatever a caller passes to a writing method, the log stays readable.

A value is either refused with a `TractError` subclass naming the argument,
leaving the log file, HEAD, the commit view, the chain head and the analytics
exactly as they were, or accepted and read back exactly: after a reopen (with
and without the tract index beside the log), a replay and `verify()`. Beneath the SDK, the log
itself appends only events that decode back into themselves, so no method,
present or future, can write a record that makes the log unreadable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import BaseModel

import events
from events import CommitCreated, EventLog, InvalidEventError, Record, TractCreated
from events.jsonl import ExportedRecord
from tract import (
    BranchError,
    ContentModel,
    ContentValidationError,
    DialogueContent,
    FreeformContent,
    InstructionContent,
    InvalidArgumentError,
    InvalidJSONError,
    NullTokenCounter,
    Priority,
    TokenBudgetConfig,
    TokenUsage,
    Tract,
    TractConfig,
    TractError,
    UsageError,
)
from tract.cli import main as cli

from properties import examples

# -- what must stay as it was -----------------------------------------------------------------------


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def log_bytes(directory: Path) -> bytes:
    return (directory / "events.log").read_bytes()


def view_state(t: Tract) -> tuple[Any, ...]:
    """Everything the commit view answers for HEAD's history, branches and compiled context."""
    commits = t.log(limit=None)
    branches = t.list_branches()
    compiled = t.compile()
    return (
        t.head,
        t.current_branch,
        branches,
        commits,
        [t.get_annotations(c.commit_hash) for c in commits],
        [t.config_history(c.commit_hash) for c in commits],
        [t.reflog(b.name) for b in branches],
        [(m.role, m.content, m.name) for m in compiled.messages],
        (compiled.token_count, compiled.token_source, list(compiled.commit_hashes), compiled.generation_configs),
        t.chain_head,
    )


def refused(t: Tract, directory: Path, attempt: Callable[[], Any], error: type[TractError], argument: str) -> None:
    """`attempt` raises `error` naming `argument`, and nothing changes."""
    before_bytes, before = log_bytes(directory), view_state(t)
    with pytest.raises(error) as caught:
        attempt()
    assert argument in str(caught.value), f"the error should name {argument!r}: {caught.value}"
    assert log_bytes(directory) == before_bytes, "a refused call changed events.log"
    assert view_state(t) == before


def drop_index(directory: Path) -> None:
    """Delete the tract index the last close saved: the next open must find every record in the log itself."""
    assert (directory / "index" / "catalogue").is_file(), "closing a writer saves the tract index"
    shutil.rmtree(directory / "index")


def reopens_the_same(t: Tract, directory: Path) -> None:
    """Close `t`; the log reopens (through its index, and without it), verifies and replays to what `t` showed."""
    live = view_state(t)
    t.close()
    with Tract.open(directory) as reopened:
        assert reopened.verify().ok
        assert view_state(reopened) == live
        with reopened.replay() as replayed:
            assert view_state(replayed) == live
    drop_index(directory)
    with Tract.open(directory, readonly=True) as folded:
        assert view_state(folded) == live


# -- plain regressions: each of these once made the log unreadable or escaped as a non-TractError ----


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"message": 5}, "message"),
        ({"message": b"x"}, "message"),
        ({"message": "\ud800"}, "message"),
        ({"message": ["a"]}, "message"),
        ({"response_to": 5}, "response_to"),
        ({"response_to": b"abcd"}, "response_to"),
        ({"response_to": ["unhashable"]}, "response_to"),
        ({"operation": ["append"]}, "operation"),
    ],
)
def test_commit_arguments_of_the_wrong_type_are_refused(log_dir: Path, kwargs: dict[str, Any], argument: str) -> None:
    t = Tract.open(log_dir)
    t.commit(user("hello"))
    refused(t, log_dir, lambda: t.commit(user("x"), **kwargs), InvalidArgumentError, argument)
    reopens_the_same(t, log_dir)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"reason": 5}, "reason"),
        ({"reason": b"off topic"}, "reason"),
        ({"reason": "\udfff"}, "reason"),
        ({"priority": {"skip"}}, "priority"),
    ],
)
def test_annotation_arguments_of_the_wrong_type_are_refused(
    log_dir: Path, kwargs: dict[str, Any], argument: str
) -> None:
    t = Tract.open(log_dir)
    head = t.commit(user("hello")).commit_hash
    arguments = {"priority": Priority.SKIP, **kwargs}
    refused(t, log_dir, lambda: t.annotate(head, **arguments), InvalidArgumentError, argument)
    refused(t, log_dir, lambda: t.annotate(5, Priority.SKIP), InvalidArgumentError, "commit_hash")  # type: ignore[arg-type]
    reopens_the_same(t, log_dir)


@pytest.mark.parametrize("tract_id", [5, b"other", "\ud800", 1.5, ["a"], object()])
def test_a_tract_id_that_is_not_a_storable_string_is_refused(log_dir: Path, tract_id: Any) -> None:
    with Tract.open(log_dir) as t:
        t.commit(user("hello"))
    before = log_bytes(log_dir)
    with pytest.raises(InvalidArgumentError, match="tract_id"):
        Tract.open(log_dir, tract_id=tract_id)
    assert log_bytes(log_dir) == before
    with Tract.open(log_dir) as reopened:
        assert [m.content for m in reopened.compile().messages] == ["hello"]
        assert reopened.verify().ok


def test_conversation_shortcuts_refuse_arguments_of_the_wrong_type(log_dir: Path) -> None:
    with Tract.open(log_dir) as t:
        t.system("be brief")
        before = log_bytes(log_dir)
        with pytest.raises(ContentValidationError, match="tool_calls"):
            t.assistant(tool_calls=object())  # type: ignore[arg-type]
        with pytest.raises(ContentValidationError, match="tool_calls"):
            t.assistant("hi", tool_calls="lookup")  # type: ignore[arg-type]
        with pytest.raises(InvalidJSONError, match="generation_config"):
            t.commit_response({"choices": [{"message": {"role": "assistant", "content": "x"}}]}, generation_config=5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="text must be a string"):
            t.user(b"bytes")  # type: ignore[arg-type]
        assert log_bytes(log_dir) == before
        assert t.assistant("plain text", tool_calls=[]).content["content_type"] == "dialogue"


def test_branch_and_ref_arguments_of_the_wrong_type_are_refused(log_dir: Path) -> None:
    t = Tract.open(log_dir)
    first = t.commit(user("hello")).commit_hash
    t.branch("side", switch=False)
    refused(t, log_dir, lambda: t.branch("a\ud800b"), BranchError, "branch name")
    refused(t, log_dir, lambda: t.branch(b"bytes"), BranchError, "branch name")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.branch("ok", at=5), InvalidArgumentError, "at")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.branch("ok", switch="yes"), InvalidArgumentError, "switch")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.switch(["side"]), InvalidArgumentError, "name")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.checkout(5), InvalidArgumentError, "ref")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.reset(first.encode()), InvalidArgumentError, "commit_hash")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.merge({"side"}), InvalidArgumentError, "branch")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.merge("side", strategy=None), InvalidArgumentError, "strategy")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.delete_branch(5), InvalidArgumentError, "name")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.register_content_type(5, FreeformContent), InvalidArgumentError, "name")  # type: ignore[arg-type]
    refused(t, log_dir, lambda: t.register_content_type("n\ud800", FreeformContent), InvalidArgumentError, "name")
    refused(
        t,
        log_dir,
        lambda: t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, head_hash=[first]),
        InvalidArgumentError,
        "head_hash",
    )  # type: ignore[arg-type]
    reopens_the_same(t, log_dir)


def test_content_models_built_without_validation_are_validated_again(log_dir: Path) -> None:
    t = Tract.open(log_dir)
    t.commit(user("hello"))
    for content in (
        DialogueContent.model_construct(role="user", text=5),
        DialogueContent.model_construct(role="nobody", text="x"),
        DialogueContent.model_construct(role="user"),
        FreeformContent.model_construct(payload={"a": float("nan")}),
        FreeformContent.model_construct(payload={1: "non-str key"}),
        InstructionContent.model_construct(text=object()),
    ):
        refused(t, log_dir, lambda content=content: t.commit(content), ContentValidationError, "content")
    accepted = t.commit(DialogueContent.model_construct(role="assistant", text="built, and valid"))
    assert accepted.content == {
        "content_type": "dialogue",
        "role": "assistant",
        "text": "built, and valid",
        "name": None,
    }
    assert t.compile().messages[-1].content == "built, and valid"
    reopens_the_same(t, log_dir)


class Inner(BaseModel):
    count: int


class Outer(BaseModel):
    text: str
    inner: Inner


def test_registered_models_and_their_nested_models_are_validated_again(log_dir: Path) -> None:
    t = Tract.open(log_dir)
    t.register_content_type("outer", Outer)
    t.commit(Outer(text="fine", inner=Inner(count=1)))
    refused(
        t,
        log_dir,
        lambda: t.commit(Outer.model_construct(text="x", inner=Inner.model_construct(count="many"))),
        ContentValidationError,
        "content",
    )
    refused(
        t,
        log_dir,
        lambda: t.commit(Outer.model_construct(text=5, inner=Inner(count=1))),
        ContentValidationError,
        "content",
    )
    t.close()


def test_usage_and_config_models_built_without_validation_are_validated_again(log_dir: Path) -> None:
    t = Tract.open(log_dir)
    t.commit(user("hello"))
    bad_usage = TokenUsage.model_construct(prompt_tokens="10", completion_tokens=1, total_tokens=11)
    refused(t, log_dir, lambda: t.record_usage(bad_usage), UsageError, "TokenUsage")
    huge_usage = TokenUsage.model_construct(prompt_tokens=2**70, completion_tokens=1, total_tokens=1)
    refused(t, log_dir, lambda: t.record_usage(huge_usage), UsageError, "TokenUsage")
    reopens_the_same(t, log_dir)
    budget = TokenBudgetConfig.model_construct(max_tokens="many")
    with pytest.raises(InvalidArgumentError, match="config"):
        Tract.open(log_dir, config=TractConfig.model_construct(token_budget=budget))


# -- the log's own check: the net beneath every method --------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def commit_event(**overrides: Any) -> CommitCreated:
    """A CommitCreated as a writer would build it; msgspec does not check types on construction."""
    fields: dict[str, Any] = {
        "content": {"content_type": "dialogue", "role": "user", "text": "hi", "name": None},
        "content_type": "dialogue",
        "operation": "append",
        "parent_hash": None,
        "created_at": NOW,
        "tract_id": "t",
        "token_count": 1,
        "tokenizer": "null",
    }
    fields.update(overrides)
    return events.sealed_commit(**fields)


UNREADABLE_EVENTS = [
    pytest.param(commit_event(message=5), "message", id="int-message"),
    pytest.param(commit_event(message=b"x"), "message", id="bytes-message"),
    pytest.param(commit_event(message="\ud800"), "message", id="surrogate-message"),
    pytest.param(commit_event(tract_id=5), "tract_id", id="int-tract-id"),
    pytest.param(commit_event(token_count=1.5), "token_count", id="float-count"),
    pytest.param(commit_event(token_count=True), "token_count", id="bool-count"),
    pytest.param(commit_event(token_count=2**64), "token_count", id="count-beyond-64-bits"),
    pytest.param(commit_event(operation="sideways"), "operation", id="operation-not-in-literal"),
    pytest.param(commit_event(metadata={"a": float("nan")}), "metadata", id="nan"),
    pytest.param(commit_event(metadata={"a": [float("inf")]}), "metadata", id="inf"),
    pytest.param(commit_event(metadata={"a": b"x"}), "metadata", id="bytes-in-json"),
    pytest.param(commit_event(metadata={"a": bytearray(b"x")}), "metadata", id="bytearray-in-json"),
    pytest.param(commit_event(metadata={1: "a"}), "metadata", id="int-key"),
    pytest.param(commit_event(metadata={"a": {None: "a"}}), "metadata", id="nested-none-key"),
    pytest.param(commit_event(metadata={"a": {2: "a"}}), "metadata", id="nested-int-key"),
    pytest.param(commit_event(metadata={"a": (1, 2)}), "metadata", id="tuple"),
    pytest.param(commit_event(metadata={"a": {1, 2}}), "metadata", id="set"),
    pytest.param(commit_event(metadata={"a": NOW}), "metadata", id="datetime-in-json"),
    pytest.param(commit_event(metadata={"a": Decimal("1.5")}), "metadata", id="decimal"),
    pytest.param(commit_event(metadata={"a": object()}), "metadata", id="object"),
    pytest.param(commit_event(metadata={"a": 2**64}), "metadata", id="int-beyond-64-bits"),
    pytest.param(commit_event(generation_config={"k": "\udc00"}), "generation_config", id="surrogate-in-config"),
    pytest.param(commit_event(generation_config=["not", "an", "object"]), "generation_config", id="list-config"),
    pytest.param(commit_event(created_at=datetime(2024, 5, 1)), "created_at", id="naive-timestamp"),
    pytest.param(TractCreated(tract_id=b"t", created_at=NOW), "tract_id", id="bytes-tract-id"),  # type: ignore[arg-type]
    pytest.param(
        events.AnnotationAdded(tract_id="t", created_at=NOW, target_hash="h", priority="loud"),
        "priority",
        id="priority",
    ),
    pytest.param(
        events.AnnotationAdded(tract_id="t", created_at=NOW, target_hash="h", priority="skip", reason=5),
        "reason",
        id="int-reason",
    ),  # type: ignore[arg-type]
    pytest.param(
        events.BranchCreated(tract_id="t", created_at=NOW, name="a\udfff", head=None), "name", id="surrogate-branch"
    ),
]


@pytest.fixture(params=["file", "memory"])
def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[EventLog, Path | None]]:
    if request.param == "memory":
        log = EventLog.memory()
        yield log, None
    else:
        log = EventLog.open(tmp_path / "log")
        yield log, tmp_path / "log"
    log.close()


@pytest.mark.parametrize(("event", "field_name"), UNREADABLE_EVENTS)
def test_the_log_appends_only_events_that_decode_back_into_themselves(
    any_log: tuple[EventLog, Path | None], event: Any, field_name: str
) -> None:
    log, directory = any_log
    good = TractCreated(tract_id="t", created_at=NOW)
    log.append("t", [good], expected=0)

    def state() -> tuple[Any, ...]:
        on_disk = log_bytes(directory) if directory else None
        return (log.tract_ids(), log.tract_length("t"), log.tract_head("t"), on_disk)

    before = state()
    with pytest.raises(InvalidEventError) as caught:
        log.append("t", [commit_event(message="fine"), event], expected=1)
    assert caught.value.field == field_name
    assert caught.value.index == 1
    assert caught.value.event_type == type(event).__name__
    assert field_name in str(caught.value)
    assert state() == before
    assert log.append("t", [commit_event(message="after")], expected=1) == 2
    read_back = [(r.number, type(r.event).__name__) for r in log.read_tract("t")]
    assert read_back == [(1, "TractCreated"), (2, "CommitCreated")]
    report = log.verify()
    assert report.ok and report.records_checked == 2 and list(report.heads) == ["t"]
    assert report.heads["t"].number == 2 and report.heads["t"].hash == log.tract_head("t").hex()


def test_something_that_is_not_an_event_is_refused_by_the_log(tmp_path: Path) -> None:
    log = EventLog.open(tmp_path / "log")
    with pytest.raises(InvalidEventError, match="not an event"):
        log.append("t", [{"tract_id": "t"}])  # type: ignore[list-item]
    assert (log.tract_ids(), log.tract_length("t")) == ([], 0)
    log.close()


class CountingBadly(NullTokenCounter):
    """A tokenizer whose counts the log cannot hold: only the log's own check stands in its way."""

    def __init__(self, count: Any) -> None:
        self.count = count

    def count_text(self, text: str) -> int:
        return self.count


@pytest.mark.parametrize("count", [1.5, 2**64, "3", None])
def test_an_event_field_the_facade_does_not_check_is_refused_by_the_log_naming_the_argument(
    log_dir: Path, count: Any
) -> None:
    with Tract.open(log_dir) as t:
        head = t.commit(user("hello")).commit_hash
    before = log_bytes(log_dir)
    with Tract.open(log_dir, tokenizer=CountingBadly(count)) as t:
        with pytest.raises(InvalidArgumentError, match="tokenizer"):
            t.commit(user("x"))
        with t.batch(), pytest.raises(InvalidArgumentError, match="tokenizer"):
            t.commit(user("in a batch"))
        assert t.head == head
        assert log_bytes(log_dir) == before
    with Tract.open(log_dir) as reopened:
        assert [m.content for m in reopened.compile().messages] == ["hello"]
        assert reopened.verify().ok


class Blob(ContentModel):
    """A registered type whose field holds bytes: MessagePack carries them, an export would not."""

    content_type: str = "blob"
    data: bytes


def test_a_registered_type_that_is_not_plain_json_is_refused_as_content(log_dir: Path) -> None:
    t = Tract.open(log_dir)
    t.register_content_type("blob", Blob)
    t.commit(user("hello"))
    refused(t, log_dir, lambda: t.commit(Blob(data=b"\x00\x01")), InvalidJSONError, "content")
    with t.batch():
        refused(t, log_dir, lambda: t.commit(Blob(data=b"\xff")), InvalidJSONError, "content")
        t.commit(user("the rest of the batch lands"))
    assert t.compile().messages[-1].content == "the rest of the batch lands"
    reopens_the_same(t, log_dir)


# -- import ----------------------------------------------------------------------------------------------


def import_cli(export: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli(["import", str(export), str(target)])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """An export of a small log with every kind of event."""
    directory = tmp_path_factory.mktemp("source") / "log"
    with Tract.open(directory) as t:
        t.commit(InstructionContent(text="be brief"))
        question = t.commit(user("q?"), metadata={"m": [1, "two"]}, generation_config={"temperature": 0.5})
        t.annotate(question.commit_hash, Priority.SKIP, reason="later")
        t.branch("side")
        t.commit(DialogueContent(role="assistant", text="a"), message="on side")
        t.switch("main")
        t.commit(user("q2"))
        t.merge("side", strategy="ours")
        t.record_usage({"prompt_tokens": 5, "completion_tokens": 2}, generation_config={"model": "m"})
        t.delete_branch("side")
        out = directory.parent / "export.jsonl"
        with open(out, "wb") as stream:
            t.export_jsonl(stream)
    return out.read_bytes().splitlines()


def rehashed(lines: list[bytes], start: int) -> list[bytes]:
    """The export with record hashes (and the next records' previous hashes) recomputed from line
    `start` on, as the README describes a record: the MessagePack of [number in its tract, hash of
    the tract's record before it, event], hashed alone (a format-1 record hashed its flags byte
    first). Each tract is its own chain, so a record names the hash of the last line of its tract.
    A line that does not decode or encode keeps its hashes, and so do all after it."""
    out = list(lines)
    heads: dict[str, str] = {}
    for index in range(len(out)):
        try:
            record = msgspec.json.decode(out[index], type=ExportedRecord)
            tract_id = record.event.tract_id
            if index > start and tract_id in heads:
                record = msgspec.structs.replace(record, prev_hash=heads[tract_id])
            body = msgspec.msgpack.encode(Record(record.position, bytes.fromhex(record.prev_hash), record.event))
        except (msgspec.MsgspecError, ValueError, OverflowError):
            if index < start:
                continue
            break
        if index >= start:
            hashed = body if record.format >= 2 else bytes([int(record.batch_end)]) + body
            record = msgspec.structs.replace(record, record_hash=hashlib.sha256(hashed).hexdigest())
            out[index] = msgspec.json.encode(record)
        heads[tract_id] = record.record_hash
    return out


def test_an_import_that_fails_leaves_nothing_behind(
    exported: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rehashed(exported, 0) == exported, "rehashing an untouched export changes nothing"
    for name, mutate in [
        ("huge-int", lambda e: e.update(metadata={"n": 2**70})),
        ("naive-time", lambda e: e.update(created_at="2024-05-01T12:00:00")),
        ("offset-time", lambda e: e.update(created_at="2024-05-01T17:00:00+05:00")),
        ("content", lambda e: e["content"].update(text="rewritten")),
    ]:
        lines = list(exported)
        index = next(i for i, line in enumerate(lines) if json.loads(line)["event"].get("message") == "on side")
        record = json.loads(lines[index])
        mutate(record["event"])
        lines[index] = json.dumps(record).encode()
        export = tmp_path / f"{name}.jsonl"
        export.write_bytes(b"\n".join(rehashed(lines, index)))
        target = tmp_path / "imports" / name
        code, err = import_cli(export, target, capsys)
        assert code == 1, name
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert not target.exists(), f"{name}: a failed import left {target}"
        assert list((tmp_path / "imports").iterdir()) == [], "a failed import left its staging directory"


@pytest.mark.parametrize("field", ["prev_hash", "record_hash"])
def test_an_import_checks_the_hashes_of_every_record_of_a_batch(
    exported: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    """Not only a batch's first previous hash and last own hash: a record inside a batch that names
    a hash it does not have is refused (else the import would not export back as it was given)."""
    inside = [i for i in range(1, len(exported)) if not json.loads(exported[i - 1])["batch_end"]]  # not first
    if field == "record_hash":
        inside = [i - 1 for i in inside]  # not last
    assert inside, "the export holds a batch of several records"
    for index in inside:
        lines = list(exported)
        record = json.loads(lines[index])
        record[field] = "0" * 64
        lines[index] = json.dumps(record).encode()
        export = tmp_path / f"{field}-{index}.jsonl"
        export.write_bytes(b"\n".join(lines))
        target = tmp_path / "imports" / f"{index}"
        code, err = import_cli(export, target, capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert not target.exists()


def test_an_import_does_not_overwrite_anything(
    exported: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_bytes(b"\n".join(exported))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    code, err = import_cli(export, occupied, capsys)
    assert code == 1 and "not an empty directory" in err
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert import_cli(export, empty, capsys)[0] == 0
    assert events.verify(empty).ok


# -- every writing method, with anything in every argument -----------------------------------------------


class AlwaysEqual:
    """Equal to everything: passes any `in` or `==` test that is not also a type check."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class Explosive:
    """Raises from every comparison, hash, truth test, len and iteration."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("boom")

    __eq__ = __ne__ = __lt__ = __hash__ = __bool__ = __len__ = __iter__ = _boom  # type: ignore[assignment]


class Sneaky(str):
    """A str subclass: stored as the plain string it equals."""


class Ticket(BaseModel):
    text: str
    priority: int = 0


class Note(ContentModel):
    content_type: str = "note"
    text: str


class Loose(ContentModel):
    """A registered type that takes any value: only the library stands between it and the log."""

    content_type: str = "loose"
    value: Any


HUGE_TEXT = "huge " * 60_000
SURROGATES = st.sampled_from(["\ud800", "\udfff", "\udc80", "a\ud800b"])
ODD_OBJECTS = [
    object(),
    AlwaysEqual(),
    Sneaky("main"),
    float("nan"),
    float("inf"),
    -float("inf"),
    2**64,
    -(2**63) - 1,
    10**40,
    b"bytes",
    bytearray(b"main"),
    complex(1, 2),
    Decimal("1.5"),
    NOW,
    datetime(2024, 1, 1),
    frozenset({"a"}),
    range(3),
    Ellipsis,
    print,
    Tract,
    Priority.SKIP,
]
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | SURROGATES
    | st.binary(max_size=4)
    | st.sampled_from(ODD_OBJECTS)
    | st.builds(Explosive)  # built, not sampled: hypothesis would hash it
    | st.just(None).map(lambda _: HUGE_TEXT)  # mapped, so that hypothesis never prints it
)
keys = st.text(max_size=4) | st.integers() | st.none() | st.booleans() | SURROGATES | st.tuples(st.integers())
anything = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(keys, children, max_size=3)
        | st.lists(children, max_size=2).map(tuple)
        | st.frozensets(st.integers(), max_size=2)
    ),
    max_leaves=6,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
BRANCH_NAMES = ["main", "side", "topic/x", "b2"]


@dataclass
class Known:
    """What the example has made so far, to draw valid arguments from."""

    hashes: list[str]
    registered: dict[str, type[BaseModel]]
    """Content types registered on the tract, to register again on every reopening."""

    def refs(self) -> st.SearchStrategy[str]:
        hashes = st.sampled_from(self.hashes)
        return hashes | hashes.map(lambda h: h[:8]) | st.sampled_from(BRANCH_NAMES)


def contents(known: Known) -> st.SearchStrategy[Any]:
    text = st.text(max_size=30)
    roles = st.sampled_from(["user", "assistant", "system"])
    options = [
        st.builds(DialogueContent, role=roles, text=text),
        st.builds(InstructionContent, text=text),
        st.builds(FreeformContent, payload=json_objects),
        st.builds(lambda r, x: {"content_type": "dialogue", "role": r, "text": x}, roles, text),
        st.builds(lambda r, x: DialogueContent.model_construct(role=r, text=x), roles | anything, text | anything),
        st.builds(lambda x: FreeformContent.model_construct(payload=x), json_objects | anything),
        st.builds(Ticket, text=text),
        st.builds(Note, text=text),
        st.builds(Loose, value=anything),
        st.builds(Loose, value=json_values),
    ]
    return st.one_of(options)


def arguments(known: Known) -> dict[str, dict[str, st.SearchStrategy[Any]]]:
    """For each writing method, a strategy of valid (or at least plausible) values per argument."""
    hashes = st.sampled_from(known.hashes)
    branches = st.sampled_from(BRANCH_NAMES)
    usage = st.builds(
        lambda p, c: {"prompt_tokens": p, "completion_tokens": c}, st.integers(0, 999), st.integers(0, 99)
    )
    text = st.text(max_size=20)
    tool_calls = st.builds(
        lambda call_id, arguments: {"id": call_id, "name": "lookup", "arguments": arguments},
        st.sampled_from(["call_1", "call_2"]),
        json_objects | text,
    )
    responses = st.builds(
        lambda reply, prompt: {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3},
        },
        text,
        st.integers(0, 999),
    )
    return {
        "commit": {
            "content": contents(known),
            "operation": st.sampled_from(["append", "append", "append", "edit"]),
            "message": st.none() | st.text(max_size=20),
            "response_to": st.none() | hashes,
            "metadata": st.none() | json_objects,
            "generation_config": st.none() | json_objects,
        },
        "annotate": {
            "commit_hash": hashes,
            "priority": st.sampled_from([*Priority, "skip", "pinned"]),
            "reason": st.none() | st.text(max_size=20),
        },
        "record_usage": {
            "usage": usage | usage.map(lambda u: TokenUsage(**u)),
            "head_hash": st.none(),
            "generation_config": st.none() | json_objects,
        },
        "branch": {"name": branches, "at": st.none() | hashes, "switch": st.booleans()},
        "switch": {"name": branches},
        "checkout": {"ref": known.refs()},
        "reset": {"commit_hash": known.refs()},
        "merge": {"branch": branches, "strategy": st.sampled_from(["auto", "ours", "theirs"])},
        "delete_branch": {"name": branches},
        "register_content_type": {
            "name": st.sampled_from(["ticket", "note"]),
            "model": st.sampled_from([Ticket, Note]),
        },
        "system": {"text": text, "message": st.none() | text, "generation_config": st.none() | json_objects},
        "user": {
            "text": text,
            "name": st.none() | st.sampled_from(["ann", "bob_2"]),
            "metadata": st.none() | json_objects,
        },
        "assistant": {
            "text": st.none() | text,
            "tool_calls": st.none() | st.lists(tool_calls, min_size=1, max_size=2),
            "generation_config": st.none() | json_objects,
        },
        "tool_result": {
            "tool_call_id": st.sampled_from(["call_1", "call_2"]),
            "content": text | json_objects,
            "name": st.none() | st.just("lookup"),
            "is_error": st.booleans(),
        },
        "commit_response": {"response": responses, "generation_config": st.none() | json_objects},
        "compress": {  # mostly valid combinations: one of content and summarizer, a range or a list
            "from_commit": st.none() | st.none() | hashes,
            "to_commit": st.none() | hashes,
            "commits": st.none() | st.none() | st.none() | st.lists(hashes, min_size=1, max_size=3),
            "content": text | text | st.none(),
            "summarizer": st.none() | st.none() | st.just(counting_summarizer),
            "target_tokens": st.none() | st.integers(1, 100),
            "preserve": st.none() | st.lists(hashes, max_size=2),
            "message": st.none() | text,
        },
        "compact_tool_results": {
            "keep_last": st.integers(0, 3),
            "min_tokens": st.integers(0, 20),
            "summarizer": st.none() | st.just(counting_summarizer),
        },
    }


def counting_summarizer(messages: list[Any], *, target_tokens: int | None = None) -> str:
    return f"{len(messages)} messages"


POSITIONAL = {"commit": 1, "annotate": 2, "record_usage": 1, "branch": 1, "switch": 1, "checkout": 1, "reset": 1,
              "merge": 1, "delete_branch": 1, "register_content_type": 2, "system": 1, "user": 1, "assistant": 1,
              "tool_result": 2, "commit_response": 1, "compress": 0, "compact_tool_results": 0}  # fmt: skip


def draw_call(data: st.DataObject, t: Tract, known: Known) -> tuple[str, dict[str, Any], Callable[[], Any]]:
    """A call of one writing method: valid arguments but for one (or all) drawn from anything at all."""
    method = data.draw(st.sampled_from(["commit", "commit", *sorted(POSITIONAL)]), label="method")
    specs = arguments(known)[method]
    hostile = data.draw(st.sampled_from([None, None, "all", *specs]), label="hostile argument")
    values = {
        name: data.draw(anything if hostile in (name, "all") else spec, label=name) for name, spec in specs.items()
    }
    names = list(specs)
    positional = [values[name] for name in names[: POSITIONAL[method]]]
    keywords = {name: values[name] for name in names[POSITIONAL[method] :]}
    return method, values, lambda: getattr(t, method)(*positional, **keywords)


def attempt(t: Tract, directory: Path, known: Known, data: st.DataObject, *, staged: bool) -> None:
    """One call: a TractError changes nothing at all; what succeeds is kept track of."""
    method, values, call = draw_call(data, t, known)
    before_bytes, before = log_bytes(directory), view_state(t)
    try:
        result = call()
    except TractError as error:
        event(f"{method}: {type(error).__name__}")
        assert log_bytes(directory) == before_bytes
        assert view_state(t) == before
        return
    event(f"{method}: accepted")
    if not staged:
        assert t.verify().ok
    if method == "register_content_type":
        known.registered[values["name"]] = values["model"]
    summary = getattr(result, "summary", None)  # a compression's
    commit_hash = (
        getattr(result, "commit_hash", None) or getattr(result, "head", None) or getattr(summary, "commit_hash", None)
    )
    if commit_hash is not None and commit_hash not in known.hashes:
        known.hashes.append(commit_hash)


class RolledBack(Exception):
    pass


@examples(30)
@given(data=st.data())
def test_every_writing_method_refuses_cleanly_or_round_trips(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("boundary") / "log"
    t = Tract.open(directory, sync="batch")
    first = t.commit(InstructionContent(text="be brief"))
    second = t.commit(user("question"), generation_config={"temperature": 0.5})
    t.branch("side", switch=False)
    known = Known([first.commit_hash, second.commit_hash], {"ticket": Ticket, "note": Note, "loose": Loose})
    for name, model in known.registered.items():
        t.register_content_type(name, model)
    analytics = data.draw(st.booleans(), label="analytics")
    if analytics:
        t.sql("SELECT count(*) FROM commits")  # the projection exists from here on, caught up at every query
    for _ in range(data.draw(st.integers(1, 5), label="calls")):
        if data.draw(st.booleans(), label="in a batch"):
            before_bytes, before = log_bytes(directory), view_state(t)
            roll_back = data.draw(st.booleans(), label="roll back")
            try:
                with t.batch():
                    for _ in range(data.draw(st.integers(1, 3), label="batched calls")):
                        attempt(t, directory, known, data, staged=True)
                    if roll_back:
                        raise RolledBack
            except RolledBack:
                assert log_bytes(directory) == before_bytes
                assert view_state(t) == before
        else:
            attempt(t, directory, known, data, staged=False)
    live_tables = table_rows(t) if analytics else None
    live = view_state(t)
    t.close()
    with Tract.open(directory) as reopened:
        for name, model in known.registered.items():
            reopened.register_content_type(name, model)
        assert reopened.verify().ok
        assert view_state(reopened) == live
        with reopened.replay() as replayed:
            assert view_state(replayed) == live
            assert live_tables is None or table_rows(replayed) == live_tables
    drop_index(directory)
    with Tract.open(directory, readonly=True) as folded:
        for name, model in known.registered.items():
            folded.register_content_type(name, model)
        assert view_state(folded) == live


def table_rows(t: Tract) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("commits", "config_records", "usage", "annotations", "ref_moves", "compressions")
    return {name: t.sql(f"SELECT * FROM {name} ORDER BY ALL").rows for name in tables}


def test_registered_types_holding_anything_are_refused_cleanly_or_read_back(log_dir: Path) -> None:
    """A registered model may declare any field type; what it holds must still be plain JSON to be stored."""
    t = Tract.open(log_dir, sync="batch")
    t.register_content_type("loose", Loose)
    t.commit(user("hello"))
    accepted: list[tuple[str, Any]] = []

    @examples(200)
    @given(value=anything)
    def run(value: Any) -> None:
        before_bytes, head = log_bytes(log_dir), t.head
        try:
            info = t.commit(Loose(value=value))
        except TractError:
            assert (log_bytes(log_dir), t.head) == (before_bytes, head)
            return
        assert info.content == {"content_type": "loose", "value": value}
        accepted.append((info.commit_hash, info.content))

    run()
    reopens_the_same(t, log_dir)
    with Tract.open(log_dir, readonly=True) as reopened:
        assert [(h, reopened.get_commit(h).content) for h, _ in accepted] == accepted  # type: ignore[union-attr]


@examples(40)
@given(data=st.data())
def test_opening_with_anything_refuses_cleanly_or_opens_a_tract_that_reads_back(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("open") / "log"
    with Tract.open(directory, sync="batch") as t:
        t.commit(user("hello"))
        default = view_state(t)
        expected = (t.tract_id, t.log(limit=None))
    before = log_bytes(directory)
    not_a_path = anything.filter(lambda value: not isinstance(value, str))  # a string names a real place
    strange_paths = st.sampled_from(
        [str(directory) + "\0", str(directory.parent / "a\ud800"), directory.parent / "b\udc80"]
    )
    constructed_config = st.builds(lambda e: TractConfig.model_construct(tokenizer_encoding=e), anything)
    valid = {
        "tract_id": st.none() | st.sampled_from(["other", ""]) | st.text(max_size=12),
        "config": st.none() | st.just(TractConfig(tokenizer_encoding="cl100k_base")),
        "tokenizer": st.none() | st.builds(NullTokenCounter) | st.builds(CountingBadly, st.integers(0, 3) | anything),
        "sync": st.sampled_from(["always", "batch"]),
        "readonly": st.booleans(),
    }
    hostile = data.draw(st.sampled_from([None, None, None, "all", "path", *valid]), label="hostile argument")
    unchecked = {"config": anything | constructed_config}
    kwargs = {
        name: data.draw(unchecked.get(name, anything) if hostile in (name, "all") else spec, label=name)
        for name, spec in valid.items()
    }
    paths = not_a_path | strange_paths if hostile in ("path", "all") else st.sampled_from([directory, str(directory)])
    path = data.draw(paths, label="path")
    try:
        opened = Tract.open(path, **kwargs)
    except TractError as error:
        event(f"open: {type(error).__name__}")
        assert log_bytes(directory) == before
    else:
        event("open: accepted")
        with opened:
            if not opened.readonly:
                try:
                    opened.commit(user("from the new opener"))
                except TractError as error:
                    event(f"commit: {type(error).__name__}")
            state = (opened.tract_id, opened.log(limit=None), opened.chain_head)
            assert opened.verify().ok
        if isinstance(path, (str, Path)) and opened.readonly is False:
            with Tract.open(path, tract_id=opened.tract_id) as again:
                assert (again.tract_id, again.log(limit=None), again.chain_head) == state
            if state[0] == expected[0]:
                expected = state[:2]
    with Tract.open(directory) as reopened:
        assert reopened.verify().ok
        assert (reopened.tract_id, reopened.log(limit=None)) == expected
        if expected[1] == default[3]:
            assert view_state(reopened)[:9] == default[:9]  # as it was (only the chain head may have moved on)


FREE_FIELDS = {"message", "reason", "metadata", "generation_config", "content", "tokenizer", "token_count",
               "created_at", "prompt_tokens", "completion_tokens", "total_tokens", "priority", "operation"}  # fmt: skip
RECORD_FIELDS = ("position", "batch_end", "prev_hash", "record_hash")
json_text = st.one_of(
    json_values.map(json.dumps),
    st.integers().map(str),
    st.sampled_from([
        "1e400", "-1e400", "NaN", "Infinity", '"\\ud800"', '"x\\udfff"', "18446744073709551615", "18446744073709551616",
        '"2024-05-01T12:00:00"', '"2024-05-01T17:00:00+05:00"', '"2024-05-01T12:00:00Z"', "[]", "{}", "true", "-1",
        '{"content_type": "dialogue", "role": "user", "text": "q?", "name": null}', '"' + "x" * 5000 + '"',
    ]),
)  # fmt: skip


@examples(30)
@given(data=st.data())
def test_importing_a_hostile_export_refuses_cleanly_or_rebuilds_it(
    exported: list[bytes],
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = list(exported)
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    record = json.loads(lines[index])
    places = [(record, key) for key in RECORD_FIELDS] + [
        (record["event"], key) for key in record["event"] if key in FREE_FIELDS
    ]
    container, key = data.draw(st.sampled_from([None, *places]), label="field") or (None, None)
    if container is not None:
        container[key] = "__hostile__"
        lines[index] = json.dumps(record).replace('"__hostile__"', data.draw(json_text, label="value")).encode()
        if data.draw(st.sampled_from([True, True, False]), label="rehash"):
            lines = rehashed(lines, index)
    workspace = tmp_path_factory.mktemp("import")
    export, target = workspace / "export.jsonl", workspace / "imported" / "log"
    export.write_bytes(b"\n".join(lines))
    code, err = import_cli(export, target, capsys)
    if code != 0:
        event("import: refused")
        assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (workspace / "imported").exists() or list((workspace / "imported").iterdir()) == []
        return
    event("import: accepted")
    assert events.verify(target).ok
    with Tract.open(target, readonly=True) as imported:
        again = target.parent / "again.jsonl"
        with open(again, "wb") as out:
            imported.export_jsonl(out)
        state = view_state(imported)
        with imported.replay() as replayed:
            assert view_state(replayed) == state
    decode = msgspec.json.Decoder(ExportedRecord).decode
    assert [decode(line) for line in again.read_bytes().splitlines()] == [decode(line) for line in lines]

"""Hostile input: whatever a caller (or a damaged disk) throws at tract, it either
refuses it with a clear `TractError` and leaves everything exactly as it was, or
accepts it and hands back exactly what went in.

After every refused attempt the log verifies, HEAD and every earlier commit are
unchanged and `events.log` is byte for byte the same. Accepted input round-trips
through `get_commit`, `compile`, a reopen and `replay`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import sys
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import events
from events.tract_index import CATALOGUE_FILE, INDEX_DIR
from tract import (
    ContentValidationError,
    DialogueContent,
    FreeformContent,
    InstructionContent,
    InvalidJSONError,
    LogFormatError,
    Priority,
    QueryError,
    RecordTooLargeError,
    ToolIOContent,
    Tract,
    TractError,
    UsageError,
)

import logcraft
from properties import examples

U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
ANALYTICS_TABLES = ("commits", "config_records", "usage", "annotations")


# -- helpers ---------------------------------------------------------------------


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def log_bytes(directory: Path) -> bytes:
    return (directory / "events.log").read_bytes()


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def is_plain_json(value: Any) -> bool:
    """The README's rule for configs, metadata and payloads, written independently of the library."""
    if value is None or type(value) is bool:
        return True
    if type(value) is int:
        return I64_MIN <= value <= U64_MAX
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is str:
        return not has_surrogate(value)
    if type(value) is list:
        return all(is_plain_json(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and not has_surrogate(k) and is_plain_json(v) for k, v in value.items())
    return False


def exact(value: Any) -> Any:
    """A form where 1 != 1.0 != True and -0.0 != 0.0, for "round-trips exactly"."""
    if type(value) is dict:
        return ("dict", sorted((k, exact(v)) for k, v in value.items()))
    if type(value) is list:
        return ("list", [exact(v) for v in value])
    if type(value) is float:
        return ("float", value.hex())
    return (type(value).__name__, value)


class Before:
    """Everything a refused attempt must leave exactly as it was."""

    def __init__(self, t: Tract, directory: Path | None) -> None:
        self.directory = directory
        self.bytes = log_bytes(directory) if directory is not None else None
        self.head = t.head
        self.log = t.log(limit=None)
        self.chain_head = t.chain_head

    def assert_unchanged(self, t: Tract) -> None:
        if self.directory is not None:
            assert log_bytes(self.directory) == self.bytes, "a refused attempt changed events.log"
        assert t.head == self.head
        assert t.log(limit=None) == self.log
        assert t.chain_head == self.chain_head
        report = t.verify()
        assert report.ok, report.problem


def refused(
    t: Tract, directory: Path | None, attempt: Any, expected: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException:
    before = Before(t, directory)
    with pytest.raises(expected) as caught:
        attempt()
    assert isinstance(caught.value, TractError)
    assert str(caught.value).strip(), "the error should say what is wrong"
    before.assert_unchanged(t)
    return caught.value


def view_of(compiled: Any) -> tuple[Any, ...]:
    return (
        [(m.role, m.content, m.name) for m in compiled.messages],
        compiled.token_count,
        compiled.token_source,
        list(compiled.commit_hashes),
        [exact(c) for c in compiled.generation_configs],
    )


def table_rows(t: Tract) -> dict[str, list[tuple[Any, ...]]]:
    return {name: t.sql(f"SELECT * FROM {name} ORDER BY ALL").rows for name in (*ANALYTICS_TABLES, "projection_state")}


# -- 1. content dicts ---------------------------------------------------------------

BIG_TEXT = "lorem ipsum dolor sit amet, ünïcödé 数据 🙂\n" * 25_000  # ~1.2 MB
REQUIRED = object()
STR, OPT_STR, JSON_OBJ = "str", "opt_str", "json_obj"
SCHEMAS: dict[str, dict[str, tuple[Any, Any]]] = {
    "instruction": {"text": (STR, REQUIRED)},
    "dialogue": {"role": (("user", "assistant", "system"), REQUIRED), "text": (STR, REQUIRED), "name": (OPT_STR, None)},
    "tool_io": {
        "tool_name": (STR, REQUIRED),
        "direction": (("call", "result"), REQUIRED),
        "payload": (JSON_OBJ, REQUIRED),
        "status": (("success", "error", None), None),
    },
    "reasoning": {"text": (STR, REQUIRED)},
    "artifact": {"artifact_type": (STR, REQUIRED), "content": (STR, REQUIRED), "language": (OPT_STR, None)},
    "output": {"text": (STR, REQUIRED), "format": (("text", "markdown", "json"), "text")},
    "freeform": {"payload": (JSON_OBJ, REQUIRED)},
}
ROLES = {"instruction": "system", "tool_io": "tool"}

HOSTILE_STRINGS = [
    "\ud800",
    "a\udfffb",
    "\udc00\ud800",
    "\x00",
    "nul\x00inside",
    "'; DROP TABLE commits; --",
    "${jndi:x}",
    "../../etc/passwd",
    "~/.ssh",
    "\u202eevil",
    "\uffff\ufffe",
    "\U0010ffff",
    "\r\n\t\x0b\x0c",
    "",
]


class Unhashable:
    __hash__ = None  # type: ignore[assignment]


POISON: list[Any] = [
    set(),
    {1, 2},
    frozenset({"a"}),
    (1, 2),
    (),
    object(),
    Unhashable(),
    float("nan"),
    float("inf"),
    -float("inf"),
    b"bytes",
    bytearray(b"x"),
    2**64,
    I64_MIN - 1,
    10**40,
    complex(1, 2),
    Decimal("1.5"),
    datetime(2020, 1, 1, tzinfo=timezone.utc),
    {1: "int key"},
    {None: "none key"},
    {("t",): "tuple key"},
    {True: "bool key"},
    {"\ud800": "surrogate key"},
    {"ok": {"a\udfffb": 1}},
    range(3),
    Ellipsis,
    print,
    ["\ud800"],
    [1, {2, 3}],
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=I64_MIN, max_value=U64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

hostile_keys = (
    st.text(max_size=6) | st.sampled_from(["\ud800", "a\udfffb", "", "\x00", "."]) | st.integers() | st.none()
)
hostile_leaves = json_scalars | st.sampled_from(POISON + HOSTILE_STRINGS) | st.binary(max_size=4)
hostile_trees = st.recursive(
    hostile_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(hostile_keys, children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=10,
)
hostile_objects = st.dictionaries(hostile_keys, hostile_trees, max_size=4)


def valid_value(kind: Any) -> st.SearchStrategy[Any]:
    if kind == STR:
        return st.text(max_size=40) | st.sampled_from(["", "naïve 🙂", "a\x00b", "'; DROP TABLE commits; --"])
    if kind == OPT_STR:
        return st.none() | st.text(max_size=20)
    if kind == JSON_OBJ:
        return json_objects
    return st.sampled_from(kind)


hostile_field_values = (
    hostile_trees
    | st.sampled_from(HOSTILE_STRINGS)
    | st.binary(max_size=6)
    | st.binary(max_size=6).map(bytearray)
    | st.integers()
    | st.floats()
    | hostile_objects
)


@st.composite
def hostile_content(draw: st.DrawFn) -> Any:
    content_type = draw(st.sampled_from(sorted(SCHEMAS)))
    schema = SCHEMAS[content_type]
    content: dict[Any, Any] = {"content_type": content_type}
    for field, (kind, default) in schema.items():
        if default is REQUIRED or draw(st.booleans()):
            content[field] = draw(valid_value(kind))
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["replace", "replace", "delete", "extra", "content_type", "whole"]))
        if mutation == "replace":
            content[draw(st.sampled_from(sorted(schema)))] = draw(hostile_field_values)
        elif mutation == "delete" and content:
            del content[draw(st.sampled_from(sorted(content, key=repr)))]
        elif mutation == "extra":
            content[draw(hostile_keys)] = draw(hostile_trees)
        elif mutation == "content_type":
            content["content_type"] = draw(st.sampled_from([*SCHEMAS, "nope", "", 5, None, b"dialogue", "DIALOGUE"]))
        elif mutation == "whole":
            return draw(st.sampled_from([None, "text", 5, [content], (), b"{}", set()]))
    return content


def classify(content: Any) -> tuple[str, dict[str, Any] | None]:
    """("accept" | "refuse" | "either", the content get_commit must return if accepted).

    "either" is pydantic's documented lax coercion of bytes into a str field:
    refusing is fine, accepting must store the decoded text.
    """
    if type(content) is not dict:
        return "refuse", None
    content_type = content.get("content_type")
    if type(content_type) is not str or content_type not in SCHEMAS:
        return "refuse", None
    schema = SCHEMAS[content_type]
    if any(key != "content_type" and key not in schema for key in content):
        return "refuse", None
    expected: dict[str, Any] = {"content_type": content_type}
    lax = False
    for field, (kind, default) in schema.items():
        if field not in content:
            if default is REQUIRED:
                return "refuse", None
            expected[field] = default
            continue
        verdict, value = _check_field(kind, content[field])
        if verdict == "refuse":
            return "refuse", None
        lax = lax or verdict == "either"
        expected[field] = value
    return ("either" if lax else "accept"), expected


def _check_field(kind: Any, value: Any) -> tuple[str, Any]:
    if kind == JSON_OBJ:
        return ("accept", value) if type(value) is dict and is_plain_json(value) else ("refuse", None)
    if isinstance(kind, tuple):
        if value is None or type(value) is str:
            return ("accept", value) if value in kind else ("refuse", None)
        text = _utf8(value) if isinstance(value, (bytes, bytearray)) else None
        return ("either", text) if text is not None and text in kind else ("refuse", None)
    if kind == OPT_STR and value is None:
        return "accept", None
    if type(value) is str:
        return ("refuse", None) if has_surrogate(value) else ("accept", value)
    if isinstance(value, (bytes, bytearray)) and _utf8(value) is not None:
        return "either", value.decode()
    return "refuse", None


def _utf8(raw: bytes | bytearray) -> str | None:
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError:
        return None


def check_compiled_last(t: Tract, expected: dict[str, Any]) -> None:
    """The new commit is the last compiled message, rendered as the README's table says."""
    compiled = t.compile()
    message = compiled.messages[-1]
    content_type = expected["content_type"]
    if content_type == "dialogue":
        assert (message.role, message.content, message.name) == (expected["role"], expected["text"], expected["name"])
        return
    assert message.role == ROLES.get(content_type, "assistant")
    if content_type in ("tool_io", "freeform"):
        body = {k: v for k, v in expected.items() if k != "content_type"}
        assert exact(json.loads(message.content)) == exact(body)
        if content_type == "tool_io":
            assert message.name == expected["tool_name"]
    else:
        assert message.content == expected.get("text", expected.get("content"))


def attempt_content(t: Tract, directory: Path, content: Any) -> None:
    verdict, expected = classify(content)
    before = Before(t, directory)
    try:
        info = t.commit(content)
    except TractError as error:
        assert verdict != "accept", f"valid content {content!r:.300} was refused: {error}"
        assert isinstance(error, (ContentValidationError, InvalidJSONError)), type(error)
        assert str(error).strip()
        before.assert_unchanged(t)
        return
    assert verdict != "refuse", f"invalid content {content!r:.300} was accepted and stored as {info.content!r:.300}"
    assert expected is not None
    stored = t.get_commit(info.commit_hash)
    assert stored is not None
    assert exact(info.content) == exact(expected), f"stored {info.content!r:.300}, given {content!r:.300}"
    assert exact(stored.content) == exact(expected)
    assert t.head == info.commit_hash
    assert t.log(limit=None)[1:] == before.log, "an accepted commit changed earlier commits"
    check_compiled_last(t, expected)
    assert t.verify().ok


def test_hostile_content_dicts_are_refused_cleanly_or_round_trip(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(InstructionContent(text="system prompt"))

        @examples(150)
        @given(content=hostile_content())
        def run(content: Any) -> None:
            attempt_content(t, directory, content)

        run()
        survivors = t.log(limit=None)
        compiled = view_of(t.compile())
    with Tract.open(directory) as reopened:
        assert reopened.log(limit=None) == survivors
        assert view_of(reopened.compile()) == compiled
        assert view_of(reopened.replay().compile()) == compiled


REFUSED_CONTENT = [
    pytest.param({"content_type": "dialogue", "role": "user", "text": 5}, ContentValidationError, id="int-text"),
    pytest.param({"content_type": "dialogue", "role": "user", "text": None}, ContentValidationError, id="none-text"),
    pytest.param({"content_type": "dialogue", "role": "user", "text": ["a"]}, ContentValidationError, id="list-text"),
    pytest.param({"content_type": "dialogue", "role": "user", "text": {"a"}}, ContentValidationError, id="set-text"),
    pytest.param(
        {"content_type": "dialogue", "role": "user", "text": b"\xff\xfe"}, ContentValidationError, id="non-utf8-bytes"
    ),
    pytest.param({"content_type": "dialogue", "role": "tool", "text": "x"}, ContentValidationError, id="bad-role"),
    pytest.param({"content_type": "dialogue", "role": "user"}, ContentValidationError, id="missing-text"),
    pytest.param({"content_type": "dialogue", "text": "x"}, ContentValidationError, id="missing-role"),
    pytest.param(
        {"content_type": "dialogue", "role": "user", "text": "x", "extra": 1}, ContentValidationError, id="extra-field"
    ),
    pytest.param(
        {"content_type": "dialogue", "role": "user", "text": "x", 1: "a"}, ContentValidationError, id="non-str-top-key"
    ),
    pytest.param({"role": "user", "text": "x"}, ContentValidationError, id="no-content-type"),
    pytest.param({"content_type": 5}, ContentValidationError, id="int-content-type"),
    pytest.param({"content_type": "nope"}, ContentValidationError, id="unknown-content-type"),
    pytest.param(
        {"content_type": "dialogue", "role": "user", "text": "\ud800"}, InvalidJSONError, id="lone-surrogate-text"
    ),
    pytest.param(
        {"content_type": "instruction", "text": "ok \udfff"}, InvalidJSONError, id="lone-surrogate-instruction"
    ),
    pytest.param({"content_type": "freeform", "payload": {"a": {1, 2}}}, ContentValidationError, id="set-in-payload"),
    pytest.param({"content_type": "freeform", "payload": {"a": (1, 2)}}, ContentValidationError, id="tuple-in-payload"),
    pytest.param({"content_type": "freeform", "payload": {"a": b"x"}}, ContentValidationError, id="bytes-in-payload"),
    pytest.param(
        {"content_type": "freeform", "payload": {"a": object()}}, ContentValidationError, id="object-in-payload"
    ),
    pytest.param(
        {"content_type": "freeform", "payload": {"a": float("nan")}}, ContentValidationError, id="nan-in-payload"
    ),
    pytest.param(
        {"content_type": "freeform", "payload": {"a": [float("inf")]}}, ContentValidationError, id="inf-in-payload"
    ),
    pytest.param({"content_type": "freeform", "payload": {1: "a"}}, ContentValidationError, id="int-key-in-payload"),
    pytest.param(
        {"content_type": "freeform", "payload": {"a": {None: 1}}}, ContentValidationError, id="none-key-nested"
    ),
    pytest.param({"content_type": "freeform", "payload": {"a": 2**64}}, InvalidJSONError, id="int-beyond-64-bits"),
    pytest.param({"content_type": "freeform", "payload": {"a": I64_MIN - 1}}, InvalidJSONError, id="int-below-64-bits"),
    pytest.param({"content_type": "freeform", "payload": {"a": "\ud800"}}, InvalidJSONError, id="lone-surrogate-value"),
    pytest.param({"content_type": "freeform", "payload": [1]}, ContentValidationError, id="list-payload"),
    pytest.param(
        {"content_type": "tool_io", "tool_name": "t", "direction": "call", "payload": '{"a": 1}'},
        ContentValidationError,
        id="json-string-payload",
    ),
    pytest.param(
        {"content_type": "tool_io", "tool_name": "t", "direction": "sideways", "payload": {}},
        ContentValidationError,
        id="bad-direction",
    ),
    pytest.param({"content_type": "output", "text": "x", "format": None}, ContentValidationError, id="none-format"),
    pytest.param(None, ContentValidationError, id="none"),
    pytest.param("just a string", ContentValidationError, id="str"),
    pytest.param([("content_type", "dialogue")], ContentValidationError, id="list-of-pairs"),
]


@pytest.mark.parametrize(("content", "error"), REFUSED_CONTENT)
def test_invalid_content_gets_a_clear_error_and_writes_nothing(
    tmp_path: Path, content: Any, error: type[TractError]
) -> None:
    with Tract.open(tmp_path / "log") as t:
        t.commit(InstructionContent(text="sys"))
        first = t.commit(user("q"), generation_config={"model": "m"})
        refused(t, tmp_path / "log", lambda: t.commit(content), error)
        assert t.head == first.commit_hash
        assert [m.content for m in t.compile().messages] == ["sys", "q"]


def test_invalid_model_instances_are_refused_too(tmp_path: Path) -> None:
    """Models built by the caller (already validated by pydantic) still meet the log's rules."""
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"))
        refused(t, directory, lambda: t.commit(user("\ud800")), InvalidJSONError)
        refused(
            t,
            directory,
            lambda: t.commit(ToolIOContent(tool_name="x\udc00", direction="call", payload={})),
            InvalidJSONError,
        )
        refused(t, directory, lambda: t.commit(FreeformContent(payload={"n": 2**64})), InvalidJSONError)
        refused(t, directory, lambda: t.commit(FreeformContent(payload={"s": ["ok", "\udfff"]})), InvalidJSONError)


def test_lone_surrogate_in_payload_key_is_refused_not_silently_rewritten(tmp_path: Path) -> None:
    """A payload key with a lone surrogate cannot be stored as given: refuse it, never store another key."""
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"))
        for content in (
            {"content_type": "freeform", "payload": {"\ud800": 1}},
            {"content_type": "freeform", "payload": {"ok": [{"a\udfffb": "v"}]}},
            {"content_type": "tool_io", "tool_name": "t", "direction": "call", "payload": {"\udc00": None}},
            FreeformContent(payload={"\ud800": 1}),
        ):
            before = Before(t, directory)
            try:
                info = t.commit(content)
            except TractError:
                before.assert_unchanged(t)
            else:
                pytest.fail(f"accepted and stored the payload as {info.content['payload']!r} instead of refusing it")


ACCEPTED_CONTENT = [
    pytest.param({"content_type": "dialogue", "role": "user", "text": "a\x00b"}, id="nul-char"),
    pytest.param({"content_type": "dialogue", "role": "user", "text": ""}, id="empty-text"),
    pytest.param(
        {"content_type": "dialogue", "role": "assistant", "text": "x", "name": "'; DROP TABLE commits; --"},
        id="sql-name",
    ),
    pytest.param({"content_type": "reasoning", "text": "\U0010ffff\uffff\u202e 🙂 数据"}, id="astral-unicode"),
    pytest.param({"content_type": "instruction", "text": BIG_TEXT}, id="big-text"),
    pytest.param(
        {
            "content_type": "freeform",
            "payload": {"n": U64_MAX, "m": I64_MIN, "f": -0.0, "tiny": 5e-324, "big": 1.7976931348623157e308},
        },
        id="extreme-numbers",
    ),
    pytest.param({"content_type": "freeform", "payload": {"": {"~": {"/": {".": {"$": None}}}}}}, id="odd-keys"),
    pytest.param(
        {"content_type": "tool_io", "tool_name": "x", "direction": "result", "payload": {"text": 1}, "status": "error"},
        id="tool-result",
    ),
    pytest.param(
        {"content_type": "artifact", "artifact_type": "code", "content": "print('hi')", "language": None}, id="artifact"
    ),
    pytest.param({"content_type": "output", "text": "{}", "format": "json"}, id="output-json"),
]


@pytest.mark.parametrize("content", ACCEPTED_CONTENT)
def test_valid_edge_content_round_trips(tmp_path: Path, content: dict[str, Any]) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("first"))
        attempt_content(t, directory, content)
        info = t.log(limit=1)[0]
        compiled = view_of(t.compile())
    with Tract.open(directory) as reopened:
        assert exact(reopened.get_commit(info.commit_hash).content) == exact(info.content)  # type: ignore[union-attr]
        assert view_of(reopened.compile()) == compiled


def nested(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def nested_lists(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_deeply_nested_payloads_round_trip_or_are_refused_cleanly(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"))
        deep = {"content_type": "freeform", "payload": nested(210)}
        deep_lists = {"content_type": "freeform", "payload": {"l": nested_lists(200)}}
        deep_config = nested(200, leaf=0.5)
        info = t.commit(deep, generation_config=deep_config, metadata={"m": nested(200)})
        lists = t.commit(deep_lists)
        assert t.get_commit(info.commit_hash).content == deep  # type: ignore[union-attr]
        assert t.get_commit(info.commit_hash).generation_config == deep_config  # type: ignore[union-attr]
        assert t.get_commit(lists.commit_hash).content == deep_lists  # type: ignore[union-attr]
        compiled = view_of(t.compile())
        assert json.loads(t.compile().messages[-2].content) == {"payload": deep["payload"]}
        path = ".".join(["k"] * 200)
        assert [c.commit_hash for c in t.query_by_config(path, "=", 0.5)] == [info.commit_hash]
        # far too deep (and a recursion bomb) is a clear error, not a RecursionError
        for depth in (300, 5_000, 50_000):
            refused(
                t,
                directory,
                lambda depth=depth: t.commit({"content_type": "freeform", "payload": nested(depth)}),
                (ContentValidationError, InvalidJSONError),
            )
            refused(
                t, directory, lambda depth=depth: t.commit(user("x"), generation_config=nested(depth)), InvalidJSONError
            )
            refused(
                t,
                directory,
                lambda depth=depth: t.commit(user("x"), metadata={"a": nested_lists(depth)}),
                InvalidJSONError,
            )
    with Tract.open(directory) as reopened:
        assert reopened.get_commit(info.commit_hash).content == deep  # type: ignore[union-attr]
        assert view_of(reopened.compile()) == compiled
        assert view_of(reopened.replay().compile()) == compiled
    shutil.rmtree(directory / INDEX_DIR)  # a cold open: the log alone, read from its first record
    with Tract.open(directory, readonly=True) as cold:
        assert view_of(cold.compile()) == compiled


# -- 2. generation_config and metadata ------------------------------------------------------


def test_any_json_config_and_metadata_round_trip_exactly(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    expected: list[tuple[str, Any, Any, list[Any]]] = []
    with Tract.open(directory) as t:

        @examples(60)
        @given(config=json_objects, metadata=json_objects | st.none(), later=st.none() | json_objects)
        def run(config: dict[str, Any], metadata: dict[str, Any] | None, later: dict[str, Any] | None) -> None:
            info = t.commit(user("q"), generation_config=config, metadata=metadata)
            assert exact(info.generation_config) == exact(config)
            assert exact(info.metadata) == exact(metadata)
            history = [config]
            if later is not None:
                t.record_usage({"prompt_tokens": 1, "completion_tokens": 2}, generation_config=later)
                history.append(later)
            effective = history[-1]
            stored = t.get_commit(info.commit_hash)
            assert stored is not None
            assert exact(stored.generation_config) == exact(effective)
            assert exact(stored.metadata) == exact(metadata)
            assert [exact(r.generation_config) for r in t.config_history(info.commit_hash)] == [
                exact(c) for c in history
            ]
            assert exact(t.compile().generation_configs[-1]) == exact(effective)
            expected.append((info.commit_hash, effective, metadata, history))

        run()
        live = view_of(t.compile())
        assert t.verify().ok
    with Tract.open(directory) as reopened:
        for commit_hash, effective, metadata, history in expected:
            stored = reopened.get_commit(commit_hash)
            assert stored is not None
            assert exact(stored.generation_config) == exact(effective)
            assert exact(stored.metadata) == exact(metadata)
            assert [exact(r.generation_config) for r in reopened.config_history(commit_hash)] == [
                exact(c) for c in history
            ]
        assert view_of(reopened.compile()) == live
        assert view_of(reopened.replay().compile()) == live
        # the analytics projection holds the same JSON
        rows = dict(reopened.sql("SELECT commit_hash, generation_config FROM commits").rows)
        for commit_hash, effective, _, _ in expected:
            assert exact(json.loads(rows[commit_hash])) == exact(effective)


@st.composite
def poisoned_json(draw: st.DrawFn) -> Any:
    """A JSON object with one thing in it that is not plain JSON, somewhere."""
    poison = draw(
        st.sampled_from([*POISON, "\ud800", "x\udfff"])
        | st.integers(min_value=U64_MAX + 1)
        | st.integers(max_value=I64_MIN - 1)
    )
    if draw(st.integers(0, 9)) == 0:
        return (
            draw(st.sampled_from([[1], "text", 5, (), {"a", "b"}, [("a", 1)], b"{}"]))
            if draw(st.booleans())
            else poison
        )
    base = draw(json_objects)
    where: Any = base
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.text(max_size=4))
        inner = draw(st.sampled_from(["dict", "list"]))
        child: Any = {} if inner == "dict" else []
        if isinstance(where, dict):
            where[key] = child
        else:
            where.append(child)
        where = child
    if isinstance(where, dict):
        if draw(st.booleans()) and isinstance(poison, (str, int)) and not isinstance(poison, bool):
            where[poison] = "poisoned key"
        else:
            where[draw(st.text(max_size=4))] = poison
    else:
        where.append(poison)
    return base


def test_non_json_config_or_metadata_raises_invalid_json_and_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        first = t.commit(user("q"), generation_config={"model": "m"})
        t.sql("SELECT 1")

        @examples(150)
        @given(config=poisoned_json(), slot=st.sampled_from(["generation_config", "metadata", "record_usage"]))
        def run(config: Any, slot: str) -> None:
            assert not (isinstance(config, dict) and is_plain_json(config))
            if slot == "record_usage":
                attempt = lambda: t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config=config)  # noqa: E731
            else:
                attempt = lambda: t.commit(user("x"), **{slot: config})  # noqa: E731
            error = refused(t, directory, attempt, InvalidJSONError)
            assert isinstance(error, ValueError)

        run()
        assert t.head == first.commit_hash
        assert t.compile().api_usage is None, "usage was recorded although its config was refused"
        assert t.get_commit(first.commit_hash).generation_config == {"model": "m"}  # type: ignore[union-attr]
        assert t.sql("SELECT count(*) FROM config_records").rows == [(1,)]
        assert t.sql("SELECT count(*) FROM usage").rows == [(0,)]


# -- 3. usage dicts ------------------------------------------------------------------------

SHAPES = (
    ("prompt_tokens", "completion_tokens", "total_tokens"),
    ("input_tokens", "output_tokens", "total_tokens"),
    ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"),
)
USAGE_KEYS = sorted({key for shape in SHAPES for key in shape})
usage_values = (
    st.integers(0, 10**6)
    | st.integers(0, 10**6)
    | st.integers(-5, -1)
    | st.integers(2**62, 2**66)
    | st.booleans()
    | st.floats()
    | st.text(max_size=3)
    | st.none()
    | st.lists(st.integers(0, 3), max_size=2)
)
usage_keys = st.sampled_from(USAGE_KEYS) | st.sampled_from(USAGE_KEYS) | st.text(max_size=6) | st.integers() | st.none()
usage_inputs = st.dictionaries(usage_keys, usage_values, max_size=6) | st.sampled_from(
    [None, [], "usage", 5, (("prompt_tokens", 1),)]
)


BIGINT_MAX = 2**63 - 1


def valid_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def storable(usage: Mapping[Any, Any], shape: tuple[str, str, str]) -> bool:
    """Non-negative ints that fit the usage table's BIGINT columns, total included."""
    prompt, completion, total = usage[shape[0]], usage[shape[1]], usage.get(shape[2])
    counts = [prompt, completion] + ([total] if total is not None else [])
    if not all(valid_count(c) and c <= BIGINT_MAX for c in counts):
        return False
    return total is not None or prompt + completion <= BIGINT_MAX


def usage_events(t: Tract) -> list[Any]:
    return [e.event for e in t.events(types="UsageRecorded")]


BAD_CONFIG = {"bad": {1, 2}}


def test_random_usage_is_recorded_exactly_or_refused_with_usage_error(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"), generation_config={"model": "planned"})

        @examples(150)
        @given(usage=usage_inputs, config=st.none() | st.just({"model": "served"}) | st.just(BAD_CONFIG))
        def run(usage: Any, config: Any) -> None:
            before = Before(t, directory)
            recorded = usage_events(t)
            configs = len(t.config_history(t.head))  # type: ignore[arg-type]
            complete = [s for s in SHAPES if isinstance(usage, Mapping) and s[0] in usage and s[1] in usage]
            must_accept = bool(complete) and all(storable(usage, s) for s in complete) and config is not BAD_CONFIG
            try:
                t.record_usage(usage, generation_config=config)
            except UsageError as error:
                assert not must_accept, f"refused valid usage {usage!r}: {error}"
                message = str(error)
                if not complete:
                    assert "unrecognised" in message or "usage must be" in message, message
                else:
                    assert "integer" in message, message
                before.assert_unchanged(t)
                return
            except InvalidJSONError:
                assert config is BAD_CONFIG
                before.assert_unchanged(t)
                return
            # accepted: one usage event (and the config, if any), with the values of a complete shape
            assert config is not BAD_CONFIG, "usage with a non-JSON config was recorded"
            new = usage_events(t)
            assert len(new) == len(recorded) + 1
            assert len(t.config_history(t.head)) == configs + (config is not None)  # type: ignore[arg-type]
            event = new[-1]
            matching = [
                s
                for s in complete
                if all(valid_count(usage[key]) for key in s[:2])
                and (usage.get(s[2]) is None or valid_count(usage[s[2]]))
                and (event.prompt_tokens, event.completion_tokens) == (usage[s[0]], usage[s[1]])
                and event.total_tokens == (usage[s[2]] if usage.get(s[2]) is not None else usage[s[0]] + usage[s[1]])
            ]
            assert matching, f"recorded {event} from {usage!r}"
            api = t.compile().api_usage
            assert api is not None and (api.prompt_tokens, api.completion_tokens) == (
                event.prompt_tokens,
                event.completion_tokens,
            )
            assert t.verify().ok
            # the analytics projection takes the recorded usage too, and keeps working
            last = t.sql(
                "SELECT prompt_tokens, completion_tokens, total_tokens FROM usage ORDER BY position DESC LIMIT 1"
            ).rows
            assert last == [(event.prompt_tokens, event.completion_tokens, event.total_tokens)]
            if config is not None:
                assert t.get_commit(t.head).generation_config == config  # type: ignore[arg-type, union-attr]

        run()


def test_usage_with_non_string_keys_raises_usage_error(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"))
        refused(t, directory, lambda: t.record_usage({1: 2, "prompt": 3}), UsageError)  # type: ignore[dict-item]
        refused(t, directory, lambda: t.record_usage({None: 1, ("a",): 2}), UsageError)  # type: ignore[dict-item]


def test_usage_counts_beyond_64_bits_raise_usage_error(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"))
        refused(t, directory, lambda: t.record_usage({"prompt_tokens": 2**64, "completion_tokens": 0}), UsageError)
        # each count fits, their default total does not
        refused(t, directory, lambda: t.record_usage({"input_tokens": 2**63, "output_tokens": 2**63}), UsageError)


def test_accepted_usage_never_breaks_the_analytics(tmp_path: Path) -> None:
    """2**63 fits the log's uint64 but not the usage table's BIGINT: refuse it, or keep sql() working."""
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        t.commit(user("q"), generation_config={"temperature": 0.9})
        assert t.sql("SELECT count(*) FROM usage").rows == [(0,)]
        with pytest.raises(UsageError):  # past a signed 64-bit count: refused, nothing written
            t.record_usage({"prompt_tokens": 2**63, "completion_tokens": 1, "total_tokens": 2**63 + 1})
        biggest = 2**63 - 1
        t.record_usage({"prompt_tokens": biggest - 1, "completion_tokens": 1, "total_tokens": biggest})
        assert t.sql("SELECT prompt_tokens, total_tokens FROM usage").rows == [(biggest - 1, biggest)]
        assert t.verify().ok
        assert len(t.query_by_config("temperature", ">", 0.5)) == 1
        assert t.sql("SELECT count(*) FROM commits").rows == [(1,)]


def test_usage_without_any_commit_is_a_usage_error(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        refused(t, directory, lambda: t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}), UsageError)


# -- 4. query_by_config fields and values ---------------------------------------------------------

MISSING = object()
LONG_KEY = "k" * 10_000
QUERY_CORPUS: list[dict[str, Any] | None] = [
    {"temperature": 0.84, "model": "gpt-4o", "extra": {"reasoning": {"effort": "high"}}},
    {"temperature": 0.8, "model": "o3", "extra": {"reasoning": {"effort": "low"}}},
    {"temperature": 1e-9, "model": None},
    {"temperature": 1, "model": 1},
    {"temperature": "hot"},
    {"temperature": None},
    {"temperature": True},
    {"temperature": False},
    {"temperature": [0.8]},
    {"temperature": {"value": 0.8}},
    {"n": U64_MAX},
    {"n": I64_MIN},
    {"n": 2**53 + 1},
    {"n": -0.0},
    {"n": 5e-324},
    {"n": 1.7976931348623157e308},
    {"a/b": 1, "a~b": 2, "~0": 3, "~1": "tilde-one", "a": {"b": "nested", "/": "slash"}},
    {"'; DROP TABLE commits; --": "'; DROP TABLE commits; --", "$": "$", "$.model": 1, "*": 2, " ": " ", "": "empty"},
    {'q"uote': "it's", "back\\slash": "\\", "nul\x00key": "nul\x00value", "é": "ü", "日本": "語", "😀": "😀"},
    {"lst": ["x", "y", {"k": 1}, [True]], "0": "zero", "01": "zero-one"},
    {"long": "x" * 10_000, LONG_KEY: "long key", "deep": nested(40, leaf=7)},
    {"s": ""},
    {"s": "a"},
    {"s": "A"},
    {"s": "\x00"},
    {"s": "\uffff"},
    {"s": "\U0010ffff"},
    {"s": "10"},
    {"s": "9"},
    {"s": "a\x00b"},
    None,
    {},
]
LATER_CONFIGS = {2: {"temperature": 0.95, "model": "served"}, 21: {"s": "b"}}


def _paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return
    for key, child in items:
        path = f"{prefix}.{key}" if prefix else key
        yield path
        yield from _paths(child, path)


CORPUS_PATHS = sorted({p for config in QUERY_CORPUS for p in _paths(config) if len(p) < 20_000})


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for child in value.values():
            yield from _leaves(child)
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child)
    else:
        yield value


CORPUS_LEAVES = [leaf for config in [*QUERY_CORPUS, *LATER_CONFIGS.values()] for leaf in _leaves(config)]
HOSTILE_FIELDS = [
    "'",
    '"',
    "$",
    "$.model",
    "..",
    ".",
    "a..b",
    ".temperature",
    "temperature.",
    "/",
    "/temperature",
    "~",
    "~0",
    "~1",
    "a/b",
    "a~b",
    "a./",
    "'; DROP TABLE commits; --",
    "temperature') OR 1=1 --",
    "*",
    "$[0]",
    "lst.0",
    "lst.1",
    "lst.01",
    "lst.-1",
    "lst.-",
    "lst.2.k",
    "lst.3.0",
    "lst.99999999999999999999999",
    "0",
    "01",
    "x" * 10_000,
    LONG_KEY,
    ".".join(["k"] * 5_000),
    "deep." + ".".join(["k"] * 40),
    "é",
    "日本",
    "😀",
    "nul\x00key",
    "\ud800",
    "",
    " ",
    "\t",
]
QUERY_OPERATORS = [
    "=",
    "!=",
    ">",
    "<",
    ">=",
    "<=",
    "in",
    "not in",
    " IN ",
    "Not In",
    "NOT  IN",
    "==",
    "<>",
    "like",
    "",
    "; DROP TABLE commits",
]
HOSTILE_VALUES = [
    None,
    True,
    False,
    0,
    -0.0,
    1,
    0.8,
    0.84,
    1e-9,
    U64_MAX,
    I64_MIN,
    2**53 + 1,
    2**70,
    -(2**70),
    2**200,
    float("nan"),
    float("inf"),
    -float("inf"),
    "",
    "'; DROP TABLE commits; --",
    "' OR '1'='1",
    "$",
    "..",
    "\\",
    "\x00",
    "a\x00b",
    "\ud800",
    "x" * 10_000,
    "hot",
    [],
    {},
    {"a": 1},
    b"hot",
    (0.8,),
    {0.8},
]
query_scalars = (
    st.sampled_from(CORPUS_LEAVES)
    | st.sampled_from(HOSTILE_VALUES)
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.booleans()
    | st.none()
)
query_values = query_scalars | st.lists(query_scalars, max_size=5) | st.lists(query_scalars, max_size=3).map(tuple)
query_fields = (
    st.sampled_from(CORPUS_PATHS)
    | st.sampled_from(HOSTILE_FIELDS)
    | st.text(max_size=8)
    | st.lists(st.sampled_from(["a", "b", "k", "0", "/", "~", "", "lst"]), min_size=1, max_size=4).map(".".join)
)


def lookup(config: Any, field: str) -> Any:
    """The value a dotted field names, JSON-pointer style (a list index is a canonical decimal)."""
    current = config
    for part in field.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and part.isascii()
            and part.isdigit()
            and (part == "0" or not part.startswith("0"))
            and int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return MISSING
    return current


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "container"


def comparable(value: Any) -> Any:
    return float(value) if json_kind(value) == "number" else value


def same(got: Any, wanted: Any) -> bool:
    if wanted is None:
        return got is None
    return json_kind(got) == json_kind(wanted) and comparable(got) == comparable(wanted)


COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def expected_match(config: Any, field: str, op: str, value: Any) -> bool:
    """The README's semantics, in plain Python."""
    got = lookup(config, field) if config is not None else MISSING
    if got is MISSING:
        return False
    if op in ("in", "not in"):
        hit = any(same(got, item) for item in value)
        return hit if op == "in" else not hit
    if value is None:
        return (got is None) == (op == "=")
    if json_kind(got) != json_kind(value):
        return op == "!="
    return COMPARE[op](comparable(got), comparable(value))


def normalised_operator(op: Any) -> str | None:
    if not isinstance(op, str):
        return None
    op = op.strip().lower()
    return op if op in (*COMPARE, "in", "not in") else None


def _scalar(item: Any) -> bool:
    kind = json_kind(item)
    if kind == "number":
        try:
            return math.isfinite(float(item))
        except OverflowError:
            return False
    return kind in ("string", "bool", "null")


def evaluable(field: Any, op: str | None, value: Any) -> bool:
    """Whether the README gives this query an answer (the plain-Python filter can decide it)."""
    if op is None or not isinstance(field, str) or not field or "" in field.split("."):
        return False
    if op in ("in", "not in"):
        return isinstance(value, (list, tuple, set, frozenset)) and all(_scalar(item) for item in value)
    if value is None:
        return op in ("=", "!=")
    return _scalar(value)


def must_answer(field: Any, op: str | None, value: Any) -> bool:
    """Evaluable, and made only of what a config can hold: no lone surrogates, integers within 64 bits."""
    if not evaluable(field, op, value) or has_surrogate(field):
        return False
    items = value if op in ("in", "not in") else [value]
    for item in items:
        if isinstance(item, str) and has_surrogate(item):
            return False
        if type(item) is int and not I64_MIN <= item <= U64_MAX:
            return False
    return True


@pytest.fixture(scope="module")
def query_corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tract, Path, list[str]]]:
    directory = tmp_path_factory.mktemp("query") / "log"
    with Tract.open(directory, tract_id="other") as other:  # another tract in the same log: never in the answers
        other.commit(user("other"), generation_config={"temperature": 0.84, "model": "gpt-4o", "s": "a"})
    with Tract.open(directory, tract_id="main") as t:
        hashes = []
        for i, config in enumerate(QUERY_CORPUS):
            hashes.append(t.commit(user(f"c{i}"), generation_config=config).commit_hash)
            if i in LATER_CONFIGS:
                t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config=LATER_CONFIGS[i])
        yield t, directory, hashes


VALID_OPERATORS = ["=", "!=", ">", "<", ">=", "<=", "in", "not in"]


@st.composite
def related_queries(draw: st.DrawFn) -> tuple[str, str, Any]:
    """A field some commit has, and a value like (or equal to) the one it holds there."""
    config = draw(st.sampled_from([c for c in [*QUERY_CORPUS, *LATER_CONFIGS.values()] if c]))
    field = draw(st.sampled_from(sorted(_paths(config))))
    held = lookup(config, field)
    near = (
        [held]
        if json_kind(held) == "container"
        else [
            held,
            held,
            *([held + 1e-9, held - 1, -held] if json_kind(held) == "number" else []),
            *([held + "\x00", held[:-1], held.upper()] if isinstance(held, str) else []),
        ]
    )
    value = draw(st.sampled_from(near) | query_scalars)
    op = draw(st.sampled_from(VALID_OPERATORS) | st.sampled_from(QUERY_OPERATORS))
    if normalised_operator(op) in ("in", "not in"):
        value = draw(st.lists(st.sampled_from(near) | query_scalars, max_size=4).map(lambda items: [value, *items]))
    return field, op, value


def test_query_by_config_answers_like_plain_python_or_raises_value_error(
    query_corpus: tuple[Tract, Path, list[str]],
) -> None:
    t, _, hashes = query_corpus
    configs = {h: t.get_commit(h).generation_config for h in hashes}  # type: ignore[union-attr]

    @examples(500)
    @given(
        query=st.one_of(
            related_queries(),
            related_queries(),
            st.tuples(query_fields, st.sampled_from(QUERY_OPERATORS), query_values),
        )
    )
    def run(query: tuple[Any, str, Any]) -> None:
        field, op, value = query
        normalised = normalised_operator(op)
        described = f"query_by_config({field!r:.60}, {op!r}, {value!r:.60})"
        try:
            found = [c.commit_hash for c in t.query_by_config(field, op, value)]
        except ValueError as error:
            assert not must_answer(field, normalised, value), f"{described} raised {error}"
            return
        assert evaluable(field, normalised, value), (
            f"{described} should raise ValueError, answered {len(found)} commits"
        )
        assert normalised is not None
        wanted = [h for h in hashes if expected_match(configs[h], field, normalised, value)]
        assert found == wanted, described

    run()


def test_query_by_config_leaves_the_projection_and_log_alone(query_corpus: tuple[Tract, Path, list[str]]) -> None:
    t, directory, hashes = query_corpus
    before = Before(t, directory)
    rows = table_rows(t)
    for field in HOSTILE_FIELDS:
        if has_surrogate(field):  # see test_query_by_config_refuses_what_no_config_can_hold
            continue
        for op in QUERY_OPERATORS[:8]:
            for value in ("'; DROP TABLE commits; --", 1, None, ["'); DELETE FROM commits; --"]):
                normalised = normalised_operator(op)
                described = f"query_by_config({field!r:.60}, {op!r}, {value!r:.60})"
                if not evaluable(field, normalised, value):
                    with pytest.raises(ValueError):
                        t.query_by_config(field, op, value)
                    continue
                assert normalised is not None
                found = [c.commit_hash for c in t.query_by_config(field, op, value)]
                configs = {h: t.get_commit(h).generation_config for h in hashes}  # type: ignore[union-attr]
                assert found == [h for h in hashes if expected_match(configs[h], field, normalised, value)], described
    assert table_rows(t) == rows
    assert t.sql("SELECT count(*) FROM commits").rows == [(len(hashes) + 1,)]
    before.assert_unchanged(t)


def test_query_by_config_refuses_what_no_config_can_hold(query_corpus: tuple[Tract, Path, list[str]]) -> None:
    """Lone surrogates: a ValueError like any other bad query, not a DuckDB error. Integers
    beyond 64 bits (which no config can hold) still compare numerically, as DOUBLE."""
    t, directory, _ = query_corpus
    before = Before(t, directory)
    for field, op, value in (
        ("\ud800", "=", 1),
        ("s", "=", "\ud800"),
        ("s", "in", ["a", "x\udfff"]),
    ):
        with pytest.raises(ValueError):
            t.query_by_config(field, op, value)
    assert t.query_by_config("n", "<", 2**200) == t.query_by_config("n", "<", 1e300)
    assert t.query_by_config("n", "in", [1, -(2**130)]) == t.query_by_config("n", "=", 1)
    with pytest.raises(ValueError, match="too large"):
        t.query_by_config("n", "<", 2**2000)
    before.assert_unchanged(t)


def test_query_by_config_semantics_on_hostile_keys(query_corpus: tuple[Tract, Path, list[str]]) -> None:
    t, _, hashes = query_corpus

    def found(field: str, op: str, value: Any) -> list[int]:
        return [hashes.index(c.commit_hash) for c in t.query_by_config(field, op, value)]

    assert found("a/b", "=", 1) == [16]
    assert found("a~b", "=", 2) == [16]
    assert found("~0", "=", 3) == [16]
    assert found("~1", "=", "tilde-one") == [16]
    assert found("a./", "=", "slash") == [16]
    assert found("'; DROP TABLE commits; --", "=", "'; DROP TABLE commits; --") == [17]
    assert found("$", "=", "$") == [17]
    assert found("$.model", "=", 1) == []  # a dotted path: "$" then "model"; keys with dots are unreachable
    assert found('q"uote', "=", "it's") == [18]
    assert found("nul\x00key", "=", "nul\x00value") == [18]
    assert found("s", "=", "a\x00b") == [29]
    assert found(LONG_KEY, "=", "long key") == [20]
    assert found("temperature", ">", 0.9) == [2, 3]  # 2's effective config was recorded later (0.95)
    assert found("model", "=", "served") == [2]
    assert found("n", "=", U64_MAX) == [10]
    assert found("n", "<", 0) == [11]
    assert found("temperature", "!=", 0.8) == [0, 2, 3, 4, 5, 6, 7, 8, 9]


# -- 5. sql(): nothing but one read-only statement ---------------------------------------------------


@pytest.fixture
def sql_tract(tmp_path: Path) -> Iterator[tuple[Tract, Path]]:
    directory = tmp_path / "log"
    with Tract.open(directory) as t:
        first = t.commit(InstructionContent(text="sys"), generation_config={"model": "a", "temperature": 0.2})
        t.commit(user("q"), generation_config={"model": "b", "temperature": 0.9})
        t.record_usage({"prompt_tokens": 5, "completion_tokens": 6}, generation_config={"model": "b2"})
        t.annotate(first.commit_hash, Priority.NORMAL, reason="x")
        yield t, directory


WRITE_ATTEMPTS = [
    "INSERT INTO commits (commit_hash) VALUES ('x')",
    "INSERT INTO usage SELECT * FROM usage",
    "INSERT OR REPLACE INTO projection_state SELECT * FROM projection_state",
    "UPDATE commits SET message = 'pwned'",
    "UPDATE projection_state SET position = 0",
    "DELETE FROM commits",
    "DELETE FROM usage WHERE true RETURNING *",
    "TRUNCATE commits",
    "DROP TABLE commits",
    "DROP TABLE IF EXISTS projection_state",
    "CREATE TABLE evil AS SELECT * FROM commits",
    "CREATE OR REPLACE TABLE commits AS SELECT 1 AS x",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "CREATE SEQUENCE s",
    "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "ALTER TABLE commits ADD COLUMN evil INTEGER",
    "ALTER TABLE commits RENAME TO c2",
    "COMMENT ON TABLE commits IS 'x'",
    "ATTACH ':memory:' AS m",
    "ATTACH '{out}.db' AS evil",
    "DETACH analytics",
    "DETACH DATABASE memory",
    "USE memory",
    "COPY commits TO '{out}'",
    "COPY (SELECT * FROM commits) TO '{out}' (FORMAT parquet)",
    "COPY commits FROM '{real}'",
    "EXPORT DATABASE '{out}'",
    "IMPORT DATABASE '{dir}'",
    "PRAGMA database_list",
    "PRAGMA enable_profiling",
    "SET threads = 1",
    "SET enable_external_access = true",
    "SET GLOBAL lock_configuration = false",
    "RESET threads",
    "INSTALL httpfs",
    "FORCE INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{real}'",
    "CALL pragma_version()",
    "CALL duckdb_settings()",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "BEGIN TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "ABORT",
    "SELECT * FROM read_csv('{real}')",
    "SELECT * FROM read_csv_auto('{real}')",
    "SELECT * FROM read_parquet('{real}')",
    "SELECT * FROM read_json('{real}')",
    "SELECT * FROM read_json_objects('{real}')",
    "SELECT * FROM read_text('{real}')",
    "SELECT * FROM read_blob('{real}')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM '{real}'",
    "FROM '{real}'",
    "SELECT * FROM sniff_csv('{real}')",
    "SELECT * FROM parquet_metadata('{real}')",
    "SELECT 1; DELETE FROM commits",
    "SELECT 1; SELECT 2",
    "SELECT 1 /* ; */; DROP TABLE commits",
    "SELECT 1 -- ;\n; DROP TABLE commits",
    "/* hidden */ DROP TABLE commits",
    "-- comment\nDELETE FROM commits",
    "DROP/**/TABLE/**/commits",
    "\tdRoP\n\tTaBlE\r\ncommits",
    "drop table commits;",
    ";DROP TABLE commits",
    "insert into commits (commit_hash) values ('x');;",
    "",
    "   \n\t",
    ";",
    "-- only a comment",
    "/* only a comment */",
    # statements that parse as EXPLAIN or SELECT but write (the rollback undoes them; they must still be refused)
    "EXPLAIN ANALYZE DELETE FROM commits",
    "EXPLAIN ANALYZE INSERT INTO usage SELECT * FROM usage",
    "EXPLAIN ANALYZE UPDATE projection_state SET position = 0",
    "EXPLAIN ANALYZE CREATE TABLE evil AS SELECT 1",
    "EXPLAIN ANALYZE DROP TABLE commits",
    "WITH gone AS (DELETE FROM commits RETURNING *) SELECT count(*) FROM gone",
    "WITH x AS (UPDATE usage SET prompt_tokens = 0 RETURNING *) SELECT * FROM x",
]


@pytest.mark.parametrize("template", WRITE_ATTEMPTS)
def test_sql_refuses_writes_and_escapes(sql_tract: tuple[Tract, Path], tmp_path: Path, template: str) -> None:
    t, directory = sql_tract
    files = tmp_path / "files"
    files.mkdir()
    real = files / "secret.csv"
    real.write_text("a,b\n1,2\n")
    out = files / "dump.csv"
    query = template.replace("{real}", str(real)).replace("{out}", str(out)).replace("{dir}", str(files))
    rows = table_rows(t)
    before = Before(t, directory)
    with pytest.raises(QueryError) as caught:
        t.sql(query)
    assert str(caught.value).strip()
    assert table_rows(t) == rows
    before.assert_unchanged(t)
    assert sorted(os.listdir(files)) == ["secret.csv"], "a refused statement wrote a file"
    assert real.read_text() == "a,b\n1,2\n"
    assert t.sql("SELECT count(*) FROM commits").rows == [(2,)]
    assert [c.content["text"] for c in t.query_by_config("model", "=", "b2")] == ["q"]


def test_sql_still_answers_read_only_statements(sql_tract: tuple[Tract, Path]) -> None:
    t, _ = sql_tract
    for query in (
        "  sElEcT count(*) FROM commits  ",
        "SELECT count(*) FROM commits;",
        "FROM commits SELECT count(*)",
        "-- c\nSELECT count(*) FROM commits",
    ):
        assert t.sql(query).rows == [(2,)]
    assert t.sql("SELECT count(*) FROM commits WHERE message = ?", ["'; DROP TABLE commits; --"]).rows == [(0,)]
    # EXPLAIN is refused as a whole: EXPLAIN ANALYZE would run what it explains.
    with pytest.raises(QueryError, match="EXPLAIN"):
        t.sql("EXPLAIN SELECT * FROM commits")


def test_sql_relation_cannot_write_either(sql_tract: tuple[Tract, Path]) -> None:
    """The lazy relation follows the same read-only rule: a write is refused or leaves no trace."""
    t, directory = sql_tract
    rows = table_rows(t)
    before = Before(t, directory)
    for query in (
        "DELETE FROM commits",
        "EXPLAIN ANALYZE DELETE FROM commits",
        "WITH gone AS (DELETE FROM commits RETURNING *) SELECT count(*) FROM gone",
        "EXPLAIN ANALYZE UPDATE projection_state SET position = 0",
    ):
        with pytest.raises(QueryError):  # refused when asked for, or when run: never run
            t.sql_relation(query).fetchall()
        assert table_rows(t) == rows, f"sql_relation({query!r}) changed the analytics tables"
    assert [c.content["text"] for c in t.query_by_config("model", "=", "b2")] == ["q"]
    before.assert_unchanged(t)


def test_sql_relation_errors_are_query_errors(sql_tract: tuple[Tract, Path]) -> None:
    t, _ = sql_tract
    with pytest.raises(QueryError):
        t.sql_relation("SELECT * FROM no_such_table")


sql_tokens = st.sampled_from(
    [
        "SELECT", "FROM", "WHERE", "commits", "usage", "config_records", "annotations", "projection_state", "*",
        "count(*)", ";", "--", "/*", "*/", "'", '"', "(", ")", ",", "1", "0.5", "NULL", "WITH", "AS", "DELETE",
        "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DROP", "TABLE", "CREATE", "EXPLAIN", "ANALYZE", "COPY", "TO",
        "ATTACH", "DETACH", "PRAGMA", "INSTALL", "LOAD", "CALL", "read_csv('/etc/passwd')", "glob('/*')", "RETURNING",
        "UNION", "ALL", "generation_config->>'model'", "?", "$1", "\n", "\t", " ", "\x00", "\ud800", "é",
    ]
)  # fmt: skip
random_sql = (
    st.text(max_size=60)
    | st.lists(sql_tokens, max_size=12).map(" ".join)
    | st.lists(sql_tokens, max_size=12).map("".join)
)


def test_random_sql_raises_only_query_error(sql_tract: tuple[Tract, Path]) -> None:
    t, directory = sql_tract
    rows = table_rows(t)
    before = Before(t, directory)
    files = sorted(os.listdir(directory))

    @examples(250)
    @given(
        query=random_sql,
        params=st.none() | st.lists(json_scalars | st.sampled_from(["\ud800", b"x", object()]), max_size=2),
    )
    def run(query: str, params: Any) -> None:
        try:
            result = t.sql(query, params)
        except QueryError as error:
            assert str(error).strip()
            return
        assert isinstance(result.rows, list)

    run()
    assert table_rows(t) == rows
    assert sorted(os.listdir(directory)) == files
    before.assert_unchanged(t)


def test_sql_rejects_non_string_queries(sql_tract: tuple[Tract, Path]) -> None:
    t, _ = sql_tract
    for query in (None, 5, b"SELECT 1", ["SELECT 1"]):
        with pytest.raises(QueryError):
            t.sql(query)  # type: ignore[arg-type]


# -- 6. big inputs ------------------------------------------------------------------------------------


def ten_megabytes() -> str:
    words = ["alpha", "beta", "gamma", "délta", "ζήτα", "数据", "🙂", "x1", "\n", "'; --"]
    chunk = " ".join(words[(i * 7) % len(words)] + str(i % 97) for i in range(5_000))
    text = (chunk + "\n") * (10 * 1024 * 1024 // len(chunk.encode()) + 1)
    return text[: 10 * 1024 * 1024]


def test_a_ten_megabyte_message_commits_compiles_and_replays(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    big = ten_megabytes()
    assert len(big.encode()) >= 10 * 1024 * 1024
    with Tract.open(directory) as t:
        t.commit(InstructionContent(text="sys"))
        info = t.commit(user(big), generation_config={"model": "m", "blob": "y" * 100_000})
        t.commit(DialogueContent(role="assistant", text="ok"))
        live = view_of(t.compile())
        assert t.compile().messages[1].content == big
        position = t.chain_head.position
        assert t.verify().ok
    with Tract.open(directory) as reopened:
        assert reopened.get_commit(info.commit_hash).content["text"] == big  # type: ignore[union-attr]
        assert view_of(reopened.compile()) == live
        assert view_of(reopened.replay(until_position=position).compile()) == live
        assert reopened.query_by_config("model", "=", "m")[0].commit_hash == info.commit_hash
    shutil.rmtree(directory / INDEX_DIR)  # a cold open: the log alone, read from its first record
    with Tract.open(directory, readonly=True) as cold:
        assert view_of(cold.compile()) == live


@pytest.fixture
def small_records(monkeypatch: pytest.MonkeyPatch) -> int:
    """Shrink the record limit to 1 MiB everywhere it is read (the log, and any early check above it)."""
    limit = 1024 * 1024
    for name, module in list(sys.modules.items()):
        if (
            name.split(".")[0] in ("events", "projections", "tract")
            and getattr(module, "MAX_RECORD_BYTES", None) == events.MAX_RECORD_BYTES
        ):
            monkeypatch.setattr(module, "MAX_RECORD_BYTES", limit)
    return limit


def test_the_documented_record_limit() -> None:
    assert events.MAX_RECORD_BYTES == 64 * 1024 * 1024


def test_too_large_records_are_refused_and_leave_the_log_whole(tmp_path: Path, small_records: int) -> None:
    directory = tmp_path / "log"
    too_big = "lorem ipsum " * (small_records // 10)
    with Tract.open(directory) as t:
        t.commit(InstructionContent(text="sys"))
        head = t.commit(user("q"), generation_config={"model": "m"})
        t.commit(user("fits " * (small_records // 10)))  # ~half the limit: fine
        refused(t, directory, lambda: t.commit(user(too_big)), RecordTooLargeError)
        refused(
            t,
            directory,
            lambda: t.commit({"content_type": "freeform", "payload": {"blob": too_big}}),
            RecordTooLargeError,
        )
        refused(t, directory, lambda: t.commit(user("x"), generation_config={"blob": too_big}), RecordTooLargeError)
        refused(t, directory, lambda: t.commit(user("x"), metadata={"blob": [too_big]}), RecordTooLargeError)
        refused(
            t,
            directory,
            lambda: t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config={"blob": too_big}),
            RecordTooLargeError,
        )
        assert t.compile().token_source.startswith("tiktoken"), "the usage half of a refused record_usage was written"

        def in_a_batch() -> None:
            with t.batch():
                t.commit(user("staged"))
                t.commit(user(too_big))

        refused(t, directory, in_a_batch, RecordTooLargeError)
        assert [m.content for m in t.compile().messages][:2] == ["sys", "q"]
        assert t.get_commit(head.commit_hash).generation_config == {"model": "m"}  # type: ignore[union-attr]
        after = t.commit(user("still writable"))
        assert t.head == after.commit_hash
        assert t.sql("SELECT count(*) FROM commits").rows == [(4,)]
    with Tract.open(directory) as reopened:
        assert reopened.verify().ok
        assert [m.content for m in reopened.compile().messages][-1] == "still writable"


# -- 7. damaged files -----------------------------------------------------------------------------------


def build_log(directory: Path, *, n: int = 4, tag: str = "") -> None:
    with Tract.open(directory) as t:
        first = t.commit(InstructionContent(text=f"sys{tag}"), generation_config={"model": "a", "temperature": 0.1})
        for i in range(n):
            t.commit(
                user(f"{tag}question-{i}"), generation_config={"model": "b" if i % 2 else "a", "temperature": 0.3 * i}
            )
        t.record_usage(
            {"prompt_tokens": 7, "completion_tokens": 3}, generation_config={"model": "served", "temperature": 0.95}
        )
        t.annotate(first.commit_hash, Priority.NORMAL)
        t.sql("SELECT 1")  # materialise analytics.duckdb


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pristine")
    build_log(root / "log")
    build_log(root / "other", n=7, tag="other-")
    return root / "log", root / "other"


def answers(t: Tract) -> dict[str, Any]:
    return {
        "head": t.head,
        "chain_head": t.chain_head,
        "compile": view_of(t.compile()),
        "log": t.log(limit=None),
        "configs": [t.config_history(c.commit_hash) for c in t.log(limit=None)],
        "hot": [c.commit_hash for c in t.query_by_config("temperature", ">", 0.5)],
        "models": [c.commit_hash for c in t.query_by_config("model", "in", ["a", "served"])],
        "counts": {table: t.sql(f"SELECT count(*) FROM {table}").rows for table in ANALYTICS_TABLES},
        "usage": t.sql("SELECT prompt_tokens, completion_tokens FROM usage").rows,
    }


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path, needle: bytes) -> None:
    """Change one byte inside `needle` (e.g. a message's text) where it occurs in the file."""
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, f"{needle!r} not in {path.name}"
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def _only_pairs(directory: Path) -> Path:
    """The index file of the log's one tract."""
    (path,) = (directory / INDEX_DIR).glob("*.idx")
    return path


def _replace_pairs(directory: Path, other: Path) -> None:
    """The other log's tract index file, in place of this log's (named for this log's tract)."""
    shutil.copy(_only_pairs(other), _only_pairs(directory))


def _forged_counts(directory: Path, change: int) -> None:
    """The catalogue (checksum recomputed) counting `change` more or fewer records of the tract."""
    covered, tracts = logcraft.catalogue(directory)
    logcraft.write_catalogue(directory, [covered, [[tract_id, count + change] for tract_id, count in tracts]])


def _forged_pairs(directory: Path) -> None:
    """The tract's index file listing its records in another order (the catalogue as it was)."""
    (tract_id,) = [tract for tract, _ in logcraft.catalogue(directory)[1]]
    records = logcraft.tract_records(directory, tract_id)
    logcraft.write_pairs(directory, tract_id, records[:1] + records[2:3] + records[1:2] + records[3:])


CATALOGUE = Path(INDEX_DIR) / CATALOGUE_FILE
INDEX_DAMAGE = {
    "catalogue-truncated": lambda d, o: _truncate(d / CATALOGUE, 0.5),
    "catalogue-one-byte": lambda d, o: (d / CATALOGUE).write_bytes((d / CATALOGUE).read_bytes()[:1]),
    "catalogue-empty": lambda d, o: (d / CATALOGUE).write_bytes(b""),
    "catalogue-missing": lambda d, o: (d / CATALOGUE).unlink(),
    "catalogue-garbage": lambda d, o: (d / CATALOGUE).write_bytes(os.urandom(4096)),
    "catalogue-garbage-after-magic": lambda d, o: (d / CATALOGUE).write_bytes(logcraft.INDEX_MAGIC + os.urandom(4096)),
    "catalogue-byte-flipped": lambda d, o: _flip(d / CATALOGUE, b"record_hash"),
    "catalogue-of-another-log": lambda d, o: shutil.copy(o / CATALOGUE, d / CATALOGUE),
    "catalogue-forged-to-hide-the-newest-records": lambda d, o: _forged_counts(d, -3),
    "catalogue-forged-with-more-records": lambda d, o: _forged_counts(d, +2),
    "index-of-another-log": lambda d, o: (shutil.rmtree(d / INDEX_DIR), shutil.copytree(o / INDEX_DIR, d / INDEX_DIR)),
    "index-file-of-another-log": _replace_pairs,
    "index-file-truncated": lambda d, o: _truncate(_only_pairs(d), 0.5),
    "index-file-empty": lambda d, o: _only_pairs(d).write_bytes(b""),
    "index-file-missing": lambda d, o: _only_pairs(d).unlink(),
    "index-file-garbage": lambda d, o: _only_pairs(d).write_bytes(os.urandom(_only_pairs(d).stat().st_size)),
    "index-file-forged-out-of-order": lambda d, o: _forged_pairs(d),
}
"""Damage to the index beside the log: a cache, never believed, rebuilt from the log without a word."""
ANALYTICS_DAMAGE = {
    "analytics-garbage": lambda d, o: (d / "analytics.duckdb").write_bytes(os.urandom(64 * 1024)),
    "analytics-empty": lambda d, o: (d / "analytics.duckdb").write_bytes(b""),
    "analytics-header-only": lambda d, o: _truncate(d / "analytics.duckdb", 0.001),
    "analytics-truncated": lambda d, o: _truncate(d / "analytics.duckdb", 0.5),
    "analytics-of-another-log": lambda d, o: shutil.copy(o / "analytics.duckdb", d / "analytics.duckdb"),
    "analytics-garbage-wal": lambda d, o: (d / "analytics.duckdb.wal").write_bytes(os.urandom(4096)),
    "both-of-another-log": lambda d, o: (
        shutil.copy(o / "analytics.duckdb", d / "analytics.duckdb"),
        shutil.rmtree(d / INDEX_DIR),
        shutil.copytree(o / INDEX_DIR, d / INDEX_DIR),
    ),
}
"""Damage to the analytics database: rebuilt from the log, with a RuntimeWarning."""
DAMAGE = {**INDEX_DAMAGE, **ANALYTICS_DAMAGE}


def index_files(directory: Path) -> dict[str, bytes]:
    """The catalogue and the index files of the tracts it names (another file there is never read)."""
    tracts = [tract_id for tract_id, _ in logcraft.catalogue(directory)[1]]
    paths = [directory / CATALOGUE, *(logcraft.pairs_path(directory, tract_id) for tract_id in tracts)]
    return {path.name: path.read_bytes() for path in paths}


def rebuilt_index(directory: Path, scratch: Path) -> dict[str, bytes]:
    """The index a writer saves after indexing the log in `directory` from its first record."""
    scratch.mkdir()
    shutil.copy(directory / "events.log", scratch / "events.log")
    events.EventLog.open(scratch).close()
    return index_files(scratch)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_derived_files_cost_a_rebuild_never_a_wrong_answer(
    tmp_path: Path, pristine: tuple[Path, Path], damage: str
) -> None:
    directory, other = tmp_path / "log", tmp_path / "other"
    shutil.copytree(pristine[0], directory)
    shutil.copytree(pristine[1], other)
    with Tract.open(directory, readonly=True) as t:
        expected = answers(t)
    log_before = log_bytes(directory)
    DAMAGE[damage](directory, other)
    with Tract.open(directory, readonly=True) as reader:  # a reader cannot rebuild the files: it reads around them
        assert answers(reader) == expected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Tract.open(directory) as t:
            assert answers(t) == expected
            t.commit(user("after the damage"))
            assert t.verify().ok
    if damage in ANALYTICS_DAMAGE and damage != "analytics-garbage-wal":  # DuckDB may ignore a WAL it cannot use
        assert any(issubclass(w.category, RuntimeWarning) for w in caught), (
            f"no RuntimeWarning about the damaged file ({damage})"
        )
    assert log_bytes(directory).startswith(log_before)
    assert index_files(directory) == rebuilt_index(directory, tmp_path / "scratch"), "the writer saved a good index"
    # What was rebuilt is good from now on, without further warnings.
    with Tract.open(directory) as again, warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert again.log(limit=None)[1:] == expected["log"]
        assert again.sql("SELECT count(*) FROM commits").rows == [(expected["counts"]["commits"][0][0] + 1,)]


def test_a_log_with_a_newer_format_version_is_a_log_format_error(tmp_path: Path, pristine: tuple[Path, Path]) -> None:
    directory = tmp_path / "log"
    shutil.copytree(pristine[0], directory)
    data = bytearray(log_bytes(directory))
    magic, version = struct.unpack_from("<8sI", data)
    assert magic == b"TRACTLOG"
    struct.pack_into("<8sI", data, 0, magic, version + 1)
    (directory / "events.log").write_bytes(bytes(data))
    for attempt in (
        lambda: Tract.open(directory, readonly=True),
        lambda: Tract.open(directory),
        lambda: Tract.open(directory, tract_id="another"),
    ):
        with pytest.raises(LogFormatError) as caught:
            attempt()
        assert "newer" in str(caught.value)
        assert log_bytes(directory) == bytes(data)
    try:
        report = events.verify(directory)
    except events.LogFormatError:
        pass
    else:
        assert not report.ok
    assert log_bytes(directory) == bytes(data)


def test_a_file_that_is_not_a_tract_log_is_a_log_format_error(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir()
    garbage = b"PK\x03\x04 definitely not a tract log" * 10
    (directory / "events.log").write_bytes(garbage)
    for readonly in (True, False):
        with pytest.raises(LogFormatError):
            Tract.open(directory, readonly=readonly)
    assert (directory / "events.log").read_bytes() == garbage


def test_an_empty_directory_opened_readonly_is_a_clear_error_and_stays_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TractError) as caught:
        Tract.open(empty, readonly=True)
    assert str(empty) in str(caught.value)
    assert os.listdir(empty) == []
    missing = tmp_path / "missing" / "deeper"
    with pytest.raises(TractError):
        Tract.open(missing, readonly=True)
    assert not (tmp_path / "missing").exists()


def test_a_missing_directory_opened_for_writing_becomes_a_new_log(tmp_path: Path) -> None:
    directory = tmp_path / "missing" / "deeper" / "log"
    with Tract.open(directory) as t:
        assert t.head is None and t.log() == [] and t.compile().messages == []
        info = t.commit(user("hello"))
        assert t.verify().ok
    assert (directory / "events.log").exists()
    with Tract.open(directory, readonly=True) as reader:
        assert reader.head == info.commit_hash
        assert [m.content for m in reader.compile().messages] == ["hello"]

"""Conversation shortcuts, tool content, token counts that mean what they say, and provider responses in."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events import Record
from tract import (
    CommitInfo,
    ContentValidationError,
    EncodingError,
    InvalidArgumentError,
    TiktokenCounter,
    ToolCall,
    ToolCallContent,
    Tract,
    UsageError,
)

TOKENS = TiktokenCounter()


def count(text: str) -> int:
    return TOKENS.count_text(text)


# -- shortcuts -------------------------------------------------------------------------------


def test_shortcuts_commit_typed_content_and_take_commits_keywords(tmp_path: Path) -> None:
    with Tract.open(tmp_path / "log") as t:
        system = t.system("Be terse.", message="persona")
        user = t.user("Weather?", name="alice", metadata={"channel": "web"})
        call = t.assistant(
            tool_calls=[ToolCall(id="c1", name="get_weather", arguments='{"city": "Oslo"}')],
            generation_config={"model": "gpt-4o"},
        )
        result = t.tool_result("c1", {"temperature_c": -3}, name="get_weather")
        answer = t.assistant("It is -3 C in Oslo.")
        assert all(isinstance(info, CommitInfo) for info in (system, user, call, result, answer))
        assert (system.content_type, system.message, t.get_annotations(system.commit_hash)[0].priority.value) == (
            "instruction",
            "persona",
            "pinned",
        )
        assert (user.content["name"], user.metadata) == ("alice", {"channel": "web"})
        assert call.content["tool_calls"] == [{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]
        assert call.generation_config == {"model": "gpt-4o"}
        assert result.content == {
            "content_type": "tool_result",
            "tool_call_id": "c1",
            "content": '{"temperature_c":-3}',
            "name": "get_weather",
            "is_error": False,
        }
        assert answer.content_type == "dialogue"
        live = t.compile()
    with Tract.open(tmp_path / "log", readonly=True) as reader:  # stored in the events, as they were
        assert reader.compile() == live
        assert [e.event.content_type for e in reader.events(types="CommitCreated")] == [
            "instruction", "dialogue", "tool_call", "tool_result", "dialogue",
        ]  # fmt: skip
        assert reader.replay().compile().messages[2].tool_calls == [
            ToolCall(id="c1", name="get_weather", arguments={"city": "Oslo"})
        ]


def test_raw_arguments_are_kept_and_rendered_back_as_they_were() -> None:
    with Tract.open() as t:
        t.user("go")
        info = t.assistant(tool_calls=[{"id": "c1", "name": "f", "arguments": '{"a": [1, 2'}])
        assert info.content["tool_calls"][0]["arguments"] == '{"a": [1, 2'
        t.tool_result("c1", "could not parse the arguments", is_error=True)
        assert t.compile().to_openai()[1]["tool_calls"][0]["function"]["arguments"] == '{"a": [1, 2'
        not_an_object = t.assistant(tool_calls=[{"id": "c2", "name": "f", "arguments": "[1, 2]"}])
        assert not_an_object.content["tool_calls"][0]["arguments"] == "[1, 2]"


@pytest.mark.parametrize(
    "calls",
    [
        [{"id": "c1", "name": "get weather"}],  # a space: no provider accepts it
        [{"id": "c1", "name": "x" * 65}],
        [{"id": "", "name": "f"}],
        [{"id": "c1", "name": "f", "arguments": {"x": float("nan")}}],
        [{"id": "c1", "name": "f", "surprise": 1}],
        [],
    ],
)
def test_bad_tool_calls_are_refused_at_commit_and_write_nothing(calls: list[dict[str, Any]]) -> None:
    with Tract.open() as t:
        t.user("go")
        head = t.head
        with pytest.raises((ContentValidationError, InvalidArgumentError)):
            t.assistant(tool_calls=calls)
        with pytest.raises(ContentValidationError):
            t.commit({"content_type": "tool_call", "tool_calls": calls})
        assert t.head == head


def test_results_name_a_known_call_and_assistant_needs_something_to_say() -> None:
    with Tract.open() as t:
        t.user("go")
        with pytest.raises(InvalidArgumentError, match="no tool call with id 'c9'"):
            t.tool_result("c9", "?")
        with pytest.raises(InvalidArgumentError, match="text or tool_calls"):
            t.assistant()
        with pytest.raises(ContentValidationError):
            t.tool_result("c1", "x", name="bad name")
        assert len(t.log()) == 1


# -- token counts ----------------------------------------------------------------------------


def test_tool_calls_are_counted_by_the_documented_formula() -> None:
    with Tract.open() as t:
        t.user("go")
        info = t.assistant("Checking.", tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}])
        expected = count("Checking.") + 3 + count("get_weather") + count('{"city":"Oslo"}')
        assert info.token_count == expected
        result = t.tool_result("c1", "sunny", name="get_weather")
        assert result.token_count == count("sunny")
        ctx = t.compile()
        messages = [m.model_dump() for m in ctx.messages]
        assert ctx.token_count == TOKENS.count_messages(messages)
        # per message 3 + role + content (+1 + name), plus 3 to prime the reply
        assert (
            ctx.token_count
            == (3 + count("user") + count("go"))
            + (3 + count("assistant") + expected)
            + (3 + count("tool") + count("sunny") + 1 + count("get_weather"))
            + 3
        )


def test_token_count_describes_the_messages_and_api_usage_the_context_sent() -> None:
    with Tract.open() as t:
        t.system("sys")
        t.user("What is 2+2?")
        sent = t.compile()
        t.assistant("4")
        after = t.record_usage({"prompt_tokens": 23, "completion_tokens": 1})
        assert after.commit_count == 2 and after.api_usage is not None and after.api_usage.prompt_tokens == 23
        live = t.compile()
        assert (live.commit_count, live.api_usage) == (3, None)
        assert live.token_count == TOKENS.count_messages([m.model_dump() for m in live.messages])
        assert t.compile(at_commit=sent.commit_hashes[-1]).api_usage == after.api_usage
        # head_hash names the context explicitly; a config recorded with usage goes to HEAD (the reply)
        first = t.record_usage({"input_tokens": 9, "output_tokens": 2}, head_hash=sent.commit_hashes[0],
                               generation_config={"model": "served"})  # fmt: skip
        assert first.commit_count == 1 and first.api_usage is not None and first.api_usage.prompt_tokens == 9
        assert t.get_commit(t.head).generation_config == {"model": "served"}  # type: ignore[union-attr]
        with pytest.raises(UsageError, match="head_hash"):
            t.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, head_hash="f" * 64)


def test_for_model_maps_model_names_to_the_shipped_encodings() -> None:
    assert TiktokenCounter.for_model("gpt-4o").name == "tiktoken:o200k_base"
    assert TiktokenCounter.for_model("gpt-4o-mini-2024-07-18").name == "tiktoken:o200k_base"
    assert TiktokenCounter.for_model("gpt-4").name == "tiktoken:cl100k_base"
    assert TiktokenCounter.for_model("gpt-3.5-turbo").name == "tiktoken:cl100k_base"
    with pytest.raises(EncodingError, match="claude"):
        TiktokenCounter.for_model("claude-sonnet-4-6")


class WordCounter:
    """A custom counter with its own idea of a whole conversation's size."""

    name = "words"

    def count_text(self, text: str) -> int:
        return len(text.split())

    def count_messages(self, messages: Any) -> int:
        return 1000 + sum(len((m.get("content") or "").split()) + 10 * len(m.get("tool_calls") or ()) for m in messages)


def test_a_custom_counters_count_messages_is_honoured() -> None:
    with Tract.open(tokenizer=WordCounter()) as t:
        t.user("one two three")
        t.assistant(tool_calls=[{"id": "c1", "name": "f"}])
        ctx = t.compile()
        assert (ctx.token_count, ctx.token_source) == (1000 + 3 + 10, "words")
        assert t.compile(at_commit=t.head).token_count == ctx.token_count  # type: ignore[arg-type]


# -- provider responses and usage in ---------------------------------------------------------

RESPONSES = {
    "openai.chat": {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47,
                  "prompt_tokens_details": {"cached_tokens": 32}, "completion_tokens_details": {"reasoning_tokens": 2}},
    },
    "openai.responses": {
        "id": "resp_1", "object": "response", "model": "gpt-4.1-2025-04-16",
        "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                   {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "f", "arguments": '{"x": 1}'}],
        "usage": {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 32}, "output_tokens": 7,
                  "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 47},
    },
    "anthropic": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "thinking", "thinking": "...", "signature": "s"},
                    {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4, "cache_read_input_tokens": 32, "cache_creation_input_tokens": 4,
                  "output_tokens": 7},
    },
    "gemini": {  # the REST JSON, camelCase; the call carries no id
        "candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}}],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 5, "thoughtsTokenCount": 2,
                          "cachedContentTokenCount": 32, "totalTokenCount": 47},
        "modelVersion": "gemini-2.5-flash",
    },
}  # fmt: skip
CACHE_WRITE = {"anthropic": 4}


@pytest.mark.parametrize("provider", list(RESPONSES))
def test_commit_response_takes_each_providers_response_dict(provider: str) -> None:
    with Tract.open() as t:
        question = t.user("go")
        info = t.commit_response(RESPONSES[provider], generation_config={"temperature": 0.2})
        (call,) = info.content["tool_calls"]
        assert (call["name"], call["arguments"]) == ("f", {"x": 1})
        assert call["id"] == "call_a" or (provider == "gemini" and call["id"].startswith("call_"))
        assert info.generation_config == {
            "temperature": 0.2,
            "model": RESPONSES[provider].get("model", "gemini-2.5-flash"),
        }
        (usage,) = [e.event for e in t.events(types="UsageRecorded")]
        assert (usage.head_hash, usage.context_hash) == (info.commit_hash, question.commit_hash)
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 7, 47)
        assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.provider) == (
            32,
            CACHE_WRITE.get(provider),
            provider,
        )
        assert usage.reasoning_tokens == (None if provider == "anthropic" else 2)
        row = t.sql(
            "SELECT prompt_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, provider FROM usage"
        )
        assert row.rows == [(40, 32, CACHE_WRITE.get(provider), usage.reasoning_tokens, provider)]


def test_commit_response_is_atomic_and_refuses_what_is_not_a_response() -> None:
    with Tract.open() as t:
        t.user("go")
        head, position = t.head, t.chain_head.position
        bad_usage = {**RESPONSES["openai.chat"], "usage": {"prompt_tokens": -1, "completion_tokens": 1}}
        with pytest.raises(UsageError):
            t.commit_response(bad_usage)
        bad_call = json.loads(json.dumps(RESPONSES["anthropic"]))
        bad_call["content"][1]["name"] = "not allowed"
        with pytest.raises(ContentValidationError):
            t.commit_response(bad_call)
        for nonsense in ({"hello": 1}, "text", None, {"choices": []}):
            with pytest.raises(InvalidArgumentError):
                t.commit_response(nonsense)
        assert (t.head, t.chain_head.position) == (head, position)
    with Tract.open() as empty, pytest.raises(InvalidArgumentError, match="no commits"):
        empty.commit_response(RESPONSES["openai.chat"])


def test_a_plain_text_response_becomes_a_dialogue_turn() -> None:
    response = {
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}],
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }  # fmt: skip
    with Tract.open() as t:
        t.user("hi")
        info = t.commit_response(response)
        assert info.content == {"content_type": "dialogue", "role": "assistant", "text": "Hello there.", "name": None}


def test_older_usage_events_still_decode() -> None:
    """Logs written before the cache, reasoning and context fields existed read as before."""

    class UsageRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
        tract_id: str
        created_at: datetime
        head_hash: str
        prompt_tokens: int
        completion_tokens: int
        total_tokens: int

    class OldRecord(msgspec.Struct, array_like=True):
        position: int
        prev_hash: bytes
        event: UsageRecorded

    old = UsageRecorded(
        tract_id="t", created_at=datetime.now(timezone.utc), head_hash="h", prompt_tokens=1, completion_tokens=2,
        total_tokens=3,
    )  # fmt: skip
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(OldRecord(1, b"", old)), type=Record).event
    assert (decoded.prompt_tokens, decoded.context_hash, decoded.cache_read_tokens, decoded.provider) == (
        1,
        None,
        None,
        None,
    )


def test_tool_call_content_can_be_committed_directly() -> None:
    with Tract.open() as t:
        t.user("go")
        info = t.commit(ToolCallContent(tool_calls=[ToolCall(id="c1", name="f")]))
        assert info.content == {
            "content_type": "tool_call",
            "text": None,
            "tool_calls": [{"id": "c1", "name": "f", "arguments": {}}],
        }


def test_compiled_tool_calls_are_the_callers_own_copies() -> None:
    with Tract.open() as t:
        t.user("go")
        t.assistant(tool_calls=[{"id": "c1", "name": "f", "arguments": {"x": [1]}}])
        first = t.compile()
        first.messages[1].tool_calls[0].arguments["x"].append(2)  # type: ignore[index, union-attr]
        assert t.compile().messages[1].tool_calls[0].arguments == {"x": [1]}  # type: ignore[index]
        found = first.find_tool_call("c1")
        assert found is not None and found.arguments == {"x": [1]} and first.find_tool_call("c2") is None

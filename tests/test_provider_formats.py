"""Each rendering against the SDK's own request types and the APIs' documented rules.

A TypedDict adapter ignores unknown keys and accepts None where a key should
simply be absent, so keys and values are checked explicitly as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from anthropic.types import MessageParam, TextBlockParam, ToolResultBlockParam, ToolUseBlockParam
from google.genai import types as genai_types
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.responses import EasyInputMessageParam, ResponseFunctionToolCallParam, ResponseInputParam
from openai.types.responses.response_input_param import FunctionCallOutput
from pydantic import TypeAdapter

from tract import (
    DialogueContent,
    ReasoningContent,
    RenderError,
    ToolIOContent,
    ToolResultContent,
    Tract,
)

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RAW = '{"city": "Ro'  # a model's arguments cut short: not JSON


def keys_of(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def no_nones(value: Any, where: str = "") -> None:
    """None is never sent where a key should be absent."""
    assert value is not None, f"None at {where}"
    if isinstance(value, dict):
        for key, item in value.items():
            no_nones(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            no_nones(item, f"{where}[{index}]")


def rich(t: Tract) -> None:
    """Text, names, reasoning, several calls in one turn, parallel results (one an error), a raw-argument
    call, and a system message in the middle."""
    t.system("You are a weather bot.")
    t.system("Use metric units.")
    t.user("Weather in Paris and Rome?", name="Alice Smith")
    t.commit(ReasoningContent(text="Two cities: two calls."))
    t.assistant(
        "Let me check.",
        tool_calls=[
            {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "call_2", "name": "get_weather", "arguments": RAW},
        ],
    )
    t.tool_result("call_1", {"temperature_c": 21})
    t.tool_result("call_2", "arguments are not JSON", is_error=True, name="get_weather")
    t.commit(DialogueContent(role="system", text="Answer in one line."))
    t.user("Thanks!")
    t.assistant("Paris is 21 C; Rome: unknown.  ")


@pytest.fixture
def ctx() -> Iterator[Any]:
    with Tract.open() as t:
        rich(t)
        yield t.compile()


# -- OpenAI Chat Completions -----------------------------------------------------------------

CHAT_TYPES = {
    "system": ChatCompletionSystemMessageParam,
    "user": ChatCompletionUserMessageParam,
    "assistant": ChatCompletionAssistantMessageParam,
    "tool": ChatCompletionToolMessageParam,
}


def test_openai_chat_matches_the_sdk_types_and_the_api_rules(ctx: Any) -> None:
    messages = ctx.to_openai()
    TypeAdapter(list[ChatCompletionMessageParam]).validate_python(messages)
    no_nones(messages)
    for message in messages:
        assert set(message) <= keys_of(CHAT_TYPES[message["role"]]), message
        assert "name" not in message or NAME.match(message["name"])
    assert [m["role"] for m in messages] == [
        "system", "system", "user", "assistant", "tool", "tool", "system", "user", "assistant",
    ]  # fmt: skip
    assert messages[2]["name"] == "Alice_Smith"  # the documented rewrite
    calls = messages[3]["tool_calls"]
    assert messages[3]["content"] == "Let me check."
    assert [c["type"] for c in calls] == ["function", "function"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert calls[1]["function"]["arguments"] == RAW  # raw text goes back exactly as the model wrote it
    assert [(m["tool_call_id"], m["content"]) for m in messages[4:6]] == [
        ("call_1", '{"temperature_c":21}'),
        ("call_2", "arguments are not JSON"),
    ]
    assert messages[6] == {"role": "system", "content": "Answer in one line."}  # stays in place


def test_openai_names_are_rewritten_to_the_pattern() -> None:
    with Tract.open() as t:
        for name in ("ok_name-1", "a b.c", "x" * 70, "!!!", "日本"):
            t.user("hi", name=name)
        names = [m["name"] for m in t.compile().to_openai()]
    assert names == ["ok_name-1", "a_b_c", "x" * 64, "___", "__"]
    assert all(NAME.match(name) for name in names)


# -- OpenAI Responses ------------------------------------------------------------------------

RESPONSES_TYPES = {"message": EasyInputMessageParam, "function_call": ResponseFunctionToolCallParam}


def test_openai_responses_matches_the_sdk_types_and_the_api_rules(ctx: Any) -> None:
    request = ctx.to_openai_responses()
    assert set(request) == {"instructions", "input"}
    assert request["instructions"] == "You are a weather bot.\n\nUse metric units."
    items = request["input"]
    TypeAdapter(ResponseInputParam).validate_python(items)
    no_nones(items)
    for item in items:
        assert set(item) <= keys_of(RESPONSES_TYPES.get(item["type"], FunctionCallOutput)), item
    assert [item["type"] for item in items] == [
        "message", "message", "function_call", "function_call", "function_call_output", "function_call_output",
        "message", "message", "message",
    ]  # fmt: skip
    calls = {item["call_id"]: item for item in items if item["type"] == "function_call"}
    outputs = [item for item in items if item["type"] == "function_call_output"]
    assert all(output["call_id"] in calls for output in outputs) and len(outputs) == len(calls)
    assert calls["call_2"]["arguments"] == RAW
    assert items[6] == {"type": "message", "role": "system", "content": "Answer in one line."}
    assert all("name" not in item for item in items if item["type"] == "message")


def test_openai_responses_without_instructions_has_no_instructions_key() -> None:
    with Tract.open() as t:
        t.user("hi")
        assert t.compile().to_openai_responses() == {"input": [{"type": "message", "role": "user", "content": "hi"}]}


# -- Anthropic -------------------------------------------------------------------------------

BLOCK_TYPES = {"text": TextBlockParam, "tool_use": ToolUseBlockParam, "tool_result": ToolResultBlockParam}


def test_anthropic_matches_the_sdk_types_and_the_api_rules(ctx: Any) -> None:
    request = ctx.to_anthropic()
    assert set(request) == {"system", "messages"}
    assert request["system"] == "You are a weather bot.\n\nUse metric units."
    messages = request["messages"]
    TypeAdapter(list[MessageParam]).validate_python(messages)
    no_nones(request)
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and all(a != b for a, b in pairwise(roles))  # first turn, alternation
    for message in messages:
        assert set(message) == {"role", "content"}
        for block in [] if isinstance(message["content"], str) else message["content"]:
            assert set(block) <= keys_of(BLOCK_TYPES[block["type"]]), block
            assert block["type"] != "text" or block["text"].strip()
    assistant = messages[1]["content"]
    assert [b["type"] for b in assistant] == ["text", "tool_use", "tool_use"]
    assert assistant[2]["input"] == {"raw_arguments": RAW}
    results = messages[2]["content"]  # parallel results in one user turn, first, then the later user text
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text", "text"]
    assert [b["tool_use_id"] for b in results[:2]] == [b["id"] for b in assistant[1:]]
    assert "is_error" not in results[0] and results[1]["is_error"] is True
    assert [b["text"] for b in results[2:]] == ["[system] Answer in one line.", "Thanks!"]  # the stated rule
    assert messages[-1] == {"role": "assistant", "content": "Paris is 21 C; Rome: unknown."}  # no trailing space


def test_anthropic_system_only_when_present_and_no_empty_requests() -> None:
    with Tract.open() as t:
        t.system("Only an instruction.")
        with pytest.raises(RenderError, match="at least one user or assistant message"):
            t.compile().to_anthropic()
        t.user("hi")
        assert "system" in t.compile().to_anthropic()
    with Tract.open() as t:
        t.user("hi")
        assert t.compile().to_anthropic() == {"messages": [{"role": "user", "content": "hi"}]}


def test_anthropic_and_gemini_need_a_user_turn_first() -> None:
    with Tract.open() as t:
        t.system("sys")
        t.assistant("Hello! How can I help?")
        t.user("hi")
        ctx = t.compile()
        for render in (ctx.to_anthropic, ctx.to_gemini):
            with pytest.raises(RenderError, match="start with a user turn"):
                render()
        assert [m["role"] for m in ctx.to_openai()] == ["system", "assistant", "user"]


def test_anthropic_call_ids_outside_its_pattern_are_rewritten_alike_for_call_and_result() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.assistant(tool_calls=[{"id": "functions.get_weather:0", "name": "get_weather", "arguments": {}}])
        t.tool_result("functions.get_weather:0", "sunny")
        messages = t.compile().to_anthropic()["messages"]
    use, result = messages[1]["content"][0], messages[2]["content"][0]
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", use["id"]) and use["id"] == result["tool_use_id"]
    assert use["id"].startswith("functions_get_weather_0_")


# -- Gemini ----------------------------------------------------------------------------------


def test_gemini_matches_the_sdk_types_and_the_api_rules(ctx: Any) -> None:
    request = ctx.to_gemini()
    assert set(request) == {"system_instruction", "contents"}
    genai_types.Content.model_validate(request["system_instruction"])  # the SDK's types forbid unknown keys
    contents = [genai_types.Content.model_validate(content) for content in request["contents"]]
    assert genai_types.GenerateContentConfig(system_instruction=request["system_instruction"])
    no_nones(request)
    roles = [c.role for c in contents]
    assert roles[0] == "user" and set(roles) == {"user", "model"} and all(a != b for a, b in pairwise(roles))
    calls = [p.function_call for p in contents[1].parts or () if p.function_call]
    responses = [p.function_response for p in contents[2].parts or () if p.function_response]
    assert len(calls) == len(responses) == 2  # every call of the turn answered in the next one
    assert [(c.id, c.name) for c in calls] == [(r.id, r.name) for r in responses]
    assert calls[1].args == {"raw_arguments": RAW}
    assert [r.response for r in responses] == [{"output": {"temperature_c": 21}}, {"error": "arguments are not JSON"}]
    assert contents[2].parts[2].text == "[system] Answer in one line."  # type: ignore[index]


# -- rules shared by every format ------------------------------------------------------------


def renderings(ctx: Any, **kwargs: Any) -> list[Any]:
    return [
        ctx.to_openai(**kwargs),
        ctx.to_openai_responses(**kwargs),
        ctx.to_anthropic(**kwargs),
        ctx.to_gemini(**kwargs),
    ]


def every_rendering_refuses(ctx: Any, match: str) -> None:
    for render in (ctx.to_openai, ctx.to_openai_responses, ctx.to_anthropic, ctx.to_gemini):
        with pytest.raises(RenderError, match=match):
            render()


def test_reasoning_is_left_out_unless_asked_for(ctx: Any) -> None:
    assert all("Two cities" not in json.dumps(r) for r in renderings(ctx))
    assert all("Two cities" in json.dumps(r) for r in renderings(ctx, include_reasoning=True))
    assert ctx.to_openai(include_reasoning=True)[3] == {"role": "assistant", "content": "Two cities: two calls."}


def test_a_result_whose_call_is_skipped_or_edited_away_is_refused_at_render_time() -> None:
    with Tract.open() as t:
        t.user("hi")
        call = t.assistant(tool_calls=[{"id": "c1", "name": "lookup", "arguments": {}}])
        t.tool_result("c1", "found")
        t.user("and?")
        assert len(t.compile().to_openai()) == 4
        t.annotate(call.commit_hash, "skip")
        every_rendering_refuses(t.compile(), "'c1'.*answers no call")
        t.annotate(call.commit_hash, "normal")
        t.commit(DialogueContent(role="assistant", text="no tools"), operation="edit", response_to=call.commit_hash)
        every_rendering_refuses(t.compile(), "'c1'.*answers no call")


def test_a_call_without_its_result_right_after_is_refused() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.assistant(tool_calls=[{"id": "c1", "name": "lookup", "arguments": {}}, {"id": "c2", "name": "lookup"}])
        every_rendering_refuses(t.compile(), r"\['c1', 'c2'\] have no result before the context ends")
        t.tool_result("c1", "one")
        t.user("meanwhile")
        every_rendering_refuses(t.compile(), r"\['c2'\] have no result before commit")
        t.tool_result("c2", "two")  # too late: a user message came in between
        every_rendering_refuses(t.compile(), r"\['c2'\] have no result")


def test_call_ids_are_unique_and_names_must_agree() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.assistant(tool_calls=[{"id": "c1", "name": "lookup"}])
        t.tool_result("c1", "one", name="other_tool")
        every_rendering_refuses(t.compile(), "names tool 'other_tool'")
    with Tract.open() as t:
        t.user("hi")
        for _ in range(2):
            t.assistant(tool_calls=[{"id": "c1", "name": "lookup"}])
            t.tool_result("c1", "one")
        every_rendering_refuses(t.compile(), "used twice")


def test_a_result_committed_without_the_shortcut_is_still_checked_when_rendered() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.commit(ToolResultContent(tool_call_id="nobody", content="?"))
        every_rendering_refuses(t.compile(), "'nobody'")


def test_pairing_holds_across_a_merge() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.branch("tools")
        t.assistant(tool_calls=[{"id": "c1", "name": "lookup"}])
        t.tool_result("c1", "found")
        t.switch("main")
        t.commit(DialogueContent(role="user", text="still there?"))
        t.merge("tools")
        ctx = t.compile()
        assert [m["role"] for m in ctx.to_openai()] == ["user", "user", "assistant", "tool"]
        assert [m["role"] for m in ctx.to_anthropic()["messages"]] == ["user", "assistant", "user"]


def test_legacy_tool_io_renders_as_labelled_user_text_everywhere() -> None:
    with Tract.open() as t:
        t.user("hi")
        t.commit(ToolIOContent(tool_name="search", direction="result", payload={"hits": 2}, status="success"))
        ctx = t.compile()
        assert (ctx.messages[1].role, ctx.messages[1].name) == ("tool", "search")  # compiles as it always has
        openai, responses, anthropic, gemini = renderings(ctx)
    label = "[tool search] "
    assert openai[1]["role"] == "user" and openai[1]["content"].startswith(label)
    assert responses["input"][1]["role"] == "user"
    assert anthropic["messages"][0]["content"][1]["text"].startswith(label)
    assert gemini["contents"][0]["parts"][1]["text"].startswith(label)

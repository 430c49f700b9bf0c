"""tract with the real OpenAI, Anthropic and google-genai clients, against a local server that
enforces each API's rules (tests/provider_server.py): renderings go out unmodified, responses and
usage objects come back in through `commit_response` and `record_usage`. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tract import CompiledContext, RenderError, TokenUsage, Tract

from provider_server import USAGE, ProviderServer

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@dataclass(frozen=True)
class Client:
    """One provider format: how a compiled context is sent with that provider's own SDK."""

    name: str
    send: Callable[[CompiledContext], Any]
    bad_request: type[Exception]
    sdk: Any
    """The SDK client itself."""


def clients(server: ProviderServer) -> dict[str, Client]:
    oa = openai.OpenAI(api_key="test-key", base_url=f"{server.url}/v1", max_retries=0)
    an = anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0)
    gm = genai.Client(api_key="test-key", http_options=genai_types.HttpOptions(base_url=server.url))
    chat_tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    responses_tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
    anthropic_tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    gemini_tools = [
        genai_types.Tool(
            function_declarations=[
                genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)
            ]
        )
    ]

    def gemini(ctx: CompiledContext) -> Any:
        request = ctx.to_gemini()
        config = genai_types.GenerateContentConfig(
            system_instruction=request.get("system_instruction"), tools=gemini_tools
        )
        return gm.models.generate_content(model="gemini-2.5-flash", contents=request["contents"], config=config)

    return {
        "openai": Client(
            "openai",
            lambda ctx: oa.chat.completions.create(model="gpt-4o", messages=ctx.to_openai(), tools=chat_tools),
            openai.BadRequestError,
            oa,
        ),
        "openai-responses": Client(
            "openai-responses",
            lambda ctx: oa.responses.create(model="gpt-4.1", tools=responses_tools, **ctx.to_openai_responses()),
            openai.BadRequestError,
            oa,
        ),
        "anthropic": Client(
            "anthropic",
            lambda ctx: an.messages.create(
                model="claude-sonnet-4-6", max_tokens=512, tools=anthropic_tools, **ctx.to_anthropic()
            ),
            anthropic.BadRequestError,
            an,
        ),
        "gemini": Client("gemini", gemini, genai_errors.ClientError, gm),
    }


FORMATS = ["openai", "openai-responses", "anthropic", "gemini"]
SERVED_MODEL = {
    "openai": "gpt-4o-2024-08-06",
    "openai-responses": "gpt-4.1-2025-04-16",
    "anthropic": "claude-sonnet-4-6",
    "gemini": "gemini-2.5-flash",
}
PROMPT = {"openai": 57, "openai-responses": 57, "anthropic": 57, "gemini": 57}
RAW = {  # (cache read, cache write, reasoning) as each provider reports them
    "openai": (USAGE["cached"], None, USAGE["reasoning"]),
    "openai-responses": (USAGE["cached"], None, USAGE["reasoning"]),
    "anthropic": (USAGE["cached"], 4, None),
    "gemini": (USAGE["cached"], None, USAGE["reasoning"]),
}


def weather(arguments: dict[str, Any]) -> str:
    return json.dumps({"city": arguments["city"], "temperature_c": len(arguments["city"]) * 4})


@pytest.mark.parametrize("fmt", FORMATS)
def test_agent_loop_with_tools_runs_end_to_end(server: ProviderServer, fmt: str) -> None:
    client = clients(server)[fmt]
    refusals = len(server.refusals)
    with Tract.open() as t:
        t.system("You answer weather questions with the get_weather tool.")
        t.user("What is the weather in Paris and in Rome?")
        sent: list[CompiledContext] = []
        while True:
            ctx = t.compile()
            sent.append(ctx)
            info = t.commit_response(client.send(ctx))
            calls = info.content.get("tool_calls", [])
            if not calls:
                break
            for call in calls:
                t.tool_result(call["id"], weather(call["arguments"]), name=call["name"])
        assert server.refusals[refusals:] == []
        # call, parallel results, answer: the model saw every result it asked for
        assert len(sent) == 2
        assert info.content["text"].startswith("Here is what the tools said:")
        assert "Paris" in info.content["text"] and "Rome" in info.content["text"]
        assert info.generation_config == {"model": SERVED_MODEL[fmt]}
        final = t.compile()
        assert final.content_types == ["instruction", "dialogue", "tool_call", "tool_result", "tool_result", "dialogue"]
        calls = final.messages[2].tool_calls
        assert calls is not None and [c.arguments for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
        assert [m.tool_call_id for m in final.messages[3:5]] == [c.id for c in calls]
        # usage belongs to the context each call was sent with; counts keep describing the messages
        for ctx in sent:
            at = t.compile(at_commit=ctx.commit_hashes[-1])
            assert at.api_usage is not None and at.token_count == ctx.token_count
            assert at.api_usage.prompt_tokens == PROMPT[fmt]
            assert at.api_usage.completion_tokens == USAGE["completion"]
            usage = at.api_usage
            assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == RAW[fmt]
        assert final.api_usage is None
        rows = t.sql(
            "SELECT c.tool_name, c.arguments ->> 'city' AS city, r.content FROM tool_calls c "
            "JOIN tool_results r USING (tract_id, call_id) ORDER BY c.position, c.call_index"
        ).rows
        assert [(name, city) for name, city, _ in rows] == [("get_weather", "Paris"), ("get_weather", "Rome")]
        assert json.loads(rows[0][2])["city"] == "Paris"
        usage_rows = t.sql("SELECT context_hash, prompt_tokens, cache_read_tokens FROM usage ORDER BY position").rows
        assert usage_rows == [(ctx.commit_hashes[-1], PROMPT[fmt], USAGE["cached"]) for ctx in sent]


def test_gemini_calls_without_ids_get_stable_ids_that_pair_with_their_results(server: ProviderServer) -> None:
    client = clients(server)["gemini"]
    with Tract.open() as t:
        t.user("Weather in Oslo and Lima?")
        response = client.send(t.compile())
        assert [part.function_call.id for part in response.candidates[0].content.parts if part.function_call] == [
            None,
            None,
        ]
        ids = []
        for branch in ("first", "second"):  # the same response to the same context, twice
            t.branch(
                branch, at=t.log(limit=1)[0].commit_hash if branch == "first" else t.get_commit(t.head).parent_hash
            )
            ids.append([call["id"] for call in t.commit_response(response).content["tool_calls"]])
        assert ids[0] == ids[1] and len(set(ids[0])) == 2
        for call_id in ids[1]:
            t.tool_result(call_id, "{}")
        contents = t.compile().to_gemini()["contents"]
        calls = [part["function_call"] for part in contents[1]["parts"]]
        answers = [part["function_response"] for part in contents[2]["parts"]]
        assert [(c["id"], c["name"]) for c in calls] == [(a["id"], a["name"]) for a in answers]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_server_refuses_what_the_api_refuses(server: ProviderServer, fmt: str) -> None:
    """The local server is strict like the real API: a request breaking a rule gets a 400 through the SDK."""
    client = clients(server)[fmt]
    sdk = client.sdk
    broken: dict[str, Callable[[], Any]] = {
        # a tool message without the call it answers (what to_openai() used to send for tool I/O)
        "openai": lambda: sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}, {"role": "tool", "name": "calc", "content": "{}"}],
        ),
        "openai-responses": lambda: sdk.responses.create(
            model="gpt-4.1", input=[{"type": "function_call_output", "call_id": "call_x", "output": "{}"}]
        ),
        # "system": null, as to_anthropic() used to send without an instruction
        "anthropic": lambda: sdk.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, system=None, messages=[{"role": "user", "content": "hi"}]
        ),
        # a conversation opening with the model's turn
        "gemini": lambda: sdk.models.generate_content(
            model="gemini-2.5-flash", contents=[{"role": "model", "parts": [{"text": "hi"}]}]
        ),
    }  # fmt: skip
    refusals = len(server.refusals)
    with pytest.raises(client.bad_request):
        broken[fmt]()
    assert len(server.refusals) == refusals + 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_skipped_tool_result_is_refused_at_render_time_not_by_the_api(server: ProviderServer, fmt: str) -> None:
    client = clients(server)[fmt]
    with Tract.open() as t:
        t.user("Weather in Paris?")
        info = t.commit_response(client.send(t.compile()))
        (call,) = info.content["tool_calls"]
        result = t.tool_result(call["id"], weather(call["arguments"]))
        t.annotate(result.commit_hash, "skip")
        requests = len(server.requests)
        with pytest.raises(RenderError, match=call["id"]):
            client.send(t.compile())
        assert len(server.requests) == requests  # nothing went out


@pytest.mark.parametrize("fmt", FORMATS)
def test_record_usage_takes_each_sdks_usage_object(server: ProviderServer, fmt: str) -> None:
    client = clients(server)[fmt]
    with Tract.open() as t:
        t.user("Weather in Lima?")
        ctx = t.compile()
        response = client.send(ctx)
        t.assistant("(the reply, committed by hand)")
        usage_object = response.usage_metadata if fmt == "gemini" else response.usage
        returned = t.record_usage(usage_object)
        assert returned == t.compile(at_commit=ctx.commit_hashes[-1])
        usage = returned.api_usage
        assert isinstance(usage, TokenUsage)
        assert (usage.prompt_tokens, usage.completion_tokens) == (PROMPT[fmt], USAGE["completion"])
        assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == RAW[fmt]
        assert usage.provider == {"openai": "openai.chat", "openai-responses": "openai.responses"}.get(fmt, fmt)
        # the same figures from the object's dict (Gemini's REST JSON is camelCase)
        as_dict = usage_object.model_dump(by_alias=fmt == "gemini", exclude_none=True)
        again = t.record_usage(as_dict).api_usage
        assert again == usage

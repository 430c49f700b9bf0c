"""Provider SDK objects read by their fields, without importing any SDK.

Everything here works on a response or usage object as the SDKs return it
(pydantic models: OpenAI, Anthropic, google-genai), on any object with the
same attributes, and on the JSON dicts the REST APIs return (Gemini's in
camelCase). `read` looks a field up under each spelling given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import canonical_json
from tract.errors import InvalidArgumentError

MISSING: Any = object()


def read(source: Any, *names: str) -> Any:
    """The first of `names` that `source` has (a dict key or an attribute), else MISSING."""
    if isinstance(source, Mapping):
        for name in names:
            if name in source:
                return source[name]
        return MISSING
    for name in names:
        value = getattr(source, name, MISSING)
        if value is not MISSING:
            return value
    return MISSING


def read_or_none(source: Any, *names: str) -> Any:
    value = read(source, *names)
    return None if value is MISSING else value


def is_plain_value(value: Any) -> bool:
    """Values that are certainly not an SDK object or a dict (so no field can be read)."""
    return value is None or isinstance(value, (str, bytes, int, float, list, tuple, set))


@dataclass
class ParsedResponse:
    """An assistant turn read from a provider response."""

    provider: str
    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    usage: Any = None


def parse_response(response: Any, *, id_seed: str) -> ParsedResponse:
    """The first choice (or candidate) of an OpenAI ChatCompletion, OpenAI Responses `Response`,
    Anthropic `Message` or Gemini `GenerateContentResponse`, or their dicts.

    Calls without an id (Gemini's may have none) get a stable one derived from
    `id_seed` (the context's head), the call's position, name and arguments.
    """
    if is_plain_value(response):
        raise InvalidArgumentError(
            f"commit_response takes a provider response or its dict, not {type(response).__name__}"
        )
    if read(response, "choices") is not MISSING:
        parsed = _chat_completion(response)
    elif read(response, "candidates") is not MISSING:
        parsed = _gemini(response)
    elif read(response, "output") is not MISSING:
        parsed = _responses(response)
    elif read(response, "content") is not MISSING and read_or_none(response, "type") == "message":
        parsed = _anthropic(response)
    else:
        raise InvalidArgumentError(
            "not a provider response: expected an OpenAI ChatCompletion or Response, an Anthropic Message "
            "or a Gemini GenerateContentResponse (or its dict)"
        )
    for index, call in enumerate(parsed.tool_calls):
        if not call.get("id"):
            call["id"] = stable_call_id(id_seed, index, call["name"], call["arguments"])
    return parsed


def stable_call_id(seed: str, index: int, name: str, arguments: Any) -> str:
    """The same call in the same context always gets the same id."""
    digest = hashlib.sha256(canonical_json([seed, index, name, arguments])).hexdigest()
    return f"call_{digest[:24]}"


def _first(items: Any, what: str) -> Any:
    if not isinstance(items, Sequence) or not items:
        raise InvalidArgumentError(f"the response has no {what}")
    return items[0]


def _chat_completion(response: Any) -> ParsedResponse:
    message = read(_first(read(response, "choices"), "choices"), "message")
    calls = []
    for call in read_or_none(message, "tool_calls") or ():
        function = read(call, "function")
        if function is MISSING:
            raise InvalidArgumentError(f"tool call of type {read_or_none(call, 'type')!r} is not a function call")
        calls.append({"id": read(call, "id"), "name": read(function, "name"), "arguments": read(function, "arguments")})
    text = read_or_none(message, "content") or read_or_none(message, "refusal") or ""
    return ParsedResponse("openai.chat", text, calls, read_or_none(response, "model"), read_or_none(response, "usage"))


def _responses(response: Any) -> ParsedResponse:
    texts, calls = [], []
    for item in read(response, "output") or ():
        kind = read_or_none(item, "type")
        if kind == "message":
            for part in read_or_none(item, "content") or ():
                part_type = read_or_none(part, "type")
                if part_type == "output_text":
                    texts.append(read(part, "text"))
                elif part_type == "refusal":
                    texts.append(read(part, "refusal"))
        elif kind == "function_call":
            calls.append(
                {"id": read(item, "call_id"), "name": read(item, "name"), "arguments": read(item, "arguments")}
            )
    return ParsedResponse(
        "openai.responses", "".join(texts), calls, read_or_none(response, "model"), read_or_none(response, "usage")
    )


def _anthropic(response: Any) -> ParsedResponse:
    texts, calls = [], []
    for block in read(response, "content") or ():
        kind = read_or_none(block, "type")
        if kind == "text":
            texts.append(read(block, "text"))
        elif kind == "tool_use":
            calls.append({"id": read(block, "id"), "name": read(block, "name"), "arguments": read(block, "input")})
    return ParsedResponse(
        "anthropic", "".join(texts), calls, read_or_none(response, "model"), read_or_none(response, "usage")
    )


def _gemini(response: Any) -> ParsedResponse:
    content = read_or_none(_first(read(response, "candidates"), "candidates"), "content")
    texts, calls = [], []
    for part in read_or_none(content, "parts") or () if content is not None else ():
        text = read_or_none(part, "text")
        if isinstance(text, str) and not read_or_none(part, "thought"):
            texts.append(text)
        call = read_or_none(part, "function_call", "functionCall")
        if call is not None:
            arguments = read_or_none(call, "args")
            calls.append(
                {
                    "id": read_or_none(call, "id"),
                    "name": read(call, "name"),
                    "arguments": {} if arguments is None else arguments,
                }
            )
    return ParsedResponse(
        "gemini",
        "".join(texts),
        calls,
        read_or_none(response, "model_version", "modelVersion"),
        read_or_none(response, "usage_metadata", "usageMetadata"),
    )

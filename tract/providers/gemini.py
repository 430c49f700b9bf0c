"""Gemini's generateContent: `{"system_instruction": ..., "contents": [...]}`.

Field names are snake_case, as the google-genai SDK's types take them (the
REST API accepts them too). Roles are `user` and `model`; consecutive messages
of one role share one content, so a turn's function responses travel together
right after the turn that called them. A call carries its id (Gemini's own, or
the one `commit_response` gave it) and a response carries the call's id and
name. A response is `{"output": value}` (`{"error": value}` for an error), the
value being the result's JSON when it is JSON, else its text. Leading system
messages form `system_instruction`; later ones stay in place as user text
(`[system] ...`). Blank text is left out; the conversation starts with a user turn.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tract.providers.turns import (
    Calls,
    Item,
    Result,
    SystemText,
    Text,
    arguments_object,
    is_blank,
    leading_system,
    merged_turns,
    require_user_first,
    system_as_user_text,
    system_prompt,
)


def generate_content_request(items: list[Item]) -> dict[str, Any]:
    system, rest = leading_system(items)
    contents = merged_turns(rest, _parts, "parts")
    require_user_first(contents, "Gemini")
    request: dict[str, Any] = {"contents": contents}
    text = system_prompt(system)
    if text:
        request = {"system_instruction": {"parts": [{"text": text}]}, **request}
    return request


def _parts(item: Item) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(item, SystemText):
        return "user", [{"text": system_as_user_text(item.text)}]
    if isinstance(item, Text):
        return ("user" if item.role == "user" else "model"), [] if is_blank(item.text) else [{"text": item.text}]
    if isinstance(item, Calls):
        parts: list[dict[str, Any]] = [] if is_blank(item.text) else [{"text": item.text}]
        parts += [
            {"function_call": {"id": call.id, "name": call.name, "args": arguments_object(call.arguments)}}
            for call in item.calls
        ]
        return "model", parts
    assert isinstance(item, Result)
    key = "error" if item.is_error else "output"
    response = {"id": item.call_id, "name": item.tool_name, "response": {key: _json_or_text(item.content)}}
    return "user", [{"function_response": response}]


def _json_or_text(content: str) -> Any:
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content

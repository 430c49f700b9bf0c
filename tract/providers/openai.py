"""OpenAI's formats: Chat Completions `messages` and Responses API `input` items.

Chat Completions takes system messages anywhere, so they stay where they are;
participant names are rewritten to OpenAI's pattern (`participant_name`). The
Responses API has no participant names, takes the leading system messages as
`instructions`, and later ones as `system` message items in place.
"""

from __future__ import annotations

from typing import Any

from tract.providers.turns import Calls, Item, Result, SystemText, Text, leading_system, participant_name
from tract.tokens import arguments_text


def chat_messages(items: list[Item]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, SystemText):
            out.append({"role": "system", "content": item.text})
        elif isinstance(item, Text):
            message: dict[str, Any] = {"role": item.role, "content": item.text}
            name = participant_name(item.name)
            if name is not None:
                message["name"] = name
            out.append(message)
        elif isinstance(item, Calls):
            message = {"role": "assistant"}
            if item.text:
                message["content"] = item.text
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
                }
                for call in item.calls
            ]
            out.append(message)
        else:
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": item.content})
    return out


def responses_request(items: list[Item]) -> dict[str, Any]:
    """`{"instructions": ..., "input": [...]}`, instructions only when there are some."""
    instructions, rest = leading_system(items)
    inputs: list[dict[str, Any]] = []
    for item in rest:
        if isinstance(item, SystemText):
            inputs.append({"type": "message", "role": "system", "content": item.text})
        elif isinstance(item, Text):
            inputs.append({"type": "message", "role": item.role, "content": item.text})
        elif isinstance(item, Calls):
            if item.text:
                inputs.append({"type": "message", "role": "assistant", "content": item.text})
            inputs.extend(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": arguments_text(call.arguments),
                }
                for call in item.calls
            )
        elif isinstance(item, Result):
            inputs.append({"type": "function_call_output", "call_id": item.call_id, "output": item.content})
    request: dict[str, Any] = {"input": inputs}
    if instructions:
        request = {"instructions": "\n\n".join(instructions), **request}
    return request

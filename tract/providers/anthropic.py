"""Anthropic's Messages API: `{"system": ..., "messages": [...]}`.

`system` holds the leading system messages and is present only when there are
some; a system message later on stays in place as user text (`[system] ...`).
Turns alternate user / assistant: consecutive messages of one role are merged
into one turn of content blocks (so parallel tool results share one user turn,
results first, as the API requires). Blank text is left out (the API refuses
empty text blocks), and a final assistant turn loses its trailing whitespace
(the API refuses it there). The conversation must start with a user turn.
"""

from __future__ import annotations

from typing import Any

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
    safe_call_id,
    system_as_user_text,
    system_prompt,
)


def messages_request(items: list[Item]) -> dict[str, Any]:
    system, rest = leading_system(items)
    turns = merged_turns(rest, _blocks, "content")
    _trim_final_assistant(turns)
    require_user_first(turns, "Anthropic")
    for turn in turns:
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]
    request: dict[str, Any] = {"messages": turns}
    text = system_prompt(system)
    if text:
        request = {"system": text, **request}
    return request


def _blocks(item: Item) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(item, SystemText):
        text = system_as_user_text(item.text)
        return "user", [{"type": "text", "text": text}]
    if isinstance(item, Text):
        return item.role, [] if is_blank(item.text) else [{"type": "text", "text": item.text}]
    if isinstance(item, Calls):
        blocks: list[dict[str, Any]] = [] if is_blank(item.text) else [{"type": "text", "text": item.text}]
        blocks += [
            {
                "type": "tool_use",
                "id": safe_call_id(call.id),
                "name": call.name,
                "input": arguments_object(call.arguments),
            }
            for call in item.calls
        ]
        return "assistant", blocks
    assert isinstance(item, Result)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_call_id(item.call_id)}
    if item.content:
        block["content"] = item.content
    if item.is_error:
        block["is_error"] = True
    return "user", [block]


def _trim_final_assistant(turns: list[dict[str, Any]]) -> None:
    if not turns or turns[-1]["role"] != "assistant":
        return
    blocks = turns[-1]["content"]
    last = blocks[-1]
    if last["type"] == "text":
        trimmed = last["text"].rstrip()
        if trimmed:
            blocks[-1] = {"type": "text", "text": trimmed}
        else:
            blocks.pop()
            if not blocks:
                turns.pop()

"""What every provider rendering shares: the conversation as typed items, and the pairing rules.

A compiled context is turned into a sequence of items (system text, user or
assistant text, an assistant turn calling tools, a tool result) and checked
once, whatever happened to the commits since they were made (a SKIP, an EDIT,
a merge): each tool result answers a call of the assistant turn right before
it (only other results in between), each call is answered there, and no call
id is used twice. Every provider rejects a request that breaks one of these.

Rules shared by the formats:
- reasoning is left out unless `include_reasoning=True`, then it is assistant text;
- legacy `tool_io` messages carry no call id, so no provider takes them as tool
  messages: they become user text `[tool <name>] <JSON>`;
- any other content (artifacts, output, custom types) is assistant text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tract.errors import RenderError
from tract.models import Message, ToolCall

REASONING = "reasoning"
LEGACY_TOOL_IO = "tool_io"
_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NAME_REJECTED = re.compile(r"[^a-zA-Z0-9_-]")
RAW_ARGUMENTS_KEY = "raw_arguments"


@dataclass(frozen=True)
class SystemText:
    text: str
    commit_hash: str


@dataclass(frozen=True)
class Text:
    role: str
    """user or assistant"""
    text: str
    name: str | None
    commit_hash: str


@dataclass(frozen=True)
class Calls:
    text: str
    calls: list[ToolCall]
    commit_hash: str


@dataclass(frozen=True)
class Result:
    call_id: str
    content: str
    tool_name: str
    """The name of the call it answers (a result's own name must agree)."""
    is_error: bool
    commit_hash: str


Item = SystemText | Text | Calls | Result


def conversation(
    messages: Sequence[Message], content_types: Sequence[str], commit_hashes: Sequence[str], include_reasoning: bool
) -> list[Item]:
    """The context as items, with the pairing rules checked (RenderError otherwise)."""
    items = list(_items(messages, content_types, commit_hashes, include_reasoning))
    _check_pairing(items)
    return items


def _items(
    messages: Sequence[Message], content_types: Sequence[str], commit_hashes: Sequence[str], include_reasoning: bool
) -> Iterator[Item]:
    for message, kind, commit_hash in zip(messages, content_types, commit_hashes, strict=True):
        if kind == REASONING and not include_reasoning:
            continue
        if message.tool_calls:
            yield Calls(message.content, message.tool_calls, commit_hash)
        elif message.tool_call_id is not None:
            yield Result(message.tool_call_id, message.content, message.name or "", message.is_error, commit_hash)
        elif message.role == "system":
            yield SystemText(message.content, commit_hash)
        elif message.role == "tool" or kind == LEGACY_TOOL_IO:
            label = f"[tool {message.name}]" if message.name else "[tool]"
            yield Text("user", f"{label} {message.content}", None, commit_hash)
        else:
            yield Text("user" if message.role == "user" else "assistant", message.content, message.name, commit_hash)


def _check_pairing(items: list[Item]) -> None:
    """Results right after their calls, every call answered there, no call id twice."""
    seen: set[str] = set()
    open_calls: dict[str, ToolCall] = {}
    for index, item in enumerate(items):
        if isinstance(item, Result):
            call = open_calls.pop(item.call_id, None)
            if call is None:
                raise RenderError(
                    f"tool result for call {item.call_id!r} (commit {item.commit_hash[:12]}) answers no call of the "
                    "assistant turn right before it in the rendered context",
                    commit_hash=item.commit_hash,
                )
            if item.tool_name and item.tool_name != call.name:
                raise RenderError(
                    f"tool result for call {item.call_id!r} names tool {item.tool_name!r}, but the call was to "
                    f"{call.name!r}",
                    commit_hash=item.commit_hash,
                )
            items[index] = Result(item.call_id, item.content, call.name, item.is_error, item.commit_hash)
            continue
        _require_answered(open_calls, item)
        open_calls = {}
        if isinstance(item, Calls):
            for call in item.calls:
                if call.id in seen:
                    raise RenderError(
                        f"tool call id {call.id!r} is used twice in the rendered context "
                        f"(commit {item.commit_hash[:12]})",
                        commit_hash=item.commit_hash,
                    )
                seen.add(call.id)
                open_calls[call.id] = call
    _require_answered(open_calls, None)


def _require_answered(open_calls: dict[str, ToolCall], next_item: Item | None) -> None:
    if open_calls:
        where = "before the context ends" if next_item is None else f"before commit {next_item.commit_hash[:12]}"
        raise RenderError(
            f"tool call(s) {sorted(open_calls)} have no result {where}; every call needs its result right after "
            "the assistant turn that made it",
            commit_hash=None if next_item is None else next_item.commit_hash,
        )


def leading_system(items: list[Item]) -> tuple[list[str], list[Item]]:
    """The system texts before the first other item, and the rest."""
    count = 0
    while count < len(items) and isinstance(items[count], SystemText):
        count += 1
    return [item.text for item in items[:count] if isinstance(item, SystemText)], items[count:]


def merged_turns(
    items: list[Item], blocks_of: Callable[[Item], tuple[str, list[dict[str, Any]]]], key: str
) -> list[dict[str, Any]]:
    """Turns of `{"role": ..., key: [blocks]}`, consecutive blocks of one role in one turn
    (items that give no block are left out), so roles alternate."""
    turns: list[dict[str, Any]] = []
    for item in items:
        role, blocks = blocks_of(item)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1][key].extend(blocks)
        else:
            turns.append({"role": role, key: blocks})
    return turns


def system_prompt(texts: list[str]) -> str:
    """The leading system texts as one prompt (blank ones left out)."""
    return "\n\n".join(text for text in texts if not is_blank(text))


def participant_name(name: str | None) -> str | None:
    """A name as OpenAI accepts it (`[a-zA-Z0-9_-]{1,64}`): any other character becomes `_`,
    then it is cut to 64 characters; an empty name is left out."""
    if name is None or _NAME_PATTERN.fullmatch(name):
        return name
    return _NAME_REJECTED.sub("_", name)[:64] or None


def arguments_object(arguments: dict[str, Any] | str) -> dict[str, Any]:
    """Arguments as the JSON object Anthropic and Gemini require: raw text (not a JSON
    object) travels as `{"raw_arguments": text}`."""
    return arguments if isinstance(arguments, dict) else {RAW_ARGUMENTS_KEY: arguments}


def safe_call_id(call_id: str) -> str:
    """A call id as Anthropic accepts it (`[a-zA-Z0-9_-]+`): other characters become `_`, and a
    short hash of the original keeps rewritten ids distinct. Calls and results map alike."""
    if _NAME_REJECTED.search(call_id) is None:
        return call_id
    return f"{_NAME_REJECTED.sub('_', call_id)}_{hashlib.sha256(call_id.encode()).hexdigest()[:8]}"


def is_blank(text: str) -> bool:
    return not text.strip()


def system_as_user_text(text: str) -> str:
    """A system message in the middle of a conversation, for providers with one system prompt
    (Anthropic, Gemini): it stays in place, as user text marked `[system]`."""
    return f"[system] {text}"


def require_user_first(turns: list[dict[str, Any]], provider: str, user_role: str = "user") -> None:
    if not turns:
        raise RenderError(f"{provider} needs at least one user or assistant message; the context has none")
    if turns[0]["role"] != user_role:
        raise RenderError(f"{provider} needs the conversation to start with a user turn; commit a user message first")

"""Analytics rows for tool calls and tool results, read from the commits that carry them.

A `tool_call` commit becomes one `tool_calls` row per call; a `tool_result`
commit one `tool_results` row. Results join their calls by `call_id` (and
`tract_id`). Payloads are read defensively: a log may hold a type of that name
written by other code, and analytics must never fail on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec

from events import CommitCreated

TOOL_CONTENT_TYPES = frozenset({"tool_call", "tool_result"})


class ToolCallRow(msgspec.Struct):
    commit_hash: str
    tract_id: str
    call_id: str | None
    tool_name: str | None
    arguments: dict[str, Any] | str | None
    """JSON: the arguments object, or the raw text the model produced."""
    call_index: int
    created_at: datetime
    position: int


class ToolResultRow(msgspec.Struct):
    commit_hash: str
    tract_id: str
    call_id: str | None
    tool_name: str | None
    content: str | None
    is_error: bool
    created_at: datetime
    position: int


def tool_rows(event: CommitCreated, position: int) -> Iterator[msgspec.Struct]:
    payload = event.content
    if event.content_type == "tool_call":
        calls = payload.get("tool_calls")
        for index, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                yield ToolCallRow(
                    event.commit_hash, event.tract_id, _text(call.get("id")), _text(call.get("name")),
                    call.get("arguments"), index, event.created_at, position,
                )  # fmt: skip
    else:
        yield ToolResultRow(
            event.commit_hash, event.tract_id, _text(payload.get("tool_call_id")), _text(payload.get("name")),
            _text(payload.get("content")), payload.get("is_error") is True, event.created_at, position,
        )  # fmt: skip


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None

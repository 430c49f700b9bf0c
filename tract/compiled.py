"""What `compile()` returns, and its provider-shaped renderings.

A result is a window onto the compiler's cache: the first `length` entries of
lists the cache only ever appends to (it copies a list before rewriting a slot
a result can see). So compiling after an append costs the same at 10 or
10,000 messages, and each result still shows exactly the context of its
moment. The lists a caller gets are copies, made on first access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field

from tract import providers
from tract.models import Message, TokenUsage, ToolCall

_config_decoder = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True)
class CompiledWindow:
    """The first `length` messages, commit hashes, encoded configs and content types of a compile."""

    messages: list[Message]
    commit_hashes: list[str]
    configs: list[bytes]
    content_types: list[str]
    length: int
    has_tool_calls: bool = False


class CompiledContext(BaseModel):
    """The context an LLM call would see. Immutable; its lists are the caller's own copies.

    `token_count` always counts these messages (`token_source` names the tokenizer);
    `api_usage` is what an API reported when this very context was sent, if recorded.
    """

    model_config = ConfigDict(frozen=True)

    token_count: int
    commit_count: int
    token_source: str
    api_usage: TokenUsage | None = None
    _window: CompiledWindow = PrivateAttr()
    _messages: list[Message] | None = PrivateAttr(default=None)
    _commit_hashes: list[str] | None = PrivateAttr(default=None)

    @classmethod
    def build(
        cls, window: CompiledWindow, *, token_count: int, token_source: str, api_usage: TokenUsage | None
    ) -> CompiledContext:
        """Assemble without re-validating what the compiler already built (the hot path)."""
        compiled = cls.model_construct(
            token_count=token_count, commit_count=window.length, token_source=token_source, api_usage=api_usage
        )
        compiled._window = window
        return compiled

    @computed_field  # type: ignore[prop-decorator]  # pydantic's spelling; mypy rejects decorators over @property
    @property
    def messages(self) -> list[Message]:
        if self._messages is None:
            window = self._window
            self._messages = window.messages[: window.length]
            if window.has_tool_calls:  # tool calls hold dicts: copied, so the cache stays out of reach
                self._messages = [m if m.tool_calls is None else m.model_copy(deep=True) for m in self._messages]
        return self._messages

    @computed_field  # type: ignore[prop-decorator]  # pydantic's spelling; mypy rejects decorators over @property
    @property
    def commit_hashes(self) -> list[str]:
        """The commit each message comes from (the original, for edited messages)."""
        if self._commit_hashes is None:
            self._commit_hashes = self._window.commit_hashes[: self._window.length]
        return self._commit_hashes

    @computed_field  # type: ignore[prop-decorator]  # pydantic's spelling; mypy rejects decorators over @property
    @property
    def content_types(self) -> list[str]:
        """The content type each message comes from (an edit's, where an edit replaced it)."""
        return self._window.content_types[: self._window.length]

    @computed_field  # type: ignore[prop-decorator]  # pydantic's spelling; mypy rejects decorators over @property
    @property
    def generation_configs(self) -> list[dict[str, Any]]:
        """One config per message (`{}` where none), decoded afresh on every access."""
        window = self._window
        return [_config_decoder.decode(raw) for raw in window.configs[: window.length]]

    def find_tool_call(self, call_id: str) -> ToolCall | None:
        """The tool call with this id in these messages (the newest, if several), else None."""
        window = self._window
        for index in range(window.length - 1, -1, -1):
            for call in window.messages[index].tool_calls or ():
                if call.id == call_id:
                    return call.model_copy(deep=True)
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompiledContext):
            return NotImplemented
        mine, theirs = self._window, other._window
        return (
            (self.token_count, self.commit_count, self.token_source, self.api_usage)
            == (other.token_count, other.commit_count, other.token_source, other.api_usage)
            and self.messages == other.messages
            and self.commit_hashes == other.commit_hashes
            and self.content_types == other.content_types
            and mine.configs[: mine.length] == theirs.configs[: theirs.length]
        )

    # Unhashable on purpose: equality compares the messages, which pydantic's frozen-model hash leaves out.
    __hash__ = None  # type: ignore[assignment]  # the Python idiom for it; BaseModel declares __hash__

    def _items(self, include_reasoning: bool) -> list[providers.turns.Item]:
        return providers.conversation(self.messages, self.content_types, self.commit_hashes, include_reasoning)

    def to_openai(self, *, include_reasoning: bool = False) -> list[dict[str, Any]]:
        """Chat Completions `messages`: assistant `tool_calls` (arguments as JSON text), `tool`
        messages answering them by `tool_call_id`, system messages where they are."""
        return providers.chat_messages(self._items(include_reasoning))

    def to_openai_responses(self, *, include_reasoning: bool = False) -> dict[str, Any]:
        """Responses API `{"instructions": ..., "input": [...]}`: `message`, `function_call` and
        `function_call_output` items (the call id as `call_id`); instructions only when present."""
        return providers.responses_request(self._items(include_reasoning))

    def to_anthropic(self, *, include_reasoning: bool = False) -> dict[str, Any]:
        """Messages API `{"system": ..., "messages": [...]}`: alternating turns, `tool_use` /
        `tool_result` blocks, consecutive results in one user turn; `system` only when present."""
        return providers.messages_request(self._items(include_reasoning))

    def to_gemini(self, *, include_reasoning: bool = False) -> dict[str, Any]:
        """generateContent `{"system_instruction": ..., "contents": [...]}`: roles user / model,
        `function_call` / `function_response` parts matched by id and name."""
        return providers.generate_content_request(self._items(include_reasoning))

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

from tract.models import Message

_config_decoder = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True)
class CompiledWindow:
    """The first `length` messages, commit hashes and encoded configs of a compile."""

    messages: list[Message]
    commit_hashes: list[str]
    configs: list[bytes]
    length: int


class CompiledContext(BaseModel):
    """The context an LLM call would see. Immutable; its lists are the caller's own copies."""

    model_config = ConfigDict(frozen=True)

    token_count: int
    commit_count: int
    token_source: str
    _window: CompiledWindow = PrivateAttr()
    _messages: list[Message] | None = PrivateAttr(default=None)
    _commit_hashes: list[str] | None = PrivateAttr(default=None)

    @classmethod
    def build(cls, window: CompiledWindow, *, token_count: int, token_source: str) -> CompiledContext:
        """Assemble without re-validating what the compiler already built (the hot path)."""
        compiled = cls.model_construct(token_count=token_count, commit_count=window.length, token_source=token_source)
        compiled._window = window
        return compiled

    @computed_field  # type: ignore[prop-decorator]
    @property
    def messages(self) -> list[Message]:
        if self._messages is None:
            self._messages = self._window.messages[: self._window.length]
        return self._messages

    @computed_field  # type: ignore[prop-decorator]
    @property
    def commit_hashes(self) -> list[str]:
        """The commit each message comes from (the original, for edited messages)."""
        if self._commit_hashes is None:
            self._commit_hashes = self._window.commit_hashes[: self._window.length]
        return self._commit_hashes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def generation_configs(self) -> list[dict[str, Any]]:
        """One config per message (`{}` where none), decoded afresh on every access."""
        window = self._window
        return [_config_decoder.decode(raw) for raw in window.configs[: window.length]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompiledContext):
            return NotImplemented
        mine, theirs = self._window, other._window
        return (
            (self.token_count, self.commit_count, self.token_source)
            == (other.token_count, other.commit_count, other.token_source)
            and self.messages == other.messages
            and self.commit_hashes == other.commit_hashes
            and mine.configs[: mine.length] == theirs.configs[: theirs.length]
        )

    __hash__ = None  # type: ignore[assignment]

    def to_openai(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for message in self.messages:
            item: dict[str, Any] = {"role": message.role, "content": message.content}
            if message.name is not None:
                item["name"] = message.name
            out.append(item)
        return out

    def to_anthropic(self) -> dict[str, Any]:
        """System prompt apart; tool I/O as user text; consecutive same-role turns merged."""
        system: list[str] = []
        turns: list[dict[str, Any]] = []
        for message in self.messages:
            if message.role == "system":
                system.append(message.content)
                continue
            role, text = message.role, message.content
            if role == "tool":
                label = f"[tool {message.name}]" if message.name else "[tool]"
                role, text = "user", f"{label} {text}"
            elif role != "user":
                role = "assistant"
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n\n" + text
            else:
                turns.append({"role": role, "content": text})
        return {"system": "\n\n".join(system) if system else None, "messages": turns}

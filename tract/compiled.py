"""What `compile()` returns, and its provider-shaped renderings."""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field

from tract.models import Message

_config_decoder = msgspec.json.Decoder(dict[str, Any])


class CompiledContext(BaseModel):
    """The context an LLM call would see. Immutable; every call returns fresh containers."""

    model_config = ConfigDict(frozen=True)

    messages: list[Message]
    token_count: int
    commit_count: int
    token_source: str
    commit_hashes: list[str]
    _encoded_configs: list[bytes] = PrivateAttr(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        messages: list[Message],
        token_count: int,
        token_source: str,
        commit_hashes: list[str],
        encoded_configs: list[bytes],
    ) -> CompiledContext:
        """Assemble without re-validating what the compiler already built (the hot path)."""
        compiled = cls.model_construct(
            messages=messages,
            token_count=token_count,
            commit_count=len(messages),
            token_source=token_source,
            commit_hashes=commit_hashes,
        )
        compiled._encoded_configs = encoded_configs
        return compiled

    @computed_field  # type: ignore[prop-decorator]
    @property
    def generation_configs(self) -> list[dict[str, Any]]:
        """One config per message (`{}` where none), decoded afresh on every access."""
        return [_config_decoder.decode(raw) for raw in self._encoded_configs]

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

"""The public, validated models users pass in and get back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CommitOperation(str, Enum):
    APPEND = "append"
    EDIT = "edit"


class Priority(str, Enum):
    SKIP = "skip"
    NORMAL = "normal"
    PINNED = "pinned"


class BudgetAction(str, Enum):
    WARN = "warn"
    REJECT = "reject"
    CALLBACK = "callback"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CommitInfo(_Frozen):
    commit_hash: str
    tract_id: str
    parent_hash: str | None
    content_hash: str
    content_type: str
    content: dict[str, Any]
    operation: CommitOperation
    response_to: str | None
    message: str | None
    token_count: int
    metadata: dict[str, Any] | None
    generation_config: dict[str, Any] | None
    created_at: datetime
    position: int = Field(description="Position of the commit's event in the log")


class Annotation(_Frozen):
    priority: Priority
    reason: str | None
    created_at: datetime
    position: int


class ConfigRecord(_Frozen):
    """One config a commit has had: at its creation, or recorded with usage later."""

    generation_config: dict[str, Any]
    source: Literal["commit", "record_usage"]
    created_at: datetime
    position: int


class Message(_Frozen):
    role: str
    content: str
    name: str | None = None


class TokenUsage(_Frozen):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_total(cls, data: Any) -> Any:
        if isinstance(data, dict) and "total_tokens" not in data:
            prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                return {**data, "total_tokens": prompt + completion}
        return data


class TokenBudgetConfig(_Frozen):
    max_tokens: int = Field(gt=0)
    action: BudgetAction = BudgetAction.WARN
    callback: Callable[[int, int], Any] | None = None

    @model_validator(mode="after")
    def _callback_for_callback(self) -> TokenBudgetConfig:
        if self.action is BudgetAction.CALLBACK and self.callback is None:
            raise ValueError("action=CALLBACK needs a callback(current_tokens, max_tokens)")
        return self


class TractConfig(_Frozen):
    tokenizer_encoding: str = "o200k_base"
    token_budget: TokenBudgetConfig | None = None


class ChainHead(_Frozen):
    """The log's last record: its position and SHA-256 (hex)."""

    position: int
    hash: str


class LoggedEvent(NamedTuple):
    """One event as the log holds it."""

    position: int
    created_at: datetime
    type: str
    event: Any

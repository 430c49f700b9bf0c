"""The public, validated models users pass in and get back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

ModelT = TypeVar("ModelT", bound=BaseModel)


class CommitOperation(str, Enum):
    APPEND = "append"
    EDIT = "edit"
    MERGE = "merge"
    COMPRESS = "compress"


class Priority(str, Enum):
    SKIP = "skip"
    NORMAL = "normal"
    PINNED = "pinned"


class BudgetAction(str, Enum):
    WARN = "warn"
    REJECT = "reject"
    CALLBACK = "callback"
    COMPRESS = "compress"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


_new = object.__new__
_STATES: dict[type[BaseModel], dict[str, Any]] = {}
"""Per class: the pickle state pydantic gives an instance with every field set, but its field values."""


def trusted(cls: type[ModelT], values: dict[str, Any]) -> ModelT:
    """An instance of `cls` from values the library itself produced and already checked.

    The hot paths (compiled messages, commit views) build thousands of these, and
    `model_construct`'s per-field bookkeeping costs them about 2.5 us an object; this
    restores the instance through pydantic's own pickle protocol (`__setstate__`) instead,
    with the state pydantic itself produced for the class once, so no private attribute is
    written by name. `values` must name every field; `cls` must be frozen, with no private
    attributes or extra fields (what the state holds besides the fields is shared by its instances).
    """
    state = _STATES.get(cls)
    if state is None:
        if not cls.model_config.get("frozen") or cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
            raise TypeError(f"{cls.__name__} holds more than frozen fields: build it with model_construct")
        complete = cls.model_construct(**dict.fromkeys(cls.model_fields))
        state = _STATES[cls] = {key: value for key, value in complete.__getstate__().items() if key != "__dict__"}
    instance = _new(cls)
    instance.__setstate__({**state, "__dict__": values})
    return instance


def revalidated(instance: ModelT, *, strict: bool = False) -> ModelT:
    """`instance` validated afresh from its field values (and those of models nested in them);
    raises pydantic's `ValidationError`.

    pydantic keeps no record of whether an instance was validated, and `model_construct`
    builds one that was not, so a model whose values are about to be stored is validated again.
    """
    values = instance.__dict__
    for value in values.values():
        if isinstance(value, BaseModel):
            values = {
                name: revalidated(value, strict=strict) if isinstance(value, BaseModel) else value
                for name, value in values.items()
            }
            break
    if instance.__pydantic_extra__:
        values = {**values, **instance.__pydantic_extra__}
    return type(instance).model_validate(values, strict=strict, by_name=True)


class CompressionInfo(_Frozen):
    """What a compress commit replaced in the compiled context, and the context's tokens around it."""

    replaced: list[str] = Field(description="The commits whose messages the summary replaces")
    preserved: list[str] = Field(description="Commits of the range kept verbatim, after the summary")
    tokens_before: int
    tokens_after: int


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
    branch: str = Field(description="The branch the commit was made on")
    merge_parent: str | None = Field(default=None, description="A merge's second parent")
    compression: CompressionInfo | None = Field(default=None, description="What a compress commit replaced")


class CompressResult(_Frozen):
    """A compression: its summary commit, the commits it replaced and preserved, and the
    compiled context's tokens before and after it."""

    summary: CommitInfo
    replaced: list[str]
    preserved: list[str]
    tokens_before: int
    tokens_after: int


class HistoryEntry(_Frozen):
    """One commit of a history, without its content: what drawing or auditing a long history needs
    (`get_commit` reads the rest). `priority` is the one that history gives the commit."""

    commit_hash: str
    parent_hash: str | None
    merge_parent: str | None
    response_to: str | None
    operation: CommitOperation
    content_type: str
    branch: str
    position: int
    created_at: datetime
    priority: Priority


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


TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
"""Tool names every provider accepts (OpenAI, Anthropic and Gemini function names alike)."""


class ToolCall(_Frozen):
    """One call of a tool by the model. A dict with these keys is accepted wherever a call is.

    `arguments` is the JSON object the model produced; a string holding a JSON
    object is parsed into one, and any other string (the model's output was not
    a JSON object, e.g. cut short) is kept as that raw text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    id: str = Field(min_length=1)
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    arguments: dict[str, JsonValue] | str = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _parse_json_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            return parsed if isinstance(parsed, dict) else value
        return value


class Message(_Frozen):
    """One compiled message. Tool turns carry `tool_calls` (an assistant calling tools) or
    `tool_call_id` and `is_error` (a tool's result)."""

    role: str
    content: str
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    is_error: bool = False


MAX_COUNT = 2**63 - 1
"""Counts are stored as signed 64-bit integers (in the log and in DuckDB)."""


class TokenUsage(_Frozen):
    """What an API reported for one call.

    `prompt_tokens` always includes cached input (Anthropic's input, cache-read and
    cache-write figures added up); `completion_tokens` includes reasoning. The cache
    and reasoning figures are kept raw, as the provider reported them (None when it
    reported none); `provider` names the usage shape they came in.
    """

    prompt_tokens: int = Field(ge=0, le=MAX_COUNT)
    completion_tokens: int = Field(ge=0, le=MAX_COUNT)
    total_tokens: int = Field(ge=0, le=MAX_COUNT)
    cache_read_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    cache_write_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    reasoning_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    provider: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_total(cls, data: Any) -> Any:
        if isinstance(data, dict) and "total_tokens" not in data:
            prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                return {**data, "total_tokens": prompt + completion}
        return data


Summarizer = Callable[..., str]
"""`summarizer(messages, *, target_tokens=None) -> str`: the summary text of the `Message`s given
(`target_tokens`, when not None, is a hint of the room the summary has)."""


class TokenBudgetConfig(_Frozen):
    max_tokens: int = Field(gt=0)
    action: BudgetAction = BudgetAction.WARN
    callback: Callable[[int, int], Any] | None = None
    summarizer: Summarizer | None = None
    """For action=COMPRESS: summarises the oldest messages to make room."""

    @model_validator(mode="after")
    def _callback_for_callback(self) -> TokenBudgetConfig:
        if self.action is BudgetAction.CALLBACK and self.callback is None:
            raise ValueError("action=CALLBACK needs a callback(current_tokens, max_tokens)")
        if self.action is BudgetAction.COMPRESS and self.summarizer is None:
            raise ValueError("action=COMPRESS needs a summarizer(messages, *, target_tokens=None) -> str")
        return self


class TractConfig(_Frozen):
    tokenizer_encoding: str = "o200k_base"
    token_budget: TokenBudgetConfig | None = None


class ChainHead(_Frozen):
    """A tract's last record: its position in the tract and its hash (hex SHA-256).

    Write it down; a later `verify(anchor=...)` proves the tract only grew since."""

    tract_id: str
    position: int
    hash: str


class LoggedEvent(NamedTuple):
    """One event as the log holds it."""

    position: int
    created_at: datetime
    type: str
    event: Any


class BranchInfo(_Frozen):
    name: str
    head: str | None
    commit_count: int
    current: bool


class RefLogEntry(_Frozen):
    """One move of a branch head, from the log."""

    branch: str
    old_head: str | None
    new_head: str | None
    reason: str
    created_at: datetime
    position: int


class MergeResult(_Frozen):
    kind: Literal["up-to-date", "fast-forward", "merge"]
    head: str | None
    conflicts_resolved: list[str] = Field(default_factory=list)


class MessageChange(_Frozen):
    """A compiled message present on one side of a diff, or changed between them."""

    commit_hash: str
    a_position: int | None
    b_position: int | None
    a_message: Message | None
    b_message: Message | None


class ConfigChange(_Frozen):
    commit_hash: str
    a_config: dict[str, Any]
    b_config: dict[str, Any]


class ContextDiff(_Frozen):
    """How the compiled contexts of two heads differ, message by message (keyed by commit)."""

    a_head: str | None
    b_head: str | None
    added: list[MessageChange]
    removed: list[MessageChange]
    changed: list[MessageChange]
    config_changes: list[ConfigChange]
    a_tokens: int
    b_tokens: int

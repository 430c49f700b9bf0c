"""Typed context: the content models and how each becomes a chat message.

Every content model carries its `content_type` name, so a stored payload
says what it is. Rendering works from the stored payload (a plain dict), so
compiling never re-validates history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic_core import PydanticSerializationError

from events import canonical_json
from tract.arguments import storable_text
from tract.errors import ContentValidationError, InvalidArgumentError
from tract.jsonvalues import ensure_encodable, fresh, json_object
from tract.models import TOOL_NAME_PATTERN, ToolCall, revalidated, trusted


class MessageParts(NamedTuple):
    role: str
    text: str
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    is_error: bool = False


class ContentModel(BaseModel):
    """Base for content types. Subclasses set `message_role` or override `render`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    content_type: str
    message_role: ClassVar[str] = "assistant"

    @classmethod
    def render(cls, payload: dict[str, Any]) -> MessageParts:
        """The message a stored payload compiles to; by default its text, else its JSON."""
        return MessageParts(cls.message_role, _text_or_json(payload))


def _text_or_json(payload: dict[str, Any]) -> str:
    for key in ("text", "content"):
        value = payload.get(key)
        if isinstance(value, str):
            return value
    body = {key: value for key, value in payload.items() if key != "content_type"}
    return canonical_json(body).decode()


class InstructionContent(ContentModel):
    content_type: Literal["instruction"] = "instruction"
    text: str
    message_role: ClassVar[str] = "system"


class DialogueContent(ContentModel):
    content_type: Literal["dialogue"] = "dialogue"
    role: Literal["user", "assistant", "system"]
    text: str
    name: str | None = None

    @classmethod
    def render(cls, payload: dict[str, Any]) -> MessageParts:
        return MessageParts(payload["role"], payload["text"], payload.get("name"))


class ToolCallContent(ContentModel):
    """An assistant turn that calls tools (with the text the model wrote beside the calls, if any)."""

    content_type: Literal["tool_call"] = "tool_call"
    text: str | None = None
    tool_calls: list[ToolCall] = Field(min_length=1)

    @classmethod
    def render(cls, payload: dict[str, Any]) -> MessageParts:
        calls = [trusted(ToolCall, fresh(call)) for call in payload["tool_calls"]]
        return MessageParts("assistant", payload.get("text") or "", tool_calls=calls)


class ToolResultContent(ContentModel):
    """A tool's result, answering the call with id `tool_call_id`."""

    content_type: Literal["tool_result"] = "tool_result"
    tool_call_id: str = Field(min_length=1)
    content: str
    name: str | None = Field(default=None, pattern=TOOL_NAME_PATTERN)
    is_error: bool = False

    @classmethod
    def render(cls, payload: dict[str, Any]) -> MessageParts:
        return MessageParts(
            "tool",
            payload["content"],
            payload.get("name"),
            tool_call_id=payload["tool_call_id"],
            is_error=payload.get("is_error", False),
        )


class ToolIOContent(ContentModel):
    """The legacy form of tool I/O (no call ids): compiles to a `tool` message named after the tool."""

    content_type: Literal["tool_io"] = "tool_io"
    tool_name: str
    direction: Literal["call", "result"]
    payload: dict[str, JsonValue]
    status: Literal["success", "error"] | None = None
    message_role: ClassVar[str] = "tool"

    @classmethod
    def render(cls, payload: dict[str, Any]) -> MessageParts:
        return MessageParts("tool", _text_or_json(payload), payload["tool_name"])


class ReasoningContent(ContentModel):
    content_type: Literal["reasoning"] = "reasoning"
    text: str


class ArtifactContent(ContentModel):
    content_type: Literal["artifact"] = "artifact"
    artifact_type: str
    content: str
    language: str | None = None


class OutputContent(ContentModel):
    content_type: Literal["output"] = "output"
    text: str
    format: Literal["text", "markdown", "json"] = "text"


class SummaryContent(ContentModel):
    """The text standing for compressed messages (what `compress()` commits). A user turn, so a
    context that starts with it, or continues with the model's turn after it, renders everywhere."""

    content_type: Literal["summary"] = "summary"
    text: str
    message_role: ClassVar[str] = "user"


class FreeformContent(ContentModel):
    content_type: Literal["freeform"] = "freeform"
    payload: dict[str, JsonValue]


BUILTIN_CONTENT_TYPES: dict[str, type[BaseModel]] = {
    "instruction": InstructionContent,
    "dialogue": DialogueContent,
    "tool_io": ToolIOContent,
    "tool_call": ToolCallContent,
    "tool_result": ToolResultContent,
    "reasoning": ReasoningContent,
    "artifact": ArtifactContent,
    "output": OutputContent,
    "freeform": FreeformContent,
    "summary": SummaryContent,
}


class ContentRegistry:
    """The content types one tract accepts: the built-ins plus registered ones."""

    def __init__(self) -> None:
        self._models: dict[str, type[BaseModel]] = {}
        self._renderers: dict[str, Callable[[dict[str, Any]], MessageParts]] = {}
        for name, model in BUILTIN_CONTENT_TYPES.items():
            self._add(name, model)

    def register(self, name: str, model: type[BaseModel]) -> None:
        name = storable_text(name, "name")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidArgumentError(
                f"content type {name!r} must be a pydantic model class, not {type(model).__name__}"
            )
        if name in BUILTIN_CONTENT_TYPES:
            raise InvalidArgumentError(f"{name!r} is a built-in content type and cannot be replaced")
        self._add(name, model)

    def renderers(self) -> tuple[tuple[str, Callable[[dict[str, Any]], MessageParts]], ...]:
        """How each type renders now: equal snapshots render every payload alike (what lets the
        compiler reuse messages it rendered before)."""
        return tuple(self._renderers.items())

    def _add(self, name: str, model: type[BaseModel]) -> None:
        self._models[name] = model
        self._renderers[name] = model.render if issubclass(model, ContentModel) else _fallback

    def validate(self, content: BaseModel | dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(content_type, JSON payload) for content given as a model or a dict with `content_type`."""
        try:
            if isinstance(content, BaseModel):
                name = self._name_of(content)
                validated = revalidated(content)  # it may come from model_construct, never validated
            elif isinstance(content, dict):
                given = content.get("content_type")
                if not isinstance(given, str):
                    raise ContentValidationError("a content dict needs a 'content_type' naming its type")
                name = given
                model = self._model(name)
                if "content_type" not in model.model_fields:
                    content = {key: value for key, value in content.items() if key != "content_type"}
                validated = model.model_validate(content)
            else:
                raise ContentValidationError(
                    f"content must be a content model or a dict with 'content_type', not {type(content).__name__}"
                )
            # Built-in types hold only JSON values, so a plain dump keeps every string exactly
            # (a JSON-mode dump would quietly replace lone surrogates instead of refusing them).
            # Registered types may nest models; a value not of its declared type is an error.
            builtin = name in BUILTIN_CONTENT_TYPES
            payload = validated.model_dump(
                mode="python" if isinstance(validated, ContentModel) else "json",
                warnings=True if builtin else "error",
            )
        except (ValidationError, PydanticSerializationError) as error:
            raise ContentValidationError(f"invalid {name} content: {error}") from None
        payload["content_type"] = name
        if builtin:  # their fields are JSON values by their own types
            ensure_encodable(payload, f"{name} content")
            return name, payload
        return name, json_object(payload, f"{name} content")  # a registered type may declare any field type

    def _model(self, name: str) -> type[BaseModel]:
        model = self._models.get(name)
        if model is None:
            raise ContentValidationError(f"unknown content_type {name!r}; known: {', '.join(sorted(self._models))}")
        return model

    def _name_of(self, content: BaseModel) -> str:
        for name, model in self._models.items():
            if type(content) is model:
                return name
        raise ContentValidationError(
            f"{type(content).__name__} is not a registered content type; use register_content_type(name, model)"
        )

    def knows(self, content_type: str) -> bool:
        return content_type in self._models

    def render(self, content_type: str, payload: dict[str, Any]) -> MessageParts:
        return self._renderers.get(content_type, _fallback)(payload)


def _fallback(payload: dict[str, Any]) -> MessageParts:
    """How a type without its own rendering (or one this reader does not know) compiles."""
    return MessageParts("assistant", _text_or_json(payload))

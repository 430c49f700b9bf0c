"""Conversation shortcuts and provider responses in: the methods `Tract` gets from `Conversation`.

Each shortcut builds the content and calls `commit`, so it takes `commit`'s
keyword arguments (`generation_config`, `metadata`, `message`) and returns
its `CommitInfo`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import ValidationError

from tract import arguments
from tract.content import DialogueContent, InstructionContent, ToolCallContent, ToolResultContent
from tract.errors import ContentValidationError, InvalidArgumentError
from tract.jsonvalues import json_object
from tract.models import CommitInfo, CommitOperation, TokenUsage, ToolCall
from tract.sdk_objects import parse_response

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tract.compiled import CompiledContext
    from tract.compiler import Compiler


class Conversation:
    """Shortcuts over `commit` for `Tract` (which provides what is declared below)."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _compiler: Compiler

        @property
        def head(self) -> str | None: ...
        def commit(
            self,
            content: BaseModel | dict[str, Any],
            *,
            operation: CommitOperation | str = ...,
            message: str | None = ...,
            response_to: str | None = ...,
            metadata: dict[str, Any] | None = ...,
            generation_config: dict[str, Any] | None = ...,
        ) -> CommitInfo: ...
        def record_usage(
            self,
            usage: TokenUsage | Mapping[str, Any] | object,
            *,
            head_hash: str | None = ...,
            generation_config: dict[str, Any] | None = ...,
        ) -> CompiledContext: ...
        def batch(self) -> AbstractContextManager[Any]: ...

    def system(self, text: str, **commit_kwargs: Any) -> CommitInfo:
        """An instruction (compiles to a system message; PINNED by default)."""
        return self.commit(_built(InstructionContent, text=arguments.text(text, "text")), **commit_kwargs)

    def user(self, text: str, *, name: str | None = None, **commit_kwargs: Any) -> CommitInfo:
        checked = arguments.text(text, "text")
        return self.commit(_built(DialogueContent, role="user", text=checked, name=name), **commit_kwargs)

    def assistant(
        self,
        text: str | None = None,
        *,
        tool_calls: Sequence[ToolCall | Mapping[str, Any]] | None = None,
        **commit_kwargs: Any,
    ) -> CommitInfo:
        """The assistant's turn: text, tool calls (`ToolCall` or dicts with id, name, arguments), or both."""
        arguments.optional_text(text, "text")
        if tool_calls is not None and not (isinstance(tool_calls, Sequence) and len(tool_calls) == 0):
            content: BaseModel = _built(ToolCallContent, text=text, tool_calls=tool_calls)
        elif text is None:
            raise InvalidArgumentError("assistant() needs text or tool_calls")
        else:
            content = _built(DialogueContent, role="assistant", text=text)
        return self.commit(content, **commit_kwargs)

    def tool_result(
        self,
        tool_call_id: str,
        content: Any,
        *,
        name: str | None = None,
        is_error: bool = False,
        **commit_kwargs: Any,
    ) -> CommitInfo:
        """A tool's result for call `tool_call_id`. Content that is not a string is stored as its JSON.

        Refused when no tool call in the compiled context has that id (rendering
        checks the pairing again, whatever happens to the commits later).
        """
        arguments.text(tool_call_id, "tool_call_id")
        text = content if isinstance(content, str) else _json_text(content)
        result = _built(ToolResultContent, tool_call_id=tool_call_id, content=text, name=name, is_error=is_error)
        with self._lock:
            # Not `compile()`: its notion of the last context sent is left alone.
            if self._compiler.compile_live(self.head).find_tool_call(tool_call_id) is None:
                raise InvalidArgumentError(f"no tool call with id {tool_call_id!r} in the compiled context")
            return self.commit(result, **commit_kwargs)

    def commit_response(self, response: Any, *, generation_config: dict[str, Any] | None = None) -> CommitInfo:
        """Commit the assistant turn of a provider response (text and tool calls) and record its
        usage for the context it answered (HEAD before this commit), in one atomic write.

        Takes an OpenAI `ChatCompletion` or Responses `Response`, an Anthropic `Message`, a Gemini
        `GenerateContentResponse`, or their dicts. The response's `model` goes into the generation
        config unless the config names one.
        """
        with self._lock:
            context = self.head
            if context is None:
                raise InvalidArgumentError("commit_response answers a context, and this tract has no commits yet")
            parsed = parse_response(response, id_seed=context)
            config = dict(json_object(generation_config, "generation_config")) if generation_config is not None else {}
            if parsed.model is not None:
                config.setdefault("model", parsed.model)
            content = (
                _built(ToolCallContent, text=parsed.text or None, tool_calls=parsed.tool_calls)
                if parsed.tool_calls
                else _built(DialogueContent, role="assistant", text=parsed.text)
            )
            with self.batch():
                info = self.commit(content, generation_config=config or None)
                if parsed.usage is not None:
                    self.record_usage(parsed.usage, head_hash=context)
            return info


def _built(model: type[BaseModel], **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as error:
        raise ContentValidationError(f"invalid {model.__name__}: {error}") from None


def _json_text(value: Any) -> str:
    return msgspec.json.encode(json_object({"value": value}, "tool result content")["value"]).decode()

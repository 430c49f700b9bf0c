"""API-reported usage in the shapes providers return it: SDK objects, or their dicts.

Each shape gives the same normalised figures: `prompt_tokens` includes cached
input (OpenAI's and Gemini's prompt figures already do; Anthropic's is
`input_tokens + cache_read_input_tokens + cache_creation_input_tokens`), and
`completion_tokens` includes reasoning (Gemini's thoughts are added to its
candidates). Cache-read, cache-write and reasoning counts are kept raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tract.errors import UsageError
from tract.models import TokenUsage, revalidated
from tract.sdk_objects import MISSING, is_plain_value, read, read_or_none


@dataclass(frozen=True)
class _Shape:
    provider: str | None
    prompt: str
    completion: str
    total: str


_CHAT = _Shape("openai.chat", "prompt_tokens", "completion_tokens", "total_tokens")
_INPUT_OUTPUT = _Shape(None, "input_tokens", "output_tokens", "total_tokens")
_GEMINI = _Shape("gemini", "promptTokenCount", "candidatesTokenCount", "totalTokenCount")
_GEMINI_SNAKE = _Shape("gemini", "prompt_token_count", "candidates_token_count", "total_token_count")
_SHAPES = (_CHAT, _INPUT_OUTPUT, _GEMINI, _GEMINI_SNAKE)
_ANTHROPIC_CACHE = ("cache_read_input_tokens", "cache_creation_input_tokens")


def parse_usage(usage: Any) -> TokenUsage:
    if isinstance(usage, TokenUsage):
        try:
            return revalidated(usage, strict=True)  # it may come from model_construct, never validated
        except ValidationError as error:
            raise UsageError(f"usage is not a valid TokenUsage: {error.errors()[0]['msg']}") from None
    if is_plain_value(usage):
        raise UsageError(
            f"usage must be a TokenUsage, a provider's usage object or its dict, not {type(usage).__name__}"
        )
    for shape in _SHAPES:
        if read(usage, shape.prompt) is not MISSING and read(usage, shape.completion) is not MISSING:
            return _validated(_figures(usage, shape))
    known = "; ".join(f"{shape.prompt}+{shape.completion}" for shape in _SHAPES)
    keys = sorted(map(str, usage)) if hasattr(usage, "keys") else type(usage).__name__
    raise UsageError(f"unrecognised usage keys {keys}; expected one of: {known}")


def _figures(usage: Any, shape: _Shape) -> dict[str, Any]:
    prompt, completion = read(usage, shape.prompt), read(usage, shape.completion)
    fields: dict[str, Any] = {"provider": shape.provider}
    if shape is _CHAT:
        fields["cache_read_tokens"] = _detail(usage, "prompt_tokens_details", "cached_tokens")
        fields["cache_write_tokens"] = _detail(usage, "prompt_tokens_details", "cache_write_tokens")
        fields["reasoning_tokens"] = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    elif shape is _INPUT_OUTPUT and any(read(usage, key) is not MISSING for key in _ANTHROPIC_CACHE):
        fields["provider"] = "anthropic"
        cache_read = fields["cache_read_tokens"] = read_or_none(usage, "cache_read_input_tokens")
        cache_write = fields["cache_write_tokens"] = read_or_none(usage, "cache_creation_input_tokens")
        if all(type(value) is int for value in (prompt, cache_read or 0, cache_write or 0)):
            prompt = prompt + (cache_read or 0) + (cache_write or 0)
    elif shape is _INPUT_OUTPUT and read(usage, "input_tokens_details", "output_tokens_details") is not MISSING:
        fields["provider"] = "openai.responses"
        fields["cache_read_tokens"] = _detail(usage, "input_tokens_details", "cached_tokens")
        fields["cache_write_tokens"] = _detail(usage, "input_tokens_details", "cache_write_tokens")
        fields["reasoning_tokens"] = _detail(usage, "output_tokens_details", "reasoning_tokens")
    elif shape.provider == "gemini":
        fields["cache_read_tokens"] = read_or_none(usage, "cached_content_token_count", "cachedContentTokenCount")
        thoughts = fields["reasoning_tokens"] = read_or_none(usage, "thoughts_token_count", "thoughtsTokenCount")
        if type(completion) is int and type(thoughts) is int:
            completion += thoughts
    fields["prompt_tokens"], fields["completion_tokens"] = prompt, completion
    total = read_or_none(usage, shape.total)
    if total is not None and fields["provider"] != "anthropic":
        fields["total_tokens"] = total
    return fields


def _detail(usage: Any, details: str, key: str) -> Any:
    found = read_or_none(usage, details)
    return None if found is None else read_or_none(found, key)


def _validated(fields: dict[str, Any]) -> TokenUsage:
    try:
        return TokenUsage.model_validate(fields, strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise UsageError(f"usage counts must be integers from 0 to 2**63-1: {where}: {first['msg']}") from None

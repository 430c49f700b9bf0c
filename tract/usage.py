"""API-reported usage in the shapes providers return it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tract.errors import UsageError
from tract.models import TokenUsage, revalidated

# (prompt key, completion key, total key) for each provider's usage object.
_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("prompt_tokens", "completion_tokens", "total_tokens"),  # OpenAI chat completions
    ("input_tokens", "output_tokens", "total_tokens"),  # Anthropic, OpenAI Responses
    ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"),  # Gemini
)


def parse_usage(usage: TokenUsage | Mapping[str, Any]) -> TokenUsage:
    if isinstance(usage, TokenUsage):
        try:
            return revalidated(usage, strict=True)  # it may come from model_construct, never validated
        except ValidationError as error:
            raise UsageError(f"usage is not a valid TokenUsage: {error.errors()[0]['msg']}") from None
    if not isinstance(usage, Mapping):
        raise UsageError(f"usage must be a TokenUsage or a provider's usage dict, not {type(usage).__name__}")
    for prompt_key, completion_key, total_key in _SHAPES:
        if prompt_key in usage and completion_key in usage:
            fields = {"prompt_tokens": usage[prompt_key], "completion_tokens": usage[completion_key]}
            if usage.get(total_key) is not None:
                fields["total_tokens"] = usage[total_key]
            try:
                return TokenUsage.model_validate(fields, strict=True)
            except ValidationError as error:
                raise UsageError(
                    f"usage counts must be integers from 0 to 2**63-1: {error.errors()[0]['msg']}"
                ) from None
    known = "; ".join(f"{p}+{c}" for p, c, _ in _SHAPES)
    raise UsageError(f"unrecognised usage keys {sorted(map(str, usage))}; expected one of: {known}")

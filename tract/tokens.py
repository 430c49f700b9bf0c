"""Token counting, offline: the BPE files ship inside the package.

`TiktokenCounter` builds its encoding from the gzipped rank files in
`tract/encodings/`, checks their SHA-256 against tiktoken's published hash,
and parses each file once per process.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec
import tiktoken
import tiktoken.model

from tract.errors import EncodingError

if TYPE_CHECKING:
    from tract.content import MessageParts

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

ENCODINGS_DIR = Path(__file__).with_name("encodings")
"""The rank files, installed with the package."""

# name -> (pattern, special tokens, SHA-256 of the uncompressed rank file), as tiktoken defines them.
SHIPPED_ENCODINGS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}


@cache
def load_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, from the shipped files when we have them."""
    if name not in SHIPPED_ENCODINGS:
        try:
            return tiktoken.get_encoding(name)
        except Exception as error:  # noqa: BLE001 - tiktoken's loaders raise many kinds; each is named
            raise EncodingError(
                f"encoding {name!r} is not shipped with tract ({', '.join(SHIPPED_ENCODINGS)} are) "
                f"and tiktoken could not load it: {error}"
            ) from None
    pattern, special_tokens, expected_sha256 = SHIPPED_ENCODINGS[name]
    packed = (ENCODINGS_DIR / f"{name}.tiktoken.gz").read_bytes()
    raw = gzip.decompress(packed)
    if hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise EncodingError(f"shipped rank file for {name} fails its SHA-256 check; the package is damaged")
    fields = raw.split()  # token, rank, token, rank, ...: parsed in C, not line by line
    ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)


@dataclass(frozen=True)
class ChatFormula:
    """The chat-format overheads: per message, per name, and the reply primer."""

    per_message: int = 3
    per_name: int = 1
    reply_primer: int = 3

    def message(self, role_tokens: int, content_tokens: int, name_tokens: int | None) -> int:
        extra = 0 if name_tokens is None else self.per_name + name_tokens
        return self.per_message + role_tokens + content_tokens + extra

    def total(self, message_tokens: int, message_count: int) -> int:
        """Prompt tokens for the messages; 0 for none (there is nothing to prime a reply to)."""
        return message_tokens + self.reply_primer if message_count else 0


CHAT_FORMULA = ChatFormula()

TOOL_CALL_OVERHEAD = 3
"""Tokens added per tool call, besides its name and arguments (close to what providers bill)."""


def arguments_text(arguments: dict[str, Any] | str) -> str:
    """A call's arguments as the JSON text the model wrote (raw text is kept as it is)."""
    return arguments if isinstance(arguments, str) else msgspec.json.encode(arguments).decode()


def content_tokens(counter: TokenCounter, parts: MessageParts) -> int:
    """Tokens of one message's content: its text, plus for each tool call a fixed
    overhead and its name and arguments (as JSON text) through the tokenizer."""
    tokens = counter.count_text(parts.text)
    for call in parts.tool_calls or ():
        tokens += (
            TOOL_CALL_OVERHEAD + counter.count_text(call.name) + counter.count_text(arguments_text(call.arguments))
        )
    return tokens


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens; `name` is what `token_source` reports.

    A counter may also carry a `formula` (`ChatFormula`); without one the
    standard chat overheads apply. A counter that defines its own
    `count_messages` has compile totals come from it, over the compiled
    messages as `Message.model_dump()` dicts.
    """

    name: str

    def count_text(self, text: str) -> int: ...

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int: ...


class _ChatCounter:
    """count_messages for any count_text: the chat formula over each message."""

    formula = CHAT_FORMULA

    def count_text(self, text: str) -> int:
        raise NotImplementedError

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Messages as compile gives them (`Message.model_dump()`) or in OpenAI's chat shape."""
        total = count = 0
        for message in messages:
            name = message.get("name")
            content = self.count_text(message.get("content") or "")
            for call in message.get("tool_calls") or ():
                function = call.get("function", call)
                content += (
                    TOOL_CALL_OVERHEAD
                    + self.count_text(function["name"])
                    + self.count_text(arguments_text(function["arguments"]))
                )
            total += self.formula.message(
                self.count_text(message["role"] or ""), content, None if name is None else self.count_text(name)
            )
            count += 1
        return self.formula.total(total, count)


def counts_messages_itself(counter: TokenCounter) -> bool:
    """True when a counter defines its own `count_messages` (so compile totals come from it)."""
    own = getattr(type(counter), "count_messages", None)
    return callable(own) and own is not _ChatCounter.count_messages


class TiktokenCounter(_ChatCounter):
    def __init__(self, encoding: str = "o200k_base") -> None:
        self._encoding = load_encoding(encoding)
        self.name = f"tiktoken:{encoding}"

    @classmethod
    def for_model(cls, model: str) -> TiktokenCounter:
        """The counter for an OpenAI model name (e.g. "gpt-4o" -> o200k_base), as tiktoken maps them."""
        try:
            encoding = tiktoken.model.encoding_name_for_model(model)
        except KeyError:
            raise EncodingError(
                f"no known tiktoken encoding for model {model!r}; name one with TiktokenCounter(encoding)"
            ) from None
        return cls(encoding)

    def count_text(self, text: str) -> int:
        # Special-token text in user content is counted as ordinary text, never refused.
        return len(self._encoding.encode(text, disallowed_special=()))


class NullTokenCounter(_ChatCounter):
    """Counts nothing: for callers who only want the API-reported usage."""

    name = "null"
    formula = ChatFormula(per_message=0, per_name=0, reply_primer=0)

    def count_text(self, text: str) -> int:
        return 0

"""Compile a commit chain into messages, incrementally for the live HEAD.

The cache holds the last few compiled heads (one per branch recently
compiled) as parallel lists (originals, messages, token counts, encoded
configs). Moving a head forward applies only the new commits; a config
recorded later updates one slot. A SKIP change, a merge, or moving onto a
commit at which older messages were annotated recompiles from the root. Token counts
come from the commit events when they were counted with the same tokenizer,
so a cold compile never re-tokenizes history.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec

from events import CommitCreated
from projections import CommitView, StoredCommit, UsageEntry
from projections.commit_view import Visibility
from tract.compiled import CompiledContext, CompiledWindow
from tract.content import ContentRegistry, MessageParts
from tract.errors import CorruptLogError
from tract.models import Message, TokenUsage, trusted
from tract.tokens import CHAT_FORMULA, ChatFormula, TokenCounter, content_tokens, counts_messages_itself

EDIT_MARKER = "[edited] "
_EMPTY_CONFIG = b"{}"
CACHED_HEADS = 4
_encode_json = msgspec.json.encode


@dataclass
class _Compiled:
    head: str | None = None
    head_position: int = 0
    originals: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    configs: list[bytes] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    edit_of: dict[str, str] = field(default_factory=dict)
    edit_target: dict[str, str] = field(default_factory=dict)
    total: int = 0
    has_tool_calls: bool = False
    """Some message holds tool calls (dicts): results copy those messages when handed out."""
    skip_changes_seen: int = 0
    config_changes_seen: int = 0
    visible: Visibility = field(default_factory=Visibility)
    shared: bool = False
    """A result has a window onto these lists: copy before rewriting a slot."""

    def own_slots(self) -> None:
        """Copy the lists results can see before a slot is rewritten (appends need no copy)."""
        if self.shared:
            self.messages, self.configs, self.types = self.messages.copy(), self.configs.copy(), self.types.copy()
            self.shared = False


class Compiler:
    def __init__(self, view: CommitView, registry: ContentRegistry, counter: TokenCounter) -> None:
        self._view = view
        self._registry = registry
        self._counter = counter
        self._formula: ChatFormula = getattr(counter, "formula", CHAT_FORMULA)
        self._counts_messages = counts_messages_itself(counter)
        self._role_tokens: dict[str, int] = {}
        self._cache: OrderedDict[str | None, _Compiled] = OrderedDict()

    # -- public entry points -------------------------------------------------

    def compile_live(self, head: str | None) -> CompiledContext:
        """The context at `head` from the incremental cache (the live HEAD, or a recent one)."""
        return self._result(self._catch_up(head))

    def compile_at(self, head: str | None, *, edit_markers: bool = False) -> CompiledContext:
        """A one-off full compile (at a commit, or with edit markers); leaves the cache alone."""
        compiled = _Compiled()
        self._build(compiled, head, edit_markers=edit_markers)
        return self._result(compiled)

    def tokens_with(self, head: str | None, event: CommitCreated) -> int:
        """Compiled tokens if `event` were committed on top of `head` (for budgets)."""
        live = self._catch_up(head)
        message, tokens = self._render(event)
        slot = None if event.operation == "append" else live.index.get(event.response_to or "")
        if self._counts_messages:
            messages = live.messages[: len(live.originals)]
            if event.operation == "append":
                messages.append(message)
            elif slot is not None:
                messages[slot] = message
            return self._counter.count_messages([m.model_dump() for m in messages])
        if event.operation == "append":
            return self._formula.total(live.total + tokens, len(live.originals) + 1)
        change = tokens - live.tokens[slot] if slot is not None else 0
        return self._formula.total(live.total + change, len(live.originals))

    # -- building ------------------------------------------------------------

    def _catch_up(self, head: str | None) -> _Compiled:
        """The cached compile of `head`: as cached, advanced from a cached ancestor, or built."""
        cache, skips = self._cache, self._view.skip_changes
        live = cache.pop(head, None)
        if live is not None and live.skip_changes_seen != skips:
            live = None
        if live is None:
            for key in reversed(cache):
                candidate = cache[key]
                if candidate.skip_changes_seen == skips and self._advance(candidate, head):
                    live = cache.pop(key)
                    break
        if live is None:
            live = _Compiled()
            self._build(live, head)
        cache[head] = live
        while len(cache) > CACHED_HEADS:
            cache.popitem(last=False)
        self._apply_config_changes(live)
        return live

    def _advance(self, live: _Compiled, head: str | None) -> bool:
        """Apply the commits between the cached head and `head`; False if `head`
        does not descend from it along first parents (or a merge is in between)."""
        if head == live.head:
            return True
        if head is None:
            return False
        new: list[StoredCommit] = []
        cursor: str | None = head
        while cursor != live.head:
            if cursor is None:
                return False
            stored = self._view.get(cursor)
            if (
                stored is None
                or stored.position <= live.head_position
                or stored.event.merge_parent
                or cursor in self._view.anchors  # may re-prioritise messages already compiled
            ):
                return False
            new.append(stored)
            cursor = stored.event.parent_hash
        for stored in reversed(new):
            live.visible.include(stored)
            self._apply(live, stored, False)
        return True

    def _build(self, compiled: _Compiled, head: str | None, *, edit_markers: bool = False) -> None:
        compiled.skip_changes_seen = self._view.skip_changes
        compiled.config_changes_seen = len(self._view.config_changes)
        history = self._view.history(head)
        for stored in history:
            compiled.visible.include(stored)
        for stored in history:
            self._apply(compiled, stored, edit_markers)
        compiled.head = head

    def _apply(self, compiled: _Compiled, stored: StoredCommit, markers: bool) -> None:
        event = stored.event
        commit_hash = event.commit_hash
        compiled.head, compiled.head_position = commit_hash, max(compiled.head_position, stored.position)
        if event.operation == "merge" or (
            commit_hash in self._view.state.annotations and self._view.is_skipped(commit_hash, compiled.visible)
        ):
            return
        if event.operation == "edit":
            if event.commit_hash in compiled.visible.ignored_edits:
                return
            target = event.response_to or ""
            compiled.edit_of[target] = event.commit_hash
            compiled.edit_target[event.commit_hash] = target
            slot = compiled.index.get(target)
            if slot is not None:
                compiled.own_slots()
                message, tokens, config, kind = self._slot(compiled, target, markers)
                compiled.total += tokens - compiled.tokens[slot]
                compiled.messages[slot], compiled.tokens[slot], compiled.configs[slot] = message, tokens, config
                compiled.types[slot] = kind
                compiled.has_tool_calls = compiled.has_tool_calls or message.tool_calls is not None
            return
        if commit_hash in compiled.edit_of:  # edited before it was applied (a merged history)
            message, tokens, config, kind = self._slot(compiled, commit_hash, markers)
        else:
            message, tokens = self._render(event)
            config, kind = self._config_for(commit_hash, None), event.content_type
        compiled.index[commit_hash] = len(compiled.originals)
        compiled.has_tool_calls = compiled.has_tool_calls or message.tool_calls is not None
        compiled.originals.append(commit_hash)
        compiled.messages.append(message)
        compiled.tokens.append(tokens)
        compiled.configs.append(config)
        compiled.types.append(kind)
        compiled.total += tokens

    def _slot(self, compiled: _Compiled, original: str, markers: bool) -> tuple[Message, int, bytes, str]:
        """Message, tokens, config and content type of one original, as its effective edit leaves it."""
        edit = compiled.edit_of.get(original)
        source = self._view.get(edit or original)
        assert source is not None
        message, tokens = self._render(source.event, marker=markers and edit is not None)
        return message, tokens, self._config_for(original, edit), source.event.content_type

    def _config_for(self, original: str, edit: str | None) -> bytes:
        view = self._view
        config = view.config(edit) if edit is not None else None
        if config is None:
            config = view.config(original)
        return _encode_json(config) if config else _EMPTY_CONFIG

    def _apply_config_changes(self, compiled: _Compiled) -> None:
        changes = self._view.config_changes
        for commit_hash in changes[compiled.config_changes_seen :]:
            original = compiled.edit_target.get(commit_hash, commit_hash)
            slot = compiled.index.get(original)
            if slot is not None:
                compiled.own_slots()
                compiled.configs[slot] = self._config_for(original, compiled.edit_of.get(original))
        compiled.config_changes_seen = len(changes)

    def _render(self, event: CommitCreated, *, marker: bool = False) -> tuple[Message, int]:
        parts = self._parts(event)
        text = EDIT_MARKER + parts.text if marker else parts.text
        # The stored count is for the writer's rendering: reuse it only when we render alike
        # (same tokenizer, no marker, and a content type we know rather than the fallback).
        if event.tokenizer == self._counter.name and not marker and self._registry.knows(event.content_type):
            counted = event.token_count
        else:
            counted = content_tokens(self._counter, parts._replace(text=text))
        name_tokens = None if parts.name is None else self._count_label(parts.name)
        tokens = self._formula.message(self._count_label(parts.role), counted, name_tokens)
        message = trusted(
            Message,
            {
                "role": parts.role,
                "content": text,
                "name": parts.name,
                "tool_calls": parts.tool_calls,
                "tool_call_id": parts.tool_call_id,
                "is_error": parts.is_error,
            },
        )
        return message, tokens

    def _parts(self, event: CommitCreated) -> MessageParts:
        """The stored payload rendered as its type says; one that does not render is a corrupt record
        (the writer validated every payload, so only a forged or damaged log holds one)."""
        try:
            parts = self._registry.render(event.content_type, event.content)
        except Exception as error:
            raise self._unrenderable(event, f"{type(error).__name__}: {error}") from error
        if not (
            isinstance(parts.role, str)
            and isinstance(parts.text, str)
            and (parts.name is None or isinstance(parts.name, str))
        ):
            raise self._unrenderable(event, "role, text and name must be strings")
        return parts

    def _unrenderable(self, event: CommitCreated, why: str) -> CorruptLogError:
        stored = self._view.get(event.commit_hash)
        position = stored.position if stored is not None else None
        return CorruptLogError(
            f"commit {event.commit_hash}: its {event.content_type} payload does not render ({why})",
            position=position,
            kind="unrenderable content",
            tract_id=event.tract_id,
        )

    def _count_label(self, label: str) -> int:
        count = self._role_tokens.get(label)
        if count is None:
            count = self._role_tokens[label] = self._counter.count_text(label)
        return count

    def _result(self, compiled: _Compiled) -> CompiledContext:
        length = len(compiled.originals)
        if self._counts_messages:
            token_count = self._counter.count_messages([m.model_dump() for m in compiled.messages[:length]])
        else:
            token_count = self._formula.total(compiled.total, length)
        compiled.shared = True
        window = CompiledWindow(
            compiled.messages, compiled.originals, compiled.configs, compiled.types, length, compiled.has_tool_calls
        )
        usage = self._view.usage_for(compiled.head) if compiled.head is not None else None
        return CompiledContext.build(
            window, token_count=token_count, token_source=self._counter.name, api_usage=_api_usage(usage)
        )


def _api_usage(entry: UsageEntry | None) -> TokenUsage | None:
    """The figures an API reported for this very context, as the public model."""
    if entry is None:
        return None
    return trusted(
        TokenUsage,
        {
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "total_tokens": entry.total_tokens,
            "cache_read_tokens": entry.cache_read_tokens,
            "cache_write_tokens": entry.cache_write_tokens,
            "reasoning_tokens": entry.reasoning_tokens,
            "provider": entry.provider,
        },
    )

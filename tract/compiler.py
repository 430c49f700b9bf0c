"""Compile a commit chain into messages, incrementally for the live HEAD.

The cache holds the last few compiled heads (one per branch recently
compiled) as parallel lists (originals, messages, token counts, encoded
configs). Moving a head forward applies only the new commits; a config
recorded later updates one slot; a compression splices its summary in place
of the slots it replaces. A SKIP change, a merge, or moving onto a
commit at which older messages were annotated recompiles from the root. Token counts
come from the commit events when they were counted with the same tokenizer,
so a cold compile never re-tokenizes history.

Content stays in the log: a build reads the commits it renders through the view
(`CommitView.event`), a window at a time. A recompile takes every message it can
from the compile it replaces (or the latest one cached): a message is the same
wherever the same commit (as edited by the same edit) is rendered, so only the
commits that compile never rendered are read and rendered again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import msgspec

from events import CommitCreated, Compression
from projections import CommitView, UsageEntry
from projections.bulk import paused_gc
from projections.commit_table import NO_ROW
from projections.content_reads import ReadAhead
from projections.view_state import Visibility
from tract.compile_state import CompileState, Slot
from tract.compiled import CompiledContext, CompiledWindow
from tract.content import ContentRegistry, MessageParts
from tract.errors import ContentValidationError, CorruptLogError
from tract.models import Message, TokenUsage, trusted
from tract.tokens import CHAT_FORMULA, ChatFormula, TokenCounter, content_tokens, counts_messages_itself

EDIT_MARKER = "[edited] "
_EMPTY_CONFIG = b"{}"
CACHED_HEADS = 4
_encode_json = msgspec.json.encode


class Compiler:
    def __init__(self, view: CommitView, registry: ContentRegistry, counter: TokenCounter) -> None:
        self._view = view
        self._registry = registry
        self._counter = counter
        self._formula: ChatFormula = getattr(counter, "formula", CHAT_FORMULA)
        self._counts_messages = counts_messages_itself(counter)
        self._role_tokens: dict[str, int] = {}
        self._cache: OrderedDict[str | None, CompileState] = OrderedDict()

    # -- public entry points -------------------------------------------------

    def compile_live(self, head: str | None) -> CompiledContext:
        """The context at `head` from the incremental cache (the live HEAD, or a recent one)."""
        return self._result(self._catch_up(head))

    def compile_at(self, head: str | None, *, edit_markers: bool = False) -> CompiledContext:
        """A one-off full compile (at a commit, or with edit markers); leaves the cache alone."""
        compiled = CompileState()
        self._build(compiled, head, edit_markers=edit_markers, donor=self._latest())
        return self._result(compiled)

    def visibility(self, head: str | None) -> Visibility:
        """What the history of `head` sees (from its cached compile)."""
        return self._catch_up(head).visible

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

    def preview(self, head: str | None, events: Sequence[CommitCreated]) -> CompiledContext:
        """The context at `head` as it would be with `events` (commits not written yet, each on the
        one before) on top: what a compression or a budget checks before anything is written."""
        scratch = self._catch_up(head).scratch()
        for event in events:
            message, tokens = self._render(event)
            own = _encode_json(event.generation_config) if event.generation_config else None
            if event.operation == "edit":
                target = event.response_to or ""
                slot = scratch.index.get(target)
                if slot is not None:
                    config = own or self._config_for(target, None)
                    scratch.rewrite(slot, Slot(message, tokens, config, event.content_type))
            elif isinstance(event.compression, Compression):
                summary = Slot(message, tokens, own or _EMPTY_CONFIG, event.content_type)
                scratch.splice(event.compression.replaces, event.compression.preserves, event.commit_hash, summary)
            else:
                scratch.append(event.commit_hash, Slot(message, tokens, own or _EMPTY_CONFIG, event.content_type))
            scratch.head = event.commit_hash
        return self._result(scratch)

    # -- building ------------------------------------------------------------

    def _catch_up(self, head: str | None) -> CompileState:
        """The cached compile of `head`: as cached, advanced from a cached ancestor, or built."""
        cache, skips = self._cache, self._view.skip_changes
        live = cache.pop(head, None)
        donor = None
        if live is not None and live.skip_changes_seen != skips:
            donor, live = live, None
        if live is None:
            for key in reversed(cache):
                candidate = cache[key]
                if candidate.skip_changes_seen == skips and self._advance(candidate, head):
                    live = cache.pop(key)
                    break
        if live is None:
            live = CompileState()
            self._build(live, head, donor=donor or self._latest())
        cache[head] = live
        while len(cache) > CACHED_HEADS:
            cache.popitem(last=False)
        self._apply_config_changes(live)
        return live

    def _advance(self, live: CompileState, head: str | None) -> bool:
        """Apply the commits between the cached head and `head`; False if `head`
        does not descend from it along first parents (or a merge is in between)."""
        if head == live.head:
            return True
        if head is None:
            return False
        table = self._view.commits
        new: list[int] = []
        stop, cursor = live.head_row, table.row(head)
        while cursor != stop:
            if (
                cursor == NO_ROW
                or table.positions[cursor] <= live.head_position
                or table.merge_parents[cursor] != NO_ROW
                or table.hash(cursor) in self._view.anchors  # may re-prioritise messages already compiled
            ):
                return False
            new.append(cursor)
            cursor = table.parents[cursor]
        for row in reversed(new):
            live.visible.include(row, table)
            self._apply(live, row, False, self._view.event, None)
        return True

    def _build(
        self, compiled: CompileState, head: str | None, *, edit_markers: bool = False, donor: CompileState | None = None
    ) -> None:
        """Compile `head` from the root into `compiled`, reusing what `donor` (another compile) rendered."""
        view, table = self._view, self._view.commits
        compiled.skip_changes_seen = view.skip_changes
        compiled.config_changes_seen = len(view.config_changes)
        compiled.registry = self._registry.renderers()
        if donor is not None:
            if donor.registry != compiled.registry:
                donor = None
            else:
                self._apply_config_changes(donor)
        history = view.history(head)
        for row in history:
            compiled.visible.include(row, table)
        ahead = ReadAhead(view, history, None if donor is None else lambda row: _renders(donor, table.hash(row)))
        with paused_gc():  # a message per commit, and the events read for them: many objects, no cycles
            for index, row in enumerate(history):
                ahead.index = index
                self._apply(compiled, row, edit_markers, ahead, donor)
        compiled.head, compiled.head_row = head, history[-1] if history else NO_ROW

    def _apply(
        self,
        compiled: CompileState,
        row: int,
        markers: bool,
        load: Callable[[int], CommitCreated],
        donor: CompileState | None,
    ) -> None:
        view, table = self._view, self._view.commits
        kind = table.kind(row)
        operation = kind.operation
        commit_hash = table.hash(row)
        compiled.head, compiled.head_row = commit_hash, row
        compiled.head_position = max(compiled.head_position, table.positions[row])
        if operation == "merge":
            return
        if operation == "compress":
            self._compress(compiled, row, commit_hash, markers, load, donor)
            return
        if commit_hash in view.state.annotations and self._skipped(compiled, row, commit_hash):
            return
        if operation == "edit":
            if commit_hash in compiled.visible.ignored_edits:
                return
            target = table.hash_or_none(table.targets[row]) or ""
            compiled.edit_of[target] = commit_hash
            compiled.edit_target[commit_hash] = target
            slot = compiled.index.get(target)
            if slot is not None:
                compiled.rewrite(slot, self._slot(compiled, target, markers, load, donor))
            return
        compiled.append(commit_hash, self._message_of(compiled, row, commit_hash, markers, load, donor))

    def _skipped(self, compiled: CompileState, row: int, commit_hash: str) -> bool:
        """SKIP in this history, unless a compression in it replaces the commit: an annotation of a
        replaced original changes nothing while the compression stands (its summary stood for it)."""
        visible = compiled.visible
        return self._view.is_skipped(commit_hash, visible) and not visible.replaced(row, self._view.commits)

    def _compress(
        self,
        compiled: CompileState,
        row: int,
        commit_hash: str,
        markers: bool,
        load: Callable[[int], CommitCreated],
        donor: CompileState | None,
    ) -> None:
        """The summary in place of the messages its compression replaces (unless a merge set the
        compression aside); a SKIP of the summary leaves it out, and the replaced stay out."""
        table = self._view.commits
        compressed = table.compressed(row)
        if compressed is None or commit_hash in compiled.visible.ignored_edits:
            return
        skipped = commit_hash in self._view.state.annotations and self._skipped(compiled, row, commit_hash)
        summary = None if skipped else self._message_of(compiled, row, commit_hash, markers, load, donor)
        replaced = [table.hash(replaced) for replaced in compressed.replaces]
        compiled.splice(replaced, [table.hash(kept) for kept in compressed.preserves], commit_hash, summary)

    def _message_of(
        self,
        compiled: CompileState,
        row: int,
        commit_hash: str,
        markers: bool,
        load: Callable[[int], CommitCreated],
        donor: CompileState | None,
    ) -> Slot:
        """The slot of a commit that is a message of its own (an append or a summary)."""
        if commit_hash in compiled.edit_of:  # edited before it was applied (a merged history)
            return self._slot(compiled, commit_hash, markers, load, donor)
        reused = _reused(donor, commit_hash, None) if donor is not None else None
        if reused is not None:
            return reused
        event = load(row)
        message, tokens = self._render(event)
        return Slot(
            message, tokens, self._config_for(commit_hash, None, event), self._view.commits.kind(row).content_type
        )

    def _slot(
        self,
        compiled: CompileState,
        original: str,
        markers: bool,
        load: Callable[[int], CommitCreated],
        donor: CompileState | None,
    ) -> Slot:
        """Message, tokens, config and content type of one original, as its effective edit leaves it."""
        edit = compiled.edit_of.get(original)
        if not (markers and edit is not None):
            reused = _reused(donor, original, edit)
            if reused is not None:
                return reused
        source = load(self._view.row(edit or original))
        message, tokens = self._render(source, marker=markers and edit is not None)
        return Slot(message, tokens, self._config_for(original, edit, source), source.content_type)

    def _config_for(self, original: str, edit: str | None, source: CommitCreated | None = None) -> bytes:
        """The encoded effective config of a slot; `source` is the event of `edit or original` if at hand."""
        view = self._view
        config = view.config(edit, source) if edit is not None else None
        if config is None:
            config = view.config(original, source if edit is None else None)
        return _encode_json(config) if config else _EMPTY_CONFIG

    def _latest(self) -> CompileState | None:
        """The most recently used compile in the cache, to reuse messages from."""
        return self._cache[next(reversed(self._cache))] if self._cache else None

    def _apply_config_changes(self, compiled: CompileState) -> None:
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

    def _unrenderable(self, event: CommitCreated, why: str) -> CorruptLogError | ContentValidationError:
        """A stored commit that does not render is a corrupt record; one only staged (previewed, not
        yet in the log) has content at fault, and nothing is written."""
        problem = f"commit {event.commit_hash}: its {event.content_type} payload does not render ({why})"
        row = self._view.row(event.commit_hash)
        if row == NO_ROW:
            return ContentValidationError(problem)
        return CorruptLogError(
            problem,
            position=self._view.commits.positions[row],
            kind="unrenderable content",
            tract_id=event.tract_id,
        )

    def _count_label(self, label: str) -> int:
        count = self._role_tokens.get(label)
        if count is None:
            count = self._role_tokens[label] = self._counter.count_text(label)
        return count

    def _result(self, compiled: CompileState) -> CompiledContext:
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


def _renders(donor: CompileState, commit_hash: str) -> bool:
    """Does `donor` hold the message of this commit (an original as it stands, or an edit in effect)?"""
    return (commit_hash in donor.index and commit_hash not in donor.edit_of) or commit_hash in donor.edit_target


def _reused(donor: CompileState | None, original: str, edit: str | None) -> Slot | None:
    """The slot of `original` as `donor` compiled it, if it renders the same commit (no markers):
    then it is the message, tokens, config and content type a new render would give."""
    if donor is None:
        return None
    slot = donor.index.get(original)
    if slot is None or donor.edit_of.get(original) != edit:
        return None
    return Slot(donor.messages[slot], donor.tokens[slot], donor.configs[slot], donor.types[slot])


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

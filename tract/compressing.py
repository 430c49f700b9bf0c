"""Compression: messages of the compiled context replaced by a summary, as a new commit.

Nothing is rewritten or deleted: a compress commit on the current branch names
the commits whose messages its summary replaces (and those of the range kept
verbatim after it), and the compiler honours it like an edit. The originals stay
in the log and in history; time travel to before the compression shows them.
A range is never cut through a tool call and its results (it is refused), and the
budget and tool-result compaction only ever take whole pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import BaseModel

from events import AnyEvent, CommitCreated, Compression, sealed_commit
from projections.commit_table import CommitTable
from tract.arguments import optional_text, shown, text
from tract.content import SummaryContent, ToolResultContent
from tract.errors import BudgetExceededError, InvalidArgumentError
from tract.models import CommitInfo, CompressResult, Message, Summarizer
from tract.parts import TractParts
from tract.tokens import content_tokens
from tract.tool_pairs import call_ids, pair_units, split_pair

BUDGET_MESSAGE = "compressed to fit the token budget"
COMPACTION_MESSAGE = "compacted a tool result"


@dataclass(frozen=True)
class _Plan:
    replaced: list[str]
    preserved: list[str]
    messages: list[Message]
    """What the summarizer sees: the range's messages in the compiled context, but the kept ones."""


class Compressing(TractParts):
    """`compress`, `compact_tool_results` and the budget's compression for `Tract`."""

    if TYPE_CHECKING:

        def _write(self, new: list[AnyEvent]) -> None: ...
        def _commit_info(self, event: CommitCreated, position: int) -> CommitInfo: ...
        def _current_branch_for_commit(self) -> str: ...
        def _timestamp_after(self, parent: str | None, unwritten: datetime | None = None) -> datetime: ...
        def resolve(self, prefix: str) -> str: ...

    def compress(
        self,
        *,
        from_commit: str | None = None,
        to_commit: str | None = None,
        commits: Sequence[str] | None = None,
        content: str | None = None,
        summarizer: Summarizer | None = None,
        target_tokens: int | None = None,
        preserve: Sequence[str] | None = None,
        message: str | None = None,
    ) -> CompressResult:
        """Replace the messages of a range of HEAD's history (inclusive; default all of it) or of the
        listed `commits` by one summary, written as a compress commit on the current branch.

        The summary is `content`, or what `summarizer(messages, target_tokens=target_tokens)` returns
        for the range's messages as compiled (SKIPped ones are not among them). It stands where the
        first of them stood; PINNED and `preserve` commits of the range that stood after it follow it,
        verbatim and in order. A range that would split a tool call from its results, or take part of
        what an earlier summary stands for, is refused. Nothing is written if anything fails.
        """
        with self._lock:
            self._check_writable()
            self._current_branch_for_commit()
            head = self.head
            if head is None:
                raise InvalidArgumentError("compress() needs commits to compress, and this tract has none")
            if (content is None) == (summarizer is None):
                raise InvalidArgumentError(
                    "compress() takes the summary as content= (its text) or summarizer= (a callable writing it): "
                    + ("not both" if content is not None else "give one")
                )
            content = optional_text(content, "content")
            message = optional_text(message, "message")
            if target_tokens is not None and (type(target_tokens) is not int or target_tokens <= 0):
                raise InvalidArgumentError(f"target_tokens must be a positive int or None, not {shown(target_tokens)}")
            rows = self._range_rows(head, from_commit, to_commit, commits)
            keep = self._refs(preserve, "preserve") if preserve is not None else set()
            plan = self._plan(head, rows, keep, listed=commits is not None)
            # Exactly one of the two was given (checked above).
            summary = (
                text(content, "content")
                if summarizer is None
                else _summarised(summarizer, plan.messages, target_tokens)
            )
            event = self._compression([], SummaryContent(text=summary), plan.replaced, plan.preserved, message)
            self._write([event])
            return self._compress_result(event)

    def compact_tool_results(
        self, *, keep_last: int = 3, min_tokens: int = 200, summarizer: Summarizer | None = None
    ) -> list[CompressResult]:
        """Replace every tool result of more than `min_tokens` content tokens in the compiled context,
        but the last `keep_last` results, by a short stand-in answering the same call: the tool's name,
        the original size, and `summarizer([result])`'s line if given. One compress commit per result,
        all written together; results already compacted are left alone."""
        with self._lock:
            self._check_writable()
            self._current_branch_for_commit()
            for value, argument in ((keep_last, "keep_last"), (min_tokens, "min_tokens")):
                if type(value) is not int or value < 0:
                    raise InvalidArgumentError(f"{argument} must be an int of 0 or more, not {shown(value)}")
            if summarizer is not None and not callable(summarizer):
                raise InvalidArgumentError(f"summarizer must be callable, not {shown(summarizer)}")
            head = self.head
            if head is None:
                return []
            context = self._compiler.compile_live(head)
            table = self._view.commits
            results = [slot for slot, message in enumerate(context.messages) if message.tool_call_id is not None]
            new: list[CommitCreated] = []
            for slot in results[: max(len(results) - keep_last, 0)]:
                original, result = context.commit_hashes[slot], context.messages[slot]
                size = self._counter.count_text(result.content)
                if size <= min_tokens or table.kind(table.row(original)).operation == "compress":
                    continue
                call = context.find_tool_call(result.tool_call_id or "")
                tool = result.name or (call.name if call is not None else "tool")
                line = _summarised(summarizer, [result], None) if summarizer is not None else None
                stand_in = ToolResultContent(
                    tool_call_id=result.tool_call_id or "",
                    content=f"[{tool} output compacted: {size} tokens]" + (f" {line}" if line else ""),
                    name=result.name,
                    is_error=result.is_error,
                )
                new.append(self._compression(new, stand_in, [original], [], COMPACTION_MESSAGE))
            if new:
                self._write(list(new))
            return [self._compress_result(event) for event in new]

    # -- the budget ----------------------------------------------------------

    def _budget_compression(self, event: CommitCreated, total: int) -> CommitCreated:
        """The compression of the oldest unpinned messages of the context (whole tool pairs) that lets
        `event`, committed after it, fit the budget: as few as do. BudgetExceededError if none does."""
        budget = self._config.token_budget
        assert budget is not None and budget.summarizer is not None
        head, limit = self.head, budget.max_tokens
        context = self._compiler.compile_live(head)
        visible = self._compiler.visibility(head)
        # Earlier summaries are messages like any other: compressing them nests (so the budget never
        # runs into a wall of its own summaries); pinned messages stay.
        eligible = [self._view.priority(original, visible) != "pinned" for original in context.commit_hashes]
        # The new commit's own pair (a result for a call in the context) is not to be split either.
        parts = self._registry.render(event.content_type, event.content)
        incoming = Message(
            role=parts.role, content=parts.text, tool_calls=parts.tool_calls, tool_call_id=parts.tool_call_id
        )
        units = pair_units([*context.messages, incoming], [*eligible, False])
        needed = 0
        """Room the last summary took, when it did not fit: fewer messages than make that room are not tried."""
        for count in range(1, len(units) + 1):
            slots = sorted(slot for unit in units[:count] for slot in unit)
            replaced = [context.commit_hashes[slot] for slot in slots]
            empty = self._compression([], SummaryContent(text=""), replaced, [], BUDGET_MESSAGE, final=False)
            floor = self._compiler.preview(head, [empty, event]).token_count
            room = limit - floor
            if room <= 0 or (room < needed and count < len(units)):
                continue
            messages = [context.messages[slot] for slot in slots]
            summary = SummaryContent(text=_summarised(budget.summarizer, messages, room))
            compression = self._compression([], summary, replaced, [], BUDGET_MESSAGE, final=False)
            after = self._compiler.preview(head, [compression, event]).token_count
            if after <= limit:
                return self._compression([], summary, replaced, [], BUDGET_MESSAGE)
            needed = after - floor
        raise BudgetExceededError(
            f"commit would bring the context to {total} tokens, over the budget of {limit}, and compressing "
            f"every unpinned message ({sum(map(len, units))}) does not make it fit"
        )

    # -- shared --------------------------------------------------------------

    def _compression(
        self,
        before: list[CommitCreated],
        content: BaseModel,
        replaced: list[str],
        preserved: list[str],
        message: str | None,
        *,
        final: bool = True,
    ) -> CommitCreated:
        """A compress commit on HEAD and the commits `before` it not written yet, with the context's
        tokens before and after it (worked out unless not `final`: a trial to count with)."""
        head = self.head
        parent = before[-1] if before else None
        tokens_before = self._compiler.preview(head, before).token_count
        content_type, payload = self._registry.validate(content)
        compression = Compression(
            replaces=replaced, preserves=preserved, tokens_before=tokens_before, tokens_after=tokens_before
        )
        event = sealed_commit(
            tract_id=self._tract_id,
            created_at=self._timestamp_after(head, parent.created_at if parent is not None else None),
            parent_hash=parent.commit_hash if parent is not None else head,
            content=payload,
            content_type=content_type,
            operation="compress",
            message=message,
            token_count=content_tokens(self._counter, self._registry.render(content_type, payload)),
            tokenizer=self._counter.name,
            branch=self._current_branch_for_commit(),
            compression=compression,
        )
        if not final:
            return event
        after = self._compiler.preview(head, [*before, event]).token_count
        counted = msgspec.structs.replace(compression, tokens_after=after)  # (not part of the commit hash)
        return msgspec.structs.replace(event, compression=counted)

    def _compress_result(self, event: CommitCreated) -> CompressResult:
        commits = self._view.commits
        compression = event.compression
        assert isinstance(compression, Compression)
        return CompressResult(
            summary=self._commit_info(event, commits.positions[commits.row(event.commit_hash)]),
            replaced=list(compression.replaces),
            preserved=list(compression.preserves),
            tokens_before=compression.tokens_before,
            tokens_after=compression.tokens_after,
        )

    def _range_rows(self, head: str, from_commit: Any, to_commit: Any, commits: Sequence[str] | None) -> list[int]:
        """The rows of HEAD's history a compression covers, in compile order."""
        history = self._view.history(head)
        order = {row: index for index, row in enumerate(history)}
        table = self._view.commits

        def place(ref: Any, argument: str) -> int:
            commit_hash = self.resolve(text(ref, argument))
            index = order.get(table.row(commit_hash))
            if index is None:
                raise InvalidArgumentError(f"{argument} names {commit_hash[:12]}, which is not in HEAD's history")
            return index

        if commits is not None:
            if from_commit is not None or to_commit is not None:
                raise InvalidArgumentError("compress() takes a range (from_commit, to_commit) or commits=, not both")
            if isinstance(commits, str) or not isinstance(commits, Sequence) or not commits:
                raise InvalidArgumentError(f"commits must be a non-empty list of commit hashes, not {shown(commits)}")
            return [history[index] for index in sorted({place(ref, "commits") for ref in commits})]
        first = place(from_commit, "from_commit") if from_commit is not None else 0
        last = place(to_commit, "to_commit") if to_commit is not None else len(history) - 1
        if first > last:
            raise InvalidArgumentError("from_commit comes after to_commit in HEAD's history")
        return history[first : last + 1]

    def _refs(self, refs: Any, argument: str) -> set[str]:
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise InvalidArgumentError(f"{argument} must be a list of commit hashes, not {shown(refs)}")
        return {self.resolve(text(ref, argument)) for ref in refs}

    def _plan(self, head: str, rows: list[int], keep: set[str], *, listed: bool) -> _Plan:
        """What a compression of `rows` replaces, keeps and summarises; refused if it would split a pair
        or a summary. A summary belongs to a range when all it stands for does (a list may also name
        the summary commit itself): so compressing a compressed range nests."""
        table = self._view.commits
        context = self._compiler.compile_live(head)
        visible = self._compiler.visibility(head)
        in_range = {table.hash(row) for row in rows}
        outside = sorted(keep - in_range)
        if outside:
            raise InvalidArgumentError(f"preserve names {outside[0][:12]}, which is not in the range")
        slots = []
        for slot, original in enumerate(context.commit_hashes):
            covered = _coverage(table, table.row(original))
            inside = (
                original in in_range if covered is None else covered <= in_range or (listed and original in in_range)
            )
            if covered is not None and not inside and covered & in_range:
                raise InvalidArgumentError(
                    f"the range takes {len(covered & in_range)} of the {len(covered)} commits summary "
                    f"{original[:12]} stands for: take all of them, or none"
                )
            if inside:
                slots.append(slot)
        present = {context.commit_hashes[slot] for slot in slots}
        absent = sorted(keep - present)
        if absent:
            raise InvalidArgumentError(f"preserve names {absent[0][:12]}, which has no message in the context")
        kept = {
            original
            for original in (context.commit_hashes[slot] for slot in slots)
            if original in keep or self._view.priority(original, visible) == "pinned"
        }
        summarised = [slot for slot in slots if context.commit_hashes[slot] not in kept]
        if not summarised:
            raise InvalidArgumentError(
                "nothing to compress: the range holds no message of the compiled context"
                + (" but the ones it keeps" if kept else "")
            )
        # Kept messages after the summary's place move after it; those before it stay where they are.
        preserved = [
            context.commit_hashes[slot]
            for slot in slots
            if slot > summarised[0] and context.commit_hashes[slot] in kept
        ]
        replaced = [context.commit_hashes[slot] for slot in summarised]
        leaving = set(summarised)
        messages = [context.messages[slot] for slot in summarised]
        remaining = [message for slot, message in enumerate(context.messages) if slot not in leaving]
        split = split_pair(messages, remaining)
        if split is not None:
            holders = [
                context.commit_hashes[slot][:12]
                for slot, message in enumerate(context.messages)
                if split in call_ids(message)
            ]
            raise InvalidArgumentError(
                f"the range would split tool call {split!r} from its result (commits {', '.join(holders)}): "
                "compress the call and its results together, or neither"
            )
        return _Plan(replaced, preserved, messages)


def _coverage(table: CommitTable, row: int) -> set[str] | None:
    """The commits a summary stands for (what it replaced, and what the summaries among those stood
    for); None for a commit that is no summary."""
    if table.compressed(row) is None:
        return None
    covered: set[str] = set()
    pending = [row]
    while pending:
        compressed = table.compressed(pending.pop())
        assert compressed is not None
        for replaced in compressed.replaces:
            if table.compressed(replaced) is not None:
                pending.append(replaced)
            else:
                covered.add(table.hash(replaced))
    return covered


def _summarised(summarizer: Callable[..., Any], messages: list[Message], target_tokens: int | None) -> str:
    """The summarizer's text for `messages`; whatever it raises propagates (nothing is written then)."""
    if not callable(summarizer):
        raise InvalidArgumentError(f"summarizer must be callable, not {shown(summarizer)}")
    summary = summarizer(messages, target_tokens=target_tokens)
    if not isinstance(summary, str):
        raise InvalidArgumentError(f"the summarizer must return the summary as a string, not {shown(summary)}")
    return summary

"""Writing: every change to a tract becomes events appended to the log, checked before any is written.

Kept apart from reading and branching because this is where the write path's rules live (validation,
budgets, batches, keeping the view in step with the log); every other part writes through `_write`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from events import (
    AnnotationAdded,
    AnyEvent,
    CommitCreated,
    GenerationConfigRecorded,
    UsageRecorded,
    check_events,
    sealed_commit,
)
from projections import CommitView, StoredCommit
from tract.arguments import optional_text, shown, text
from tract.compiled import CompiledContext
from tract.compiler import Compiler
from tract.errors import BudgetExceededError, EditTargetError, InvalidArgumentError, UsageError, storage_errors
from tract.jsonvalues import json_object
from tract.models import Annotation, BudgetAction, CommitInfo, CommitOperation, Priority, TokenUsage
from tract.parts import TractParts
from tract.shared import annotation_model, utc_now
from tract.tokens import content_tokens
from tract.usage import parse_usage

EnumT = TypeVar("EnumT", bound=Enum)
WritingT = TypeVar("WritingT", bound="Writing")
"""The tract itself (a `Tract`: `batch()` hands back what it was called on)."""
_ONE_MICROSECOND = timedelta(microseconds=1)


class Writing(TractParts):
    """Commits, annotations, usage records and batches for `Tract` (which provides the methods declared below)."""

    if TYPE_CHECKING:

        def _find(self, commit_hash: str) -> StoredCommit | None: ...
        def _require(self, commit_hash: str) -> StoredCommit: ...
        def _info(self, stored: StoredCommit, event: CommitCreated | None = None) -> CommitInfo: ...
        def _commit_info(self, event: CommitCreated, position: int, *, owned: bool = False) -> CommitInfo: ...
        def _current_branch_for_commit(self) -> str: ...
        def _budget_compression(self, event: CommitCreated, total: int) -> CommitCreated: ...

    def commit(
        self,
        content: BaseModel | dict[str, Any],
        *,
        operation: CommitOperation | str = CommitOperation.APPEND,
        message: str | None = None,
        response_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        generation_config: dict[str, Any] | None = None,
    ) -> CommitInfo:
        """Validate and append one commit on HEAD; nothing is written if anything is wrong."""
        with self._lock:
            self._check_writable()
            operation = _choice(CommitOperation, operation, "operation")
            if operation is CommitOperation.MERGE:
                raise InvalidArgumentError("merge commits are made by merge(branch)")
            if operation is CommitOperation.COMPRESS:
                raise InvalidArgumentError("compress commits are made by compress() and compact_tool_results()")
            message = optional_text(message, "message")
            response_to = optional_text(response_to, "response_to")
            branch = self._current_branch_for_commit()
            content_type, payload = self._registry.validate(content)
            self._check_reference(operation, response_to)
            if metadata is not None:
                metadata = json_object(metadata, "metadata")
            if generation_config is not None:
                generation_config = json_object(generation_config, "generation_config")
            parent = self.head
            fields: dict[str, Any] = {
                "tract_id": self._tract_id,
                "content": payload,
                "content_type": content_type,
                "operation": operation.value,
                "response_to": response_to,
                "message": message,
                "token_count": content_tokens(self._counter, self._registry.render(content_type, payload)),
                "tokenizer": self._counter.name,
                "metadata": metadata,
                "generation_config": generation_config,
                "branch": branch,
            }
            event = sealed_commit(**fields, parent_hash=parent, created_at=self._timestamp_after(parent))
            new: list[AnyEvent] = []
            compression = self._check_budget(parent, event)
            if compression is not None:  # it lands first, in the same write: both or neither
                new.append(compression)
                after = self._timestamp_after(parent, compression.created_at)
                event = sealed_commit(**fields, parent_hash=compression.commit_hash, created_at=after)
            new.append(event)
            if content_type == "instruction" and operation is CommitOperation.APPEND:
                new.append(
                    self._annotation(
                        event.commit_hash,
                        Priority.PINNED,
                        "instructions are pinned by default",
                        anchor=event.commit_hash,
                    )
                )
            self._write(new)
            commits = self._view.commits
            return self._commit_info(event, commits.positions[commits.row(event.commit_hash)])

    def annotate(self, commit_hash: str, priority: Priority | str, reason: str | None = None) -> Annotation:
        with self._lock:
            self._check_writable()
            self._require(text(commit_hash, "commit_hash"))
            event = self._annotation(
                commit_hash, _choice(Priority, priority, "priority"), optional_text(reason, "reason")
            )
            self._write([event])
            return annotation_model(self._view.state.annotations[commit_hash][-1])

    def record_usage(
        self,
        usage: TokenUsage | Mapping[str, Any] | object,
        *,
        head_hash: str | None = None,
        generation_config: dict[str, Any] | None = None,
    ) -> CompiledContext:
        """Record the API's token usage for the context that was sent, and optionally the config used.

        The context is `head_hash` when given, else the HEAD of the last `compile()` (the usual
        order is compile, call, commit the reply, record usage), else HEAD. A config goes to HEAD.
        Returns that context's compile, its `api_usage` set.
        """
        with self._lock:
            self._check_writable()
            parsed = parse_usage(usage)
            head = self.head
            if head is None:
                raise UsageError("there are no commits to record usage for")
            named = optional_text(head_hash, "head_hash")
            if named is None:
                last = self._last_compiled
                context = last if last is not None and self._find(last) is not None else head
            elif self._find(named) is None:
                raise UsageError(f"head_hash must name the context sent, a commit of this tract; not {named}")
            else:
                context = named
            now = utc_now()
            new: list[AnyEvent] = []
            if generation_config is not None:
                config = json_object(generation_config, "generation_config")
                new.append(
                    GenerationConfigRecorded(
                        tract_id=self._tract_id, created_at=now, commit_hash=head, generation_config=config
                    )
                )
            new.append(
                UsageRecorded(
                    tract_id=self._tract_id,
                    created_at=now,
                    head_hash=head,
                    prompt_tokens=parsed.prompt_tokens,
                    completion_tokens=parsed.completion_tokens,
                    total_tokens=parsed.total_tokens,
                    context_hash=context,
                    cache_read_tokens=parsed.cache_read_tokens,
                    cache_write_tokens=parsed.cache_write_tokens,
                    reasoning_tokens=parsed.reasoning_tokens,
                    provider=parsed.provider,
                )
            )
            self._write(new)
            return self._compiler.compile_live(context)

    @contextmanager
    def batch(self: WritingT) -> Iterator[WritingT]:
        """Commits inside land together or not at all; an exception leaves log and HEAD as before."""
        with self._lock:
            self._check_writable()
            outer = self._staged is not None
            mark = len(self._staged) if self._staged is not None else 0
            if not outer:
                self._staged = []
            try:
                yield self
                if not outer:
                    staged, self._staged = self._staged, None
                    if staged:
                        with storage_errors():
                            known = self._view.state.position - len(staged)
                            self._log.append(self._tract_id, staged, expected=known)
                            self._remember_written(known + 1, staged)
            except BaseException:
                kept = self._staged[:mark] if outer and self._staged is not None else []
                self._staged = kept if outer else None
                self._rebuild_view()
                raise

    def _write(self, new: list[AnyEvent]) -> None:
        first = self._view.state.position + 1
        staged = self._staged is not None
        if self._staged is not None:
            with storage_errors():
                check_events(new)  # refused now, by the call that made them, not when the batch ends
            self._staged.extend(new)
        else:
            size = self._log.size
            with storage_errors():
                self._log.append(self._tract_id, new, expected=self._view.state.position)
            size = self._log.size - size
            if len(new) == 1:  # the usual write: its record's hash is the log's head, its size the write's
                self._view.apply(first, new[0], self._log.tract_head(self._tract_id))
                if type(new[0]) is CommitCreated:
                    self._events.remember(first, new[0], size)
                return
        for offset, event in enumerate(new):
            self._view.apply(first + offset, event)
        if staged:
            for offset, event in enumerate(new):
                if type(event) is CommitCreated:
                    self._events.stage(first + offset, event)
        else:
            with storage_errors():
                self._remember_written(first, new)

    def _remember_written(self, first: int, new: list[AnyEvent]) -> None:
        """Keep the commits just written as records `first`... in the event cache, and their records'
        hashes in the view (so reading one back later checks it is what was written)."""
        table = self._view.commits
        commits = [(position, event) for position, event in enumerate(new, first) if type(event) is CommitCreated]
        if not commits:
            return
        last = first + len(new) - 1
        hashes = {last: self._log.tract_head(self._tract_id)}
        if commits[0][0] < last:  # hashes of records before the batch's last: read back, chained to the last
            records = self._log.read_hashed(self._tract_id, commits[0][0], last, linked=False, expected=hashes.get)
            hashes.update((record.number, digest) for record, digest in records)
        for position, event in commits:
            table.remember_hash(table.row(event.commit_hash), hashes[position])
            self._events.remember(position, event)

    def _rebuild_view(self) -> None:
        """Refold the view from the log (plus what an enclosing batch still holds):
        how a failed batch is forgotten."""
        view = CommitView(source=self._events, capacity=self._log.tract_length(self._tract_id))
        with storage_errors():
            view.apply_hashed(self._log.read_hashed(self._tract_id))
        for offset, event in enumerate(self._staged or (), start=view.state.position + 1):
            view.apply(offset, event)
        self._events.forget_after(view.state.position)
        self._view = view
        self._compiler = Compiler(view, self._registry, self._counter)

    def _check_budget(self, parent: str | None, event: CommitCreated) -> CommitCreated | None:
        """Apply the budget to `event` on top of `parent`; returns the compression to land before it
        when the budget compresses (COMPRESS) and the context would not fit otherwise."""
        budget = self._config.token_budget
        if budget is None:
            return None
        total = self._compiler.tokens_with(parent, event)
        if total <= budget.max_tokens:
            return None
        if budget.action is BudgetAction.COMPRESS:
            return self._budget_compression(event, total)
        if budget.action is BudgetAction.REJECT:
            raise BudgetExceededError(
                f"commit would bring the context to {total} tokens, over the budget of {budget.max_tokens}"
            )
        if budget.action is BudgetAction.CALLBACK:
            assert budget.callback is not None
            budget.callback(total, budget.max_tokens)
        else:
            warnings.warn(
                f"context is {total} tokens, over the budget of {budget.max_tokens}", RuntimeWarning, stacklevel=4
            )
        return None

    def _check_reference(self, operation: CommitOperation, response_to: str | None) -> None:
        if operation is CommitOperation.EDIT:
            if response_to is None:
                raise EditTargetError("an EDIT commit needs response_to naming the commit it replaces")
            target = self._find(response_to)
            if target is None:
                raise EditTargetError(f"EDIT target {response_to} is not a commit of this tract")
            if target.operation == CommitOperation.EDIT.value:
                raise EditTargetError(f"EDIT target {response_to} is itself an edit; edit the original commit")
        elif response_to is not None:
            self._require(response_to)

    def _annotation(
        self, commit_hash: str, priority: Priority, reason: str | None, anchor: str | None = None
    ) -> AnnotationAdded:
        """An annotation anchored at HEAD (or at `anchor`): it applies to histories containing that commit."""
        return AnnotationAdded(
            tract_id=self._tract_id,
            created_at=utc_now(),
            target_hash=commit_hash,
            priority=priority.value,
            reason=reason,
            anchor=anchor if anchor is not None else self.head,
        )

    def _timestamp_after(self, parent: str | None, unwritten: datetime | None = None) -> datetime:
        """Now, but never before the parent (nor a commit `unwritten` yet between them): history stays
        in time order even if the clock steps back."""
        now = utc_now()
        floors = [unwritten] if unwritten is not None else []
        if parent is not None:
            commits = self._view.commits
            floors.append(commits.created_at(commits.row(parent)))
        floor = max(floors, default=None)
        if floor is not None and now < floor + _ONE_MICROSECOND:
            return floor + _ONE_MICROSECOND
        return now


def _choice(kind: type[EnumT], value: Any, what: str) -> EnumT:
    if isinstance(value, str):  # members are strings too
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in kind)
    raise InvalidArgumentError(f"{what} must be one of {allowed}, not {shown(value)}")

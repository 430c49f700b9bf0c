"""The `Tract` facade: commit typed context, compile it, record what the API reported.

Every write becomes events appended to the log; every read is answered by
the commit view folded from that log (or by the compiler's cache over it).
A lock serialises all calls, so one `Tract` may be shared by threads;
`events()` and the analytics queries fix their log range under it, then read
outside it (queries take turns on the analytics projection's own lock), so a
long read never holds up a commit.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from events import (
    EVENT_TYPES,
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Event,
    EventLog,
    GenerationConfigRecorded,
    HeadChanged,
    LogCorruptError,
    Record,
    RefMoved,
    SyncMode,
    TractCreated,
    UsageRecorded,
    VerifyReport,
    check_events,
    sealed_commit,
)
from events.jsonl import exported_records, write_jsonl
from projections import CommitView, StoredCommit, load_snapshot, save_snapshot
from projections.analytics import ANALYTICS_FILE, Analytics, QueryResult, duckdb_errors
from projections.bulk import paused_gc
from projections.commit_view import TractState, merge_content
from projections.query_limits import AnalyticsClosedError, AnalyticsError, AnalyticsStorageError
from tract.arguments import MEMORY, flag, log_directory, one_of, optional_text, shown, text
from tract.branches import check_branch_name, plan_merge
from tract.compiled import CompiledContext
from tract.compiler import Compiler
from tract.content import ContentRegistry
from tract.conversation import Conversation
from tract.diff import diff_contexts
from tract.errors import (
    BranchError,
    BudgetExceededError,
    CommitNotFoundError,
    DetachedHeadError,
    EditTargetError,
    InvalidArgumentError,
    QueryError,
    ReadOnlyError,
    StorageError,
    TractClosedError,
    TractError,
    UsageError,
    storage_errors,
)
from tract.jsonvalues import fresh, json_object
from tract.models import (
    Annotation,
    BranchInfo,
    BudgetAction,
    ChainHead,
    CommitInfo,
    CommitOperation,
    ConfigRecord,
    ContextDiff,
    LoggedEvent,
    MergeResult,
    Priority,
    RefLogEntry,
    TokenUsage,
    TractConfig,
    revalidated,
    trusted,
)
from tract.tokens import TiktokenCounter, TokenCounter, content_tokens
from tract.usage import parse_usage

EnumT = TypeVar("EnumT", bound=Enum)
T = TypeVar("T")
MERGE_STRATEGIES = ("auto", "ours", "theirs")
_OPERATIONS = {operation.value: operation for operation in CommitOperation}
_ONE_MICROSECOND = timedelta(microseconds=1)
SQL_TIMEOUT = 30.0
"""Seconds a `sql()` query may run by default before it is stopped."""


class Tract(Conversation):
    """One tract (a line of context history) in a log. Use `Tract.open(...)`."""

    def __init__(
        self,
        *,
        log: EventLog,
        view: CommitView,
        directory: Path | None,
        tract_id: str,
        config: TractConfig,
        counter: TokenCounter,
        registry: ContentRegistry | None = None,
    ) -> None:
        self._log = log
        self._view = view
        self._directory = directory
        self._tract_id = tract_id
        self._config = config
        self._counter = counter
        self._registry = registry if registry is not None else ContentRegistry()
        self._compiler = Compiler(view, self._registry, counter)
        self._lock = threading.RLock()
        self._staged: list[Event] | None = None
        self._analytics: Analytics | None = None
        self._closed = False
        self._last_compiled: str | None = None
        """HEAD of the last `compile()`: the context API usage recorded next is taken to describe."""

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        tract_id: str | None = None,
        config: TractConfig | None = None,
        tokenizer: TokenCounter | None = None,
        sync: SyncMode = "always",
        readonly: bool = False,
    ) -> Tract:
        """Open the tract in log directory `path` (created if missing), or in memory.

        Without `tract_id`, opens the tract the log was created with; with one,
        opens that tract, creating it in the same log if it is new.
        """
        directory = log_directory(path)
        tract_id = optional_text(tract_id, "tract_id")
        readonly = flag(readonly, "readonly")
        one_of(sync, ("always", "batch"), "sync")
        config = _checked_config(config)
        counter = tokenizer if tokenizer is not None else TiktokenCounter(config.tokenizer_encoding)
        if not isinstance(counter, TokenCounter):
            raise InvalidArgumentError(f"tokenizer must be a TokenCounter, not {type(counter).__name__}")
        if directory is None:
            if readonly:
                raise TractError("an in-memory tract cannot be opened read-only: there is nothing to read")
            log, view = EventLog.memory(), CommitView()
        else:
            log, view = _open_directory(directory, readonly=readonly, sync=sync)
        try:
            chosen = tract_id or view.default_tract
            if chosen is None or chosen not in view.state.tracts:
                if readonly:
                    raise TractError(
                        f"{directory}: no tract {chosen!r} in this log"
                        if chosen
                        else f"{directory}: the log holds no tract"
                    )
                chosen = chosen or uuid.uuid4().hex
                created = TractCreated(tract_id=chosen, created_at=_now())
                with storage_errors():
                    position = log.append([created])
                view.apply(position, created)
        except BaseException:
            log.close()
            raise
        return cls(log=log, view=view, directory=directory, tract_id=chosen, config=config, counter=counter)

    def close(self) -> None:
        """Snapshot the commit view (for a fast reopen) and release the log. Idempotent.

        The snapshot is written only once the log is durable up to it, so after a failed or
        interrupted sync none is written (the next open replays the log). The log and its
        lock are released even when this raises."""
        with self._lock:
            if self._closed:
                return
            if self._staged is not None:
                raise TractError("close() inside batch(): leave the batch first (its commits are not written yet)")
            self._closed = True
            try:
                log = self._log
                if self._directory is not None and not log.readonly and log.head_position and not log.failed:
                    with storage_errors():
                        log.flush()
                        save_snapshot(self._directory, log.checkpoint(), self._view.state)
            finally:
                try:
                    if self._analytics is not None:
                        self._analytics.close()
                finally:
                    with storage_errors():
                        self._log.close()

    def __enter__(self) -> Tract:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self._directory) if self._directory is not None else MEMORY
        head = self.head if not self._closed else None
        return f"Tract(path={where!r}, tract_id={self._tract_id!r}, head={head!r}, closed={self._closed})"

    # -- properties ----------------------------------------------------------

    @property
    def tract_id(self) -> str:
        return self._tract_id

    @property
    def config(self) -> TractConfig:
        return self._config

    @property
    def head(self) -> str | None:
        return self._view.head(self._tract_id)

    @property
    def current_branch(self) -> str | None:
        """The branch HEAD follows; None when detached by `checkout(commit)`."""
        tract = self._view.tract(self._tract_id)
        return tract.current if tract is not None else None

    @property
    def readonly(self) -> bool:
        return self._log.readonly

    @property
    def closed(self) -> bool:
        return self._closed

    def register_content_type(self, name: str, model: type[BaseModel]) -> None:
        self._registry.register(name, model)

    # -- writing -------------------------------------------------------------

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
            event = sealed_commit(
                tract_id=self._tract_id,
                created_at=self._next_timestamp(parent),
                parent_hash=parent,
                content=payload,
                content_type=content_type,
                operation=operation.value,
                response_to=response_to,
                message=message,
                token_count=content_tokens(self._counter, self._registry.render(content_type, payload)),
                tokenizer=self._counter.name,
                metadata=metadata,
                generation_config=generation_config,
                branch=branch,
            )
            self._check_budget(parent, event)
            new: list[Event] = [event]
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
            return self._info(self._view.state.commits[event.commit_hash])

    def annotate(self, commit_hash: str, priority: Priority | str, reason: str | None = None) -> Annotation:
        with self._lock:
            self._check_writable()
            self._require(text(commit_hash, "commit_hash"))
            event = self._annotation(
                commit_hash, _choice(Priority, priority, "priority"), optional_text(reason, "reason")
            )
            self._write([event])
            return _annotation_model(self._view.state.annotations[commit_hash][-1])

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
            if optional_text(head_hash, "head_hash") is None:
                last = self._last_compiled
                context = last if last is not None and self._find(last) is not None else head
            elif self._find(head_hash) is None:
                raise UsageError(f"head_hash must name the context sent, a commit of this tract; not {head_hash}")
            else:
                context = head_hash
            now = _now()
            new: list[Event] = []
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
    def batch(self) -> Iterator[Tract]:
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
                            self._log.append(staged)
            except BaseException:
                kept = self._staged[:mark] if outer and self._staged is not None else []
                self._staged = kept if outer else None
                self._rebuild_view()
                raise

    # -- branches ------------------------------------------------------------

    def branch(self, name: str, *, at: str | None = None, switch: bool = True) -> BranchInfo:
        """A new branch at HEAD (or at commit `at`), checked out unless switch=False."""
        with self._lock:
            self._check_writable()
            name = check_branch_name(name)
            switch = flag(switch, "switch")
            tract = self._tract_state()
            if name in tract.branches:
                raise BranchError(f"branch {name!r} already exists")
            head = self._require(self.resolve(text(at, "at"))).event.commit_hash if at is not None else self.head
            now = _now()
            new: list[Event] = [BranchCreated(tract_id=self._tract_id, created_at=now, name=name, head=head)]
            if switch:
                new.append(HeadChanged(tract_id=self._tract_id, created_at=now, branch=name))
            self._write(new)
            return self._branch_info(name)

    def switch(self, name: str) -> BranchInfo:
        """Check out branch `name`: HEAD follows it and commits extend it."""
        with self._lock:
            self._check_writable()
            self._require_branch(text(name, "name"))
            if self.current_branch != name:
                self._write([HeadChanged(tract_id=self._tract_id, created_at=_now(), branch=name)])
            return self._branch_info(name)

    def checkout(self, ref: str) -> CommitInfo | None:
        """A branch name switches to it; a commit detaches HEAD there (read-only until `branch()`)."""
        with self._lock:
            self._check_writable()
            if text(ref, "ref") in self._tract_state().branches:
                self.switch(ref)
            else:
                commit_hash = self.resolve(ref)
                self._write(
                    [HeadChanged(tract_id=self._tract_id, created_at=_now(), branch=None, commit_hash=commit_hash)]
                )
            head = self.head
            return self._info(self._view.state.commits[head]) if head is not None else None

    def list_branches(self) -> list[BranchInfo]:
        with self._lock:
            self._check_open()
            return [self._branch_info(name) for name in sorted(self._tract_state().branches)]

    def delete_branch(self, name: str) -> None:
        """Remove the name; its commits stay in the log, reachable by hash and `reflog()`."""
        with self._lock:
            self._check_writable()
            self._require_branch(text(name, "name"))
            if name == self.current_branch:
                raise BranchError(f"cannot delete the current branch {name!r}; switch to another first")
            self._write([BranchDeleted(tract_id=self._tract_id, created_at=_now(), name=name)])

    def reset(self, commit_hash: str) -> CommitInfo:
        """Move the current branch to a commit of its history (back, or forward again).

        The commits after it stay in the log: reachable by hash and by `reflog()`.
        """
        with self._lock:
            self._check_writable()
            branch = self._current_branch_for_commit()
            target = self.resolve(text(commit_hash, "commit_hash"))
            if target not in self._branch_history(branch):
                raise BranchError(f"{target[:12]} is not in the history of branch {branch!r}")
            old = self.head
            if old != target:
                self._write(
                    [
                        RefMoved(
                            tract_id=self._tract_id,
                            created_at=_now(),
                            branch=branch,
                            old_head=old,
                            new_head=target,
                            reason="reset",
                        )
                    ]
                )
            return self._info(self._view.state.commits[target])

    def reflog(self, branch: str | None = None) -> list[RefLogEntry]:
        """Every move of the branch's head (default: the current branch), oldest first."""
        with self._lock:
            self._check_open()
            name = branch if branch is not None else self.current_branch
            return [
                RefLogEntry.model_validate(entry, from_attributes=True)
                for entry in self._view.reflog(self._tract_id, name)
            ]

    def merge(self, branch: str, *, strategy: str = "auto") -> MergeResult:
        """Bring `branch` into the current one: fast-forward when possible, else a merge commit
        whose context is ours, then theirs' commits since the fork. Where both sides edited or
        annotated the same commit, "auto" raises MergeConflictError; "ours"/"theirs" choose."""
        with self._lock:
            self._check_writable()
            one_of(strategy, MERGE_STRATEGIES, "strategy")
            current = self._current_branch_for_commit()
            theirs = self._require_branch(text(branch, "branch"))
            ours = self.head
            if branch == current or theirs is None or theirs in self._history_hashes(ours):
                return MergeResult(kind="up-to-date", head=ours)
            if ours is None or ours in self._history_hashes(theirs):
                moved = RefMoved(
                    tract_id=self._tract_id,
                    created_at=_now(),
                    branch=current,
                    old_head=ours,
                    new_head=theirs,
                    reason=f"merge {branch} (fast-forward)",
                )
                self._write([moved])
                return MergeResult(kind="fast-forward", head=theirs)
            plan = plan_merge(self._view, ours, theirs, strategy, branch)
            event = sealed_commit(
                tract_id=self._tract_id,
                created_at=self._next_timestamp(ours),
                parent_hash=ours,
                merge_parent=theirs,
                content=merge_content(branch, strategy, plan.overridden_edits, plan.overridden_annotations),
                content_type="merge",
                operation="merge",
                message=f"merge {branch} into {current}",
                token_count=0,
                tokenizer=self._counter.name,
                branch=current,
            )
            self._write([event])
            return MergeResult(kind="merge", head=event.commit_hash, conflicts_resolved=plan.conflicts)

    def diff(self, a: str, b: str) -> ContextDiff:
        """How the compiled contexts at `a` and `b` (branches or commits) differ."""
        with self._lock:
            self._check_open()
            head_a, head_b = self._ref_head(a), self._ref_head(b)
            left = self._compiler.compile_live(head_a)
            right = self._compiler.compile_live(head_b)
            return diff_contexts(head_a, left, head_b, right)

    def _ref_head(self, ref: str) -> str | None:
        branches = self._tract_state().branches
        return branches[ref] if ref in branches else self.resolve(ref)

    def _tract_state(self) -> TractState:
        state = self._view.tract(self._tract_id)
        if state is None:
            raise TractError(f"tract {self._tract_id} does not exist at this point of the log")
        return state

    def _require_branch(self, name: str) -> str | None:
        branches = self._tract_state().branches
        if name not in branches:
            raise BranchError(f"no branch {name!r}; branches: {', '.join(sorted(branches))}")
        return branches[name]

    def _current_branch_for_commit(self) -> str:
        branch = self.current_branch
        if branch is None:
            raise DetachedHeadError(
                f"HEAD is detached at {self.head}; create a branch there with branch(name) (or switch to one) to commit"
            )
        return branch

    def _history_hashes(self, head: str | None) -> set[str]:
        return {stored.event.commit_hash for stored in self._view.history(head)}

    def _branch_history(self, branch: str) -> set[str]:
        """Every commit the branch has ever had in its history (reflog heads and their ancestors)."""
        heads = [entry.new_head for entry in reversed(self._view.reflog(self._tract_id, branch))]
        known: set[str] = set()
        for head in heads:
            if head is not None and head not in known:
                known |= self._history_hashes(head)
        return known

    def _branch_info(self, name: str) -> BranchInfo:
        head = self._tract_state().branches[name]
        return BranchInfo(
            name=name, head=head, commit_count=len(self._view.history(head)), current=name == self.current_branch
        )

    # -- reading -------------------------------------------------------------

    def compile(
        self,
        *,
        at_time: datetime | None = None,
        at_commit: str | None = None,
        include_edit_annotations: bool = False,
    ) -> CompiledContext:
        """The messages an LLM call would see now, at a past time, or at a past commit.

        `api_usage` holds what an API reported when exactly this context was sent.
        """
        with self._lock:
            self._check_open()
            if at_time is not None and at_commit is not None:
                raise InvalidArgumentError("compile() takes at_time or at_commit, not both")
            if at_commit is not None:
                self._require(at_commit)
                return self._compiler.compile_at(at_commit, edit_markers=include_edit_annotations)
            if at_time is not None:
                # Exactly the state of that moment (HEAD, branches, annotations, configs), from the log.
                with self.replay(until_time=at_time) as then:
                    return then.compile(include_edit_annotations=include_edit_annotations)
            self._last_compiled = self.head
            if include_edit_annotations:
                return self._compiler.compile_at(self.head, edit_markers=True)
            return self._compiler.compile_live(self.head)

    def get_commit(self, commit_hash: str) -> CommitInfo | None:
        with self._lock:
            self._check_open()
            stored = self._view.get(commit_hash)
            if stored is None or stored.event.tract_id != self._tract_id:
                return None
            return self._info(stored)

    def log(self, limit: int | None = 10) -> list[CommitInfo]:
        """Commits in HEAD's history, newest first (merged branches' commits included)."""
        with self._lock:
            self._check_open()
            newest_first: list[StoredCommit] = []
            cursor = self.head
            while cursor is not None and (limit is None or len(newest_first) < limit):
                stored = self._view.state.commits[cursor]
                if stored.event.merge_parent is not None:
                    newest_first = self._view.history(self.head)[::-1]
                    break
                newest_first.append(stored)
                cursor = stored.event.parent_hash
            with paused_gc():
                return [self._info(stored) for stored in newest_first[:limit]]

    def get_annotations(self, commit_hash: str) -> list[Annotation]:
        with self._lock:
            self._check_open()
            self._require(commit_hash)
            visible = self._view.visibility(self.head)
            return [_annotation_model(entry) for entry in self._view.visible_annotations(commit_hash, visible)]

    def config_history(self, commit_hash: str) -> list[ConfigRecord]:
        """Every generation config the commit has had, oldest first."""
        with self._lock:
            self._check_open()
            self._require(commit_hash)
            return [
                ConfigRecord(
                    generation_config=fresh(entry.config),
                    source=entry.source,
                    created_at=entry.created_at,
                    position=entry.position,
                )
                for entry in self._view.config_history(commit_hash)
            ]

    # -- auditing ------------------------------------------------------------

    @property
    def chain_head(self) -> ChainHead:
        """Position and hash of the last record: write it down, and a later `verify(anchor=...)`
        proves the log only grew since."""
        with self._lock:
            return ChainHead(position=self._log.head_position, hash=self._log.head_hash.hex())

    def verify(self, *, anchor: ChainHead | tuple[int, str] | None = None) -> VerifyReport:
        """Check every record: framing, checksums, decoding, positions, hash chain, commit hashes, and
        that its refs hold (see `events.verify`); an anchor that names no record fails the check."""
        with self._lock:
            self._check_open()
            if isinstance(anchor, ChainHead):
                anchor = (anchor.position, anchor.hash)
            return self._log.verify(anchor=anchor)

    def refresh(self) -> int:
        """Read-only tracts: take in what the writer appended since; returns the head position.

        A record that cannot be trusted raises `CorruptLogError`; the tract then stays
        as it was after the last whole batch before it.
        """
        with self._lock:
            self._check_open()
            with storage_errors(), paused_gc():
                try:
                    return self._log.refresh(self._view.apply_record)
                except LogCorruptError:
                    if self._view.state.position > self._log.head_position:
                        self._rebuild_view()  # the view took in part of the batch the log did not
                    raise

    def replay(self, until_position: int | None = None, until_time: datetime | None = None) -> Tract:
        """A read-only view of this tract as it was after a log position or at a time."""
        with self._lock:
            self._check_open()
            if until_position is not None and until_time is not None:
                raise InvalidArgumentError("replay() takes until_position or until_time, not both")
            if until_position is not None and until_position < 0:
                raise InvalidArgumentError("until_position must be 0 or more")
            position = self._log.head_position if until_position is None else until_position
            if until_time is not None:
                position = self._position_at(_aware(until_time))
            with storage_errors():
                prefix = self._log.prefix(position)
                view = CommitView()
                view.apply_records(prefix.read(1))
            return Tract(
                log=prefix,
                view=view,
                directory=self._directory,
                tract_id=self._tract_id,
                config=self._config,
                counter=self._counter,
                registry=self._registry,
            )

    def events(
        self,
        *,
        tract_id: str | None = None,
        types: str | Iterable[str] | None = None,
        from_position: int = 1,
        to_position: int | None = None,
    ) -> Iterator[LoggedEvent]:
        """The log's events in order (every tract unless `tract_id`), optionally only some types.

        Arguments are checked, and the range fixed, when this is called: the iterator
        then yields the log as it stood at that moment, whatever is appended meanwhile.
        """
        wanted = {types} if isinstance(types, str) else set(types) if types is not None else None
        if wanted is not None and not wanted <= set(EVENT_TYPES):
            unknown, known = sorted(wanted - set(EVENT_TYPES)), sorted(EVENT_TYPES)
            raise InvalidArgumentError(f"unknown event type(s) {unknown}; known: {known}")
        with self._lock:
            self._check_open()
            last = self._log.head_position if to_position is None else min(to_position, self._log.head_position)
        return self._logged_events(tract_id, wanted, from_position, last)

    def _logged_events(
        self, tract_id: str | None, wanted: set[str] | None, first: int, last: int
    ) -> Iterator[LoggedEvent]:
        with storage_errors():
            for record in self._log.read(first, last):
                event = record.event
                kind = type(event).__name__
                if (tract_id is None or event.tract_id == tract_id) and (wanted is None or kind in wanted):
                    yield LoggedEvent(record.position, event.created_at, kind, event)

    def _position_at(self, moment: datetime) -> int:
        position = 0
        with storage_errors():
            for record in self._log.read(1):
                if record.event.created_at > moment:
                    break
                position = record.position
        return position

    # -- analytics -----------------------------------------------------------

    def query_by_config(self, field: str, operator: str, value: Any) -> list[CommitInfo]:
        """This tract's commits whose effective generation config matches, oldest first.

        `field` may be a dotted path into nested configs; values compare with
        their own JSON type; a commit without the field never matches.
        Operators: = != > < >= <= in, not in.
        """
        try:
            hashes = self._analytics_query(
                lambda analytics, log: analytics.commits_where_config(log, self._tract_id, field, operator, value)
            )
        except ValueError as error:
            if isinstance(error, TractError):
                raise
            raise InvalidArgumentError(str(error)) from None
        with self._lock:
            self._check_open()
            commits = self._view.state.commits
            with paused_gc():  # many new long-lived objects, no cycles
                return [self._info(commits[h]) for h in hashes]

    def sql(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float = SQL_TIMEOUT
    ) -> QueryResult:
        """Run one read-only SELECT over the analytics tables (all tracts of the log).

        It sees the log as it stood when called, and is stopped with `QueryError`
        once it has run `timeout` seconds; commits from other threads go on meanwhile.
        """
        seconds = _timeout(timeout)
        return self._analytics_query(lambda analytics, log: analytics.sql(log, query, params, timeout=seconds))

    def sql_relation(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float = SQL_TIMEOUT
    ) -> Any:
        """The same query's result as a `duckdb.DuckDBPyRelation` (for `.df()`, `.arrow()`, chaining),
        on a throwaway database of its own: nothing done with it reaches the projection."""
        seconds = _timeout(timeout)
        return self._analytics_query(lambda analytics, log: analytics.relation(log, query, params, timeout=seconds))

    def _analytics_query(self, ask: Callable[[Analytics, EventLog], T]) -> T:
        """Fix the log position under the tract lock, then let the projection catch up to it and answer
        outside that lock: a slow query never holds up commits."""
        try:
            with self._lock, storage_errors(), duckdb_errors():
                analytics = self._analytics_db()
                self._log.flush()  # the projection must never record a position the log does not durably hold
                snapshot = self._log.prefix(self._log.head_position)
            try:
                with storage_errors():
                    return ask(analytics, snapshot)
            finally:
                snapshot.close()
        except AnalyticsClosedError:
            raise TractClosedError("this tract was closed before the query finished") from None
        except AnalyticsStorageError as error:
            raise StorageError(f"analytics database failed: {error}") from error
        except AnalyticsError as error:
            raise QueryError(str(error)) from None

    def export_jsonl(self, out: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Write every record of the log (all tracts) as JSON lines; `tract import` rebuilds it exactly."""
        with self._lock:
            self._check_open()
            with storage_errors():
                return write_jsonl(exported_records(self._log), out, progress)

    def export_parquet(self, directory: str | Path) -> list[Path]:
        """The analytics tables (all tracts) as Parquet files in `directory`."""
        with self._lock:
            self._check_open()
            with storage_errors():
                analytics = Analytics(None, file_access=True)
                try:
                    analytics.catch_up(self._log)
                    return analytics.export_parquet(Path(directory))
                finally:
                    analytics.close()

    def _analytics_db(self) -> Analytics:
        """The analytics projection, opened on first use (so commits never load DuckDB)."""
        self._check_open()
        if self._analytics is None:
            on_disk = self._directory is not None and not self._log.readonly
            self._analytics = Analytics(self._directory / ANALYTICS_FILE if on_disk else None)
        return self._analytics

    # -- internals -----------------------------------------------------------

    def _write(self, new: list[Event]) -> None:
        if self._staged is not None:
            with storage_errors():
                check_events(new)  # refused now, by the call that made them, not when the batch ends
            first = self._log.head_position + len(self._staged) + 1
            self._staged.extend(new)
        else:
            with storage_errors():
                last = self._log.append(new)
            first = last - len(new) + 1
        for offset, event in enumerate(new):
            self._view.apply(first + offset, event)

    def _rebuild_view(self) -> None:
        """Refold the view from the log (plus what an enclosing batch still holds):
        how a failed batch is forgotten."""
        view = CommitView()
        with storage_errors():
            view.apply_records(self._log.read(1))
        for offset, event in enumerate(self._staged or (), start=self._log.head_position + 1):
            view.apply(offset, event)
        self._view = view
        self._compiler = Compiler(view, self._registry, self._counter)

    def _check_budget(self, parent: str | None, event: CommitCreated) -> None:
        budget = self._config.token_budget
        if budget is None:
            return
        total = self._compiler.tokens_with(parent, event)
        if total <= budget.max_tokens:
            return
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

    def _check_reference(self, operation: CommitOperation, response_to: str | None) -> None:
        if operation is CommitOperation.EDIT:
            if response_to is None:
                raise EditTargetError("an EDIT commit needs response_to naming the commit it replaces")
            target = self._find(response_to)
            if target is None:
                raise EditTargetError(f"EDIT target {response_to} is not a commit of this tract")
            if target.event.operation == CommitOperation.EDIT.value:
                raise EditTargetError(f"EDIT target {response_to} is itself an edit; edit the original commit")
        elif response_to is not None:
            self._require(response_to)

    def _annotation(
        self, commit_hash: str, priority: Priority, reason: str | None, anchor: str | None = None
    ) -> AnnotationAdded:
        """An annotation anchored at HEAD (or at `anchor`): it applies to histories containing that commit."""
        return AnnotationAdded(
            tract_id=self._tract_id,
            created_at=_now(),
            target_hash=commit_hash,
            priority=priority.value,
            reason=reason,
            anchor=anchor if anchor is not None else self.head,
        )

    def _next_timestamp(self, parent: str | None) -> datetime:
        """Now, but never before the parent: history stays in time order even if the clock steps back."""
        now = _now()
        if parent is not None:
            floor = self._view.state.commits[parent].event.created_at + _ONE_MICROSECOND
            if now < floor:
                return floor
        return now

    def resolve(self, prefix: str) -> str:
        """The full hash of this tract's commit starting with `prefix` (at least 4 characters)."""
        with self._lock:
            self._check_open()
            if self._find(text(prefix, "prefix")) is not None:
                return prefix
            if len(prefix) < 4:
                raise CommitNotFoundError(f"hash prefix {prefix!r} is too short (give at least 4 characters)")
            matches = [
                h for h, stored in self._view.state.commits.items()
                if h.startswith(prefix) and stored.event.tract_id == self._tract_id
            ]  # fmt: skip
            if len(matches) != 1:
                found = "no commit" if not matches else f"{len(matches)} commits"
                raise CommitNotFoundError(f"{found} in tract {self._tract_id} start with {prefix!r}")
            return matches[0]

    def _find(self, commit_hash: str) -> StoredCommit | None:
        stored = self._view.get(commit_hash)
        if stored is None or stored.event.tract_id != self._tract_id:
            return None
        return stored

    def _require(self, commit_hash: str) -> StoredCommit:
        stored = self._find(commit_hash)
        if stored is None:
            raise CommitNotFoundError(f"no commit {commit_hash!r} in tract {self._tract_id}")
        return stored

    def _info(self, stored: StoredCommit) -> CommitInfo:
        """The public view of a stored commit: built without re-validating what the log holds,
        with fresh copies of every dict so callers cannot reach into the view."""
        event = stored.event
        return trusted(
            CommitInfo,
            {
                "commit_hash": event.commit_hash,
                "tract_id": event.tract_id,
                "parent_hash": event.parent_hash,
                "content_hash": event.content_hash,
                "content_type": event.content_type,
                "content": fresh(event.content),
                "operation": _OPERATIONS[event.operation],
                "response_to": event.response_to,
                "message": event.message,
                "token_count": event.token_count,
                "metadata": fresh(event.metadata),
                "generation_config": fresh(self._view.config(event.commit_hash)),
                "created_at": event.created_at,
                "position": stored.position,
                "branch": event.branch,
                "merge_parent": event.merge_parent,
            },
        )

    def _check_open(self) -> None:
        if self._closed:
            raise TractClosedError("this tract is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._log.readonly:
            raise ReadOnlyError("this tract was opened read-only")


def _open_directory(directory: Path, *, readonly: bool, sync: SyncMode) -> tuple[EventLog, CommitView]:
    """Open the log and fold it into a view in the same pass, starting from the snapshot when it matches."""
    with storage_errors():
        snapshot = load_snapshot(directory) if directory.is_dir() else None
    views: list[CommitView] = []

    def fold(resumed: bool) -> Callable[[Record], None]:
        if snapshot is not None and not resumed:
            warnings.warn(
                f"{directory}: snapshot does not match the log; rebuilding from the log", RuntimeWarning, stacklevel=4
            )
        views.append(CommitView(snapshot.state if snapshot is not None and resumed else None))
        return views[0].apply_record

    with storage_errors(), paused_gc():
        log = EventLog.open(
            directory, readonly=readonly, sync=sync, resume=snapshot.checkpoint if snapshot else None, fold=fold
        )
    return log, views[0]


def _annotation_model(entry: Any) -> Annotation:
    return Annotation(
        priority=Priority(entry.priority), reason=entry.reason, created_at=entry.created_at, position=entry.position
    )


def _choice(kind: type[EnumT], value: Any, what: str) -> EnumT:
    if isinstance(value, str):  # members are strings too
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in kind)
    raise InvalidArgumentError(f"{what} must be one of {allowed}, not {shown(value)}")


def _checked_config(config: Any) -> TractConfig:
    if config is None:
        return TractConfig()
    if not isinstance(config, TractConfig):
        raise InvalidArgumentError(f"config must be a TractConfig, not {type(config).__name__}")
    try:
        return revalidated(config)
    except ValidationError as error:
        raise InvalidArgumentError(f"config is not a valid TractConfig: {error}") from None


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= threading.TIMEOUT_MAX:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, like every timestamp in the log."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)

"""The commit view: everything the SDK reads about a tract's commits and refs, folded from its events.

`ViewState` is plain data; `CommitView` applies a tract's records to it in
order (positions are the records' numbers in the tract) and answers
questions about it. History
is a DAG: commits have a parent and, for merges, a second parent; branches
name heads; HEAD follows a branch or is detached at a commit. Annotations
are anchored at the HEAD they were made on and apply to the histories that
contain that commit. Changes that matter to a cached compile (a SKIP
flipping, a config recorded later) are counted so caches can tell cheaply
whether they are still valid.

An event whose refs do not hold together (see `events.consistency`, the
rules `verify` checks) is refused as a corrupt record, so the view never
holds a reference to nothing and its readers never have to guard against one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec

from events import (
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Event,
    GenerationConfigRecorded,
    HeadChanged,
    LogCorruptError,
    Record,
    RefMoved,
    TractCreated,
    UsageRecorded,
)
from events.consistency import breach
from events.types import DEFAULT_BRANCH, JsonObject, PriorityName
from projections.bulk import paused_gc

ConfigSource = Literal["commit", "record_usage"]


class StoredCommit(msgspec.Struct, frozen=True, gc=False):
    event: CommitCreated
    position: int


class AnnotationEntry(msgspec.Struct, frozen=True):
    priority: PriorityName
    reason: str | None
    created_at: datetime
    position: int
    anchor: str | None = None


class ConfigEntry(msgspec.Struct, frozen=True):
    config: JsonObject
    source: ConfigSource
    created_at: datetime
    position: int


class UsageEntry(msgspec.Struct, frozen=True):
    head_hash: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    created_at: datetime
    position: int
    context_hash: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    provider: str | None = None


class RefEntry(msgspec.Struct, frozen=True):
    """One move of a branch head: by a commit, creation, reset, merge or deletion."""

    branch: str
    old_head: str | None
    new_head: str | None
    reason: str
    created_at: datetime
    position: int


class TractState(msgspec.Struct):
    created_at: datetime
    branches: dict[str, str | None] = msgspec.field(default_factory=lambda: {DEFAULT_BRANCH: None})
    current: str | None = DEFAULT_BRANCH
    detached_at: str | None = None
    usage: list[UsageEntry] = msgspec.field(default_factory=list)
    ref_moves: list[RefEntry] = msgspec.field(default_factory=list)
    """Moves other than commits (the commits themselves say which branch they moved)."""

    @property
    def head(self) -> str | None:
        return self.branches.get(self.current) if self.current is not None else self.detached_at


class ViewState(msgspec.Struct):
    """The folded log. Tracts keep creation order: the first is the log's default."""

    position: int = 0
    tracts: dict[str, TractState] = msgspec.field(default_factory=dict)
    commits: dict[str, StoredCommit] = msgspec.field(default_factory=dict)
    annotations: dict[str, list[AnnotationEntry]] = msgspec.field(default_factory=dict)
    recorded_configs: dict[str, list[ConfigEntry]] = msgspec.field(default_factory=dict)


@dataclass
class Visibility:
    """What one compiled history sees: its commits, and what its merges set aside."""

    ancestors: set[str] = field(default_factory=set)
    ignored_edits: set[str] = field(default_factory=set)
    ignored_annotations: set[int] = field(default_factory=set)

    def sees(self, entry: AnnotationEntry) -> bool:
        return (
            entry.anchor is None or entry.anchor in self.ancestors
        ) and entry.position not in self.ignored_annotations

    def include(self, stored: StoredCommit) -> None:
        """Take in one more commit of the history (and what a merge sets aside)."""
        event = stored.event
        self.ancestors.add(event.commit_hash)
        if event.operation == "merge":
            self.ignored_edits.update(event.content.get("overridden_edits", ()))
            self.ignored_annotations.update(event.content.get("overridden_annotations", ()))


class CommitView:
    def __init__(self, state: ViewState | None = None) -> None:
        self.state = state if state is not None else ViewState()
        self.skip_changes = 0
        """Bumped whenever an annotation may flip some commit's SKIP status."""
        self.config_changes: list[str] = []
        """Commits whose config was recorded after creation, in log order."""
        self.anchors: set[str] = {
            entry.anchor
            for target, entries in self.state.annotations.items()
            for entry in entries
            if entry.anchor is not None and entry.anchor != target
        }
        """Commits at which an annotation of some other commit was made: a history that
        gains one of them may see an older message's priority change."""
        self._usage_by_context: dict[str, UsageEntry] = {
            entry.context_hash: entry
            for tract in self.state.tracts.values()
            for entry in tract.usage
            if entry.context_hash is not None
        }
        """The latest usage recorded for each context that was sent."""

    # -- folding -------------------------------------------------------------

    def apply_record(self, record: Record) -> None:
        self.apply(record.number, record.event)

    def apply_records(self, records: Iterable[Record]) -> None:
        with paused_gc():
            for record in records:
                self.apply(record.number, record.event)

    def apply(self, position: int, event: Event) -> None:
        """Fold one event in, or raise `LogCorruptError` (leaving the view as it was) if its refs do not hold."""
        found = breach(event, self)
        if found is not None:
            raise LogCorruptError(found[1], position=position, kind=found[0])
        state = self.state
        if isinstance(event, CommitCreated):
            state.commits[event.commit_hash] = StoredCommit(event, position)
            self._tract(event).branches[event.branch] = event.commit_hash
        elif isinstance(event, AnnotationAdded):
            entries = state.annotations.setdefault(event.target_hash, [])
            entries.append(AnnotationEntry(event.priority, event.reason, event.created_at, position, event.anchor))
            if event.anchor is not None and event.anchor != event.target_hash:
                self.anchors.add(event.anchor)
            if event.priority == "skip" or len(entries) > 1:
                self.skip_changes += 1
        elif isinstance(event, GenerationConfigRecorded):
            entry = ConfigEntry(event.generation_config, "record_usage", event.created_at, position)
            state.recorded_configs.setdefault(event.commit_hash, []).append(entry)
            self.config_changes.append(event.commit_hash)
        elif isinstance(event, UsageRecorded):
            entry = UsageEntry(
                event.head_hash,
                event.prompt_tokens,
                event.completion_tokens,
                event.total_tokens,
                event.created_at,
                position,
                event.context_hash,
                event.cache_read_tokens,
                event.cache_write_tokens,
                event.reasoning_tokens,
                event.provider,
            )
            self._tract(event).usage.append(entry)
            if entry.context_hash is not None:
                self._usage_by_context[entry.context_hash] = entry
        elif isinstance(event, BranchCreated):
            self._move(event, event.name, event.head, "branch", position)
        elif isinstance(event, RefMoved):
            self._move(event, event.branch, event.new_head, event.reason, position)
        elif isinstance(event, BranchDeleted):
            self._move(event, event.name, None, "delete", position)
            del self._tract(event).branches[event.name]
        elif isinstance(event, HeadChanged):
            tract = self._tract(event)
            tract.current, tract.detached_at = event.branch, event.commit_hash
        elif isinstance(event, TractCreated):
            state.tracts.setdefault(event.tract_id, TractState(created_at=event.created_at))
        state.position = position

    def _move(self, event: Event, branch: str, new_head: str | None, reason: str, position: int) -> None:
        tract = self._tract(event)
        old_head = tract.branches.get(branch)
        tract.branches[branch] = new_head
        tract.ref_moves.append(RefEntry(branch, old_head, new_head, reason, event.created_at, position))

    def _tract(self, event: Event) -> TractState:
        return self.state.tracts[event.tract_id]

    # -- what the consistency checks ask (`events.consistency.KnownRefs`) -----

    def branches_of(self, tract_id: str) -> Collection[str] | None:
        tract = self.state.tracts.get(tract_id)
        return tract.branches if tract is not None else None

    def current_branch(self, tract_id: str) -> str | None:
        return self.state.tracts[tract_id].current

    def commit_facts(self, commit_hash: str) -> CommitCreated | None:
        stored = self.state.commits.get(commit_hash)
        return stored.event if stored is not None else None

    # -- refs ----------------------------------------------------------------

    @property
    def default_tract(self) -> str | None:
        return next(iter(self.state.tracts), None)

    def tract(self, tract_id: str) -> TractState | None:
        return self.state.tracts.get(tract_id)

    def head(self, tract_id: str) -> str | None:
        tract = self.state.tracts.get(tract_id)
        return tract.head if tract is not None else None

    def reflog(self, tract_id: str, branch: str | None = None) -> list[RefEntry]:
        """Every move of the tract's branch heads (commits included), in log order."""
        tract = self.state.tracts.get(tract_id)
        if tract is None:
            return []
        moves = [
            RefEntry(
                e.branch,
                e.parent_hash,
                e.commit_hash,
                "merge" if e.merge_parent else "commit",
                e.created_at,
                s.position,
            )
            for s in self.state.commits.values()
            if (e := s.event).tract_id == tract_id and (branch is None or e.branch == branch)
        ]
        moves += [entry for entry in tract.ref_moves if branch is None or entry.branch == branch]
        moves.sort(key=lambda entry: entry.position)
        return moves

    # -- history -------------------------------------------------------------

    def get(self, commit_hash: str) -> StoredCommit | None:
        return self.state.commits.get(commit_hash)

    def first_parents(self, head: str | None) -> list[StoredCommit]:
        """The first-parent chain from the root to `head`."""
        commits = self.state.commits
        out: list[StoredCommit] = []
        while head is not None:
            stored = commits[head]
            out.append(stored)
            head = stored.event.parent_hash
        out.reverse()
        return out

    def history(self, head: str | None) -> list[StoredCommit]:
        """Every commit `head` contains, in compile order: at a merge, ours first, then
        the merged branch's commits that ours did not already have, then the merge.

        Each commit is visited once (linear in the history, however the branches
        were merged back and forth), with an explicit stack rather than recursion.
        """
        out: list[StoredCommit] = []
        seen: set[str] = set()
        # Frames: [first-parent segment (root -> tip) not yet seen, index, merge parent expanded?]
        frames: list[list[Any]] = [[self._unseen_segment(head, seen), 0, False]]
        while frames:
            frame = frames[-1]
            segment, index, expanded = frame
            if index == len(segment):
                frames.pop()
                continue
            stored = segment[index]
            commit_hash = stored.event.commit_hash
            merged = stored.event.merge_parent
            if commit_hash not in seen and merged is not None and not expanded:
                frame[2] = True
                frames.append([self._unseen_segment(merged, seen), 0, False])
                continue
            if commit_hash not in seen:
                seen.add(commit_hash)
                out.append(stored)
            frame[1], frame[2] = index + 1, False
        return out

    def _unseen_segment(self, head: str | None, seen: set[str]) -> list[StoredCommit]:
        """The first-parent chain back from `head` to the first commit already seen, root first."""
        commits = self.state.commits
        segment: list[StoredCommit] = []
        while head is not None and head not in seen:
            stored = commits[head]
            segment.append(stored)
            head = stored.event.parent_hash
        segment.reverse()
        return segment

    def visibility(self, head: str | None) -> Visibility:
        visible = Visibility()
        for stored in self.history(head):
            visible.include(stored)
        return visible

    # -- annotations and configs ---------------------------------------------

    def visible_annotations(self, commit_hash: str, visible: Visibility | None) -> list[AnnotationEntry]:
        entries = self.state.annotations.get(commit_hash, [])
        return entries if visible is None else [entry for entry in entries if visible.sees(entry)]

    def priority(self, commit_hash: str, visible: Visibility | None = None) -> PriorityName:
        entries = self.state.annotations.get(commit_hash)
        if entries:
            for entry in reversed(entries):
                if visible is None or visible.sees(entry):
                    return entry.priority
        return "normal"

    def is_skipped(self, commit_hash: str, visible: Visibility | None = None) -> bool:
        return self.priority(commit_hash, visible) == "skip"

    def config(self, commit_hash: str) -> JsonObject | None:
        """The commit's effective config: the latest recorded one, else its own."""
        recorded = self.state.recorded_configs.get(commit_hash)
        if recorded:
            return recorded[-1].config
        return self.state.commits[commit_hash].event.generation_config

    def config_history(self, commit_hash: str) -> list[ConfigEntry]:
        stored = self.state.commits[commit_hash]
        own = stored.event.generation_config
        history = [ConfigEntry(own, "commit", stored.event.created_at, stored.position)] if own is not None else []
        return history + self.state.recorded_configs.get(commit_hash, [])

    def usage_for(self, context_hash: str) -> UsageEntry | None:
        """The latest usage an API reported for the context whose head is `context_hash`."""
        return self._usage_by_context.get(context_hash)


def merge_content(
    branch: str, strategy: str, overridden_edits: list[str], overridden_annotations: list[int]
) -> dict[str, Any]:
    """The payload of a merge commit: what was merged, how, and what the strategy set aside."""
    return {
        "content_type": "merge",
        "branch": branch,
        "strategy": strategy,
        "overridden_edits": overridden_edits,
        "overridden_annotations": overridden_annotations,
    }

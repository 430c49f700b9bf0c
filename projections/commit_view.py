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

Commits live in a `CommitTable` (hashes, parents, positions and small fields,
in columns); their payloads, configs and metadata stay in the log, and
`event(row)` reads them back through the `EventSource` the facade attaches,
checked against the record hash remembered when the commit was folded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from events import (
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    CorruptLogError,
    Event,
    GenerationConfigRecorded,
    HeadChanged,
    Record,
    RefMoved,
    TractCreated,
    UsageRecorded,
)
from events.consistency import breach, first_unreached
from events.types import JsonObject, PriorityName
from projections.bulk import paused_gc
from projections.commit_table import NO_ROW, CommitTable, Kind, StoredCommit
from projections.content_reads import EventSource
from projections.view_state import (
    AnnotationEntry,
    ConfigEntry,
    RefEntry,
    TractState,
    UsageEntry,
    ViewState,
    Visibility,
)


class CommitView:
    def __init__(self, state: ViewState | None = None, source: EventSource | None = None, *, capacity: int = 0) -> None:
        """`capacity`: the records about to be folded, if known (the commit table makes room for them)."""
        self.state = state if state is not None else ViewState(commits=CommitTable(capacity))
        self.source = source
        """Reads commits back whole from the log (attached by the facade)."""
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

    def apply_records(self, records: Iterable[Record]) -> None:
        """Fold records read without their hashes (a commit's record is then read back chained to the
        record before it; `apply_hashed` remembers each hash instead)."""
        with paused_gc():
            for record in records:
                self.apply(record.number, record.event)

    def apply_hashed(self, records: Iterable[tuple[Record, bytes]]) -> None:
        """Fold (record, its chain hash) pairs, as `EventLog.read_hashed` yields them."""
        with paused_gc():
            for record, digest in records:
                self.apply(record.number, record.event, digest)

    def apply(self, position: int, event: Event, record_hash: bytes | None = None) -> None:
        """Fold one event in, or raise `CorruptLogError` (leaving the view as it was) if its refs do not hold.

        A commit keeps only what the commit table holds; `record_hash` is its record's chain hash,
        checked again when its content is read back."""
        found = breach(event, self)
        if found is not None:
            raise CorruptLogError(found[1], position=position, kind=found[0])
        state = self.state
        if isinstance(event, CommitCreated):
            state.commits.add(event, position, record_hash)
            state.tracts[event.tract_id].branches[event.branch] = event.commit_hash
        elif isinstance(event, AnnotationAdded):
            entries = state.annotations.setdefault(event.target_hash, [])
            anchor_row = state.commits.row(event.anchor) if event.anchor is not None else NO_ROW
            entries.append(
                AnnotationEntry(event.priority, event.reason, event.created_at, position, event.anchor, anchor_row)
            )
            if event.anchor is not None and event.anchor != event.target_hash:
                self.anchors.add(event.anchor)
            if event.priority == "skip" or len(entries) > 1:
                self.skip_changes += 1
        elif isinstance(event, GenerationConfigRecorded):
            recorded = ConfigEntry(event.generation_config, "record_usage", event.created_at, position)
            state.recorded_configs.setdefault(event.commit_hash, []).append(recorded)
            self.config_changes.append(event.commit_hash)
        elif isinstance(event, UsageRecorded):
            usage = UsageEntry(
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
            self._tract(event).usage.append(usage)
            if usage.context_hash is not None:
                self._usage_by_context[usage.context_hash] = usage
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

    def commit_facts(self, commit_hash: str) -> Kind | None:
        commits = self.state.commits
        row = commits.row(commit_hash)
        return commits.kind(row) if row != NO_ROW else None

    def missing_from_history(self, head: str | None, commit_hashes: Sequence[str]) -> str | None:
        table = self.state.commits
        start = table.row(head) if head is not None else NO_ROW
        wanted = {table.row(commit_hash): commit_hash for commit_hash in commit_hashes}
        return first_unreached(start, wanted, table.parents, table.merge_parents)

    # -- refs ----------------------------------------------------------------

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
        table = self.state.commits
        moves = []
        for row in range(table.rows):
            kind = table.kind(row)
            if kind.tract_id == tract_id and (branch is None or kind.branch == branch):
                moves.append(
                    RefEntry(
                        kind.branch,
                        table.hash_or_none(table.parents[row]),
                        table.hash(row),
                        "merge" if table.merge_parents[row] != NO_ROW else "commit",
                        table.created_at(row),
                        table.positions[row],
                    )
                )
        moves += [entry for entry in tract.ref_moves if branch is None or entry.branch == branch]
        moves.sort(key=lambda entry: entry.position)
        return moves

    # -- commits -------------------------------------------------------------

    @property
    def commits(self) -> CommitTable:
        return self.state.commits

    def row(self, commit_hash: str) -> int:
        """The commit's row in the commit table, or `NO_ROW`."""
        return self.state.commits.row(commit_hash)

    def get(self, commit_hash: str) -> StoredCommit | None:
        commits = self.state.commits
        row = commits.row(commit_hash)
        return commits.entry(row) if row != NO_ROW else None

    def event(self, row: int) -> CommitCreated:
        """The commit at `row` read back whole from the log (its payload, config, metadata...)."""
        source = self._source()
        commits = self.state.commits
        position = commits.positions[row]
        event = source.cached(position)
        if event is None:
            event = source.commit(position, commits.record_hash(row), commits.hash(row))
        return event

    def events_at(self, rows: Sequence[int], *, fresh: bool = False) -> dict[int, CommitCreated]:
        """The commits at `rows`, by row, in as few reads of the log as can be; what is read is not
        kept (a long history read once would only churn the cache). `fresh`: each read afresh from
        the log (written ones only), never one the cache holds, so the caller may hand it out as is."""
        source = self._source()
        commits = self.state.commits
        positions = commits.positions
        found: dict[int, CommitCreated] = {}
        wanted: list[tuple[int, bytes | None, str]] = []
        rows_at: dict[int, int] = {}
        for row in rows:
            position = positions[row]
            event = None if fresh else source.cached(position)
            if event is not None:
                found[row] = event
            else:
                rows_at[position] = row
                wanted.append((position, commits.record_hash(row), commits.hash(row)))
        for position, event in source.read(wanted):
            found[rows_at[position]] = event
        return found

    def _source(self) -> EventSource:
        if self.source is None:
            raise RuntimeError("this commit view reads no log: attach an event source to read content")
        return self.source

    # -- history -------------------------------------------------------------

    def history(self, head: str | None) -> list[int]:
        """The rows of every commit `head` contains, in compile order: at a merge, ours first, then
        the merged branch's commits that ours did not already have, then the merge.

        Each commit is visited once (linear in the history, however the branches
        were merged back and forth), with an explicit stack rather than recursion.
        """
        table = self.state.commits
        start = NO_ROW
        if head is not None:
            start = table.row(head)
            if start == NO_ROW:
                raise KeyError(head)
        merges = table.merge_parents
        seen = bytearray(table.rows)
        out: list[int] = []
        # Frames: [first-parent segment (root -> tip) not yet seen, index, merge parent expanded?]
        frames: list[list[Any]] = [[self._unseen_segment(start, seen), 0, False]]
        while frames:
            frame = frames[-1]
            segment, index, expanded = frame
            length = len(segment)
            while index < length:
                row = segment[index]
                if not seen[row]:
                    if merges[row] != NO_ROW and not expanded:
                        break
                    seen[row] = 1
                    out.append(row)
                index, expanded = index + 1, False
            if index == length:
                frames.pop()
                continue
            frame[1], frame[2] = index, True
            frames.append([self._unseen_segment(merges[segment[index]], seen), 0, False])
        return out

    def _unseen_segment(self, row: int, seen: bytearray) -> list[int]:
        """The first-parent chain back from `row` to the first commit already seen, root first."""
        parents = self.state.commits.parents
        segment: list[int] = []
        while row != NO_ROW and not seen[row]:
            segment.append(row)
            row = parents[row]
        segment.reverse()
        return segment

    def reaches(self, heads: Iterable[str | None], commit_hash: str) -> bool:
        """Is the commit in the history of any of `heads`? (A commit's ancestors have lower rows,
        so the walk never goes below the commit's row.)"""
        table = self.state.commits
        target = table.row(commit_hash)
        if target == NO_ROW:
            return False
        parents, merges = table.parents, table.merge_parents
        seen = bytearray(table.rows)
        stack = [table.row(head) for head in heads if head is not None]
        while stack:
            row = stack.pop()
            if row < target or seen[row]:  # (NO_ROW is below every row)
                continue
            if row == target:
                return True
            seen[row] = 1
            stack.append(parents[row])
            stack.append(merges[row])
        return False

    def visibility(self, head: str | None) -> Visibility:
        visible = Visibility()
        table = self.state.commits
        for row in self.history(head):
            visible.include(row, table)
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

    def config(self, commit_hash: str, event: CommitCreated | None = None) -> JsonObject | None:
        """The commit's effective config: the latest recorded one, else its own (read from the log
        unless its `event` is at hand)."""
        recorded = self.state.recorded_configs.get(commit_hash)
        if recorded:
            return recorded[-1].generation_config
        if event is None:
            event = self.event(self._row_of(commit_hash))
        return event.generation_config

    def config_history(self, commit_hash: str) -> list[ConfigEntry]:
        row = self._row_of(commit_hash)
        event = self.event(row)
        own = event.generation_config
        position = self.state.commits.positions[row]
        history = [ConfigEntry(own, "commit", event.created_at, position)] if own is not None else []
        return history + self.state.recorded_configs.get(commit_hash, [])

    def _row_of(self, commit_hash: str) -> int:
        row = self.state.commits.row(commit_hash)
        if row == NO_ROW:
            raise KeyError(commit_hash)
        return row

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

"""Reading: compiled contexts, commits, history, annotations and configs, answered by the commit view.

Kept apart from writing because reads never write: they look at the view (or the compiler's cache
over it), which reads a commit's content back from the log when it is needed, and every other part
finds commits through `_find`, `_require` and `_info`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from events import CommitCreated
from projections import StoredCommit
from projections.bulk import paused_gc
from projections.commit_table import NO_ROW
from projections.content_reads import ReadAhead
from projections.view_state import Visibility
from tract.arguments import text
from tract.compiled import CompiledContext
from tract.errors import CommitNotFoundError, InvalidArgumentError
from tract.jsonvalues import fresh
from tract.models import (
    Annotation,
    CommitInfo,
    CommitOperation,
    CompressionInfo,
    ConfigRecord,
    HistoryEntry,
    Priority,
    trusted,
)
from tract.parts import TractParts
from tract.shared import annotation_model

if TYPE_CHECKING:
    from tract.tract import Tract

_OPERATIONS = {operation.value: operation for operation in CommitOperation}
_PRIORITIES = {priority.value: priority for priority in Priority}


class Reading(TractParts):
    """Reads of the commit view for `Tract` (which provides the methods declared below)."""

    if TYPE_CHECKING:

        def replay(self, until_position: int | None = None, until_time: datetime | None = None) -> Tract: ...
        def _ref_head(self, ref: str) -> str | None: ...

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
            stored = self._find(commit_hash)
            return self._info(stored) if stored is not None else None

    def log(self, limit: int | None = 10) -> list[CommitInfo]:
        """Commits in HEAD's history, newest first (merged branches' commits included)."""
        with self._lock:
            self._check_open()
            table = self._view.commits
            newest_first: list[int] = []
            cursor = table.row(self.head) if self.head is not None else NO_ROW
            while cursor != NO_ROW and (limit is None or len(newest_first) < limit):
                if table.merge_parents[cursor] != NO_ROW:
                    newest_first = self._view.history(self.head)[::-1]
                    break
                newest_first.append(cursor)
                cursor = table.parents[cursor]
            rows = newest_first[:limit]
            with paused_gc():
                events = ReadAhead(self._view, rows).events()
                return [self._info(table.entry(row), event) for row, event in zip(rows, events, strict=True)]

    def history(self, ref: str | None = None, *, newest: int | None = None) -> list[HistoryEntry]:
        """Every commit in the history of `ref` (a branch name, or a commit hash or a unique prefix of
        one; default HEAD) in compile order (at a merge: ours, then the merged branch's commits since
        the fork, then the merge), each with the priority that history gives it; only the last
        `newest` of them if given.

        Nothing is read from the log, so the history of a long tract is cheap to list; `get_commit`
        reads a commit's content."""
        with self._lock:
            self._check_open()
            head = self.head if ref is None else self._ref_head(text(ref, "ref"))
            view = self._view
            table = view.commits
            rows = view.history(head)
            visible = Visibility()
            for row in rows:
                visible.include(row, table)
            annotated = view.state.annotations
            entries = []
            for row in rows if newest is None else rows[len(rows) - min(newest, len(rows)) :]:
                commit_hash = table.hash(row)
                kind = table.kind(row)
                priority = view.priority(commit_hash, visible) if commit_hash in annotated else "normal"
                entries.append(
                    trusted(
                        HistoryEntry,
                        {
                            "commit_hash": commit_hash,
                            "parent_hash": table.hash_or_none(table.parents[row]),
                            "merge_parent": table.hash_or_none(table.merge_parents[row]),
                            "response_to": table.hash_or_none(table.targets[row]),
                            "operation": _OPERATIONS[kind.operation],
                            "content_type": kind.content_type,
                            "branch": kind.branch,
                            "position": table.positions[row],
                            "created_at": table.created_at(row),
                            "priority": _PRIORITIES[priority],
                        },
                    )
                )
            return entries

    def get_annotations(self, commit_hash: str) -> list[Annotation]:
        with self._lock:
            self._check_open()
            self._require(commit_hash)
            visible = self._view.visibility(self.head)
            return [annotation_model(entry) for entry in self._view.visible_annotations(commit_hash, visible)]

    def config_history(self, commit_hash: str) -> list[ConfigRecord]:
        """Every generation config the commit has had, oldest first."""
        with self._lock:
            self._check_open()
            self._require(commit_hash)
            return [
                ConfigRecord(
                    generation_config=fresh(entry.generation_config),
                    source=entry.source,
                    created_at=entry.created_at,
                    position=entry.position,
                )
                for entry in self._view.config_history(commit_hash)
            ]

    def resolve(self, prefix: str) -> str:
        """The full hash of this tract's commit starting with `prefix` (at least 4 characters)."""
        with self._lock:
            self._check_open()
            if self._find(text(prefix, "prefix")) is not None:
                return prefix
            if len(prefix) < 4:
                raise CommitNotFoundError(f"hash prefix {prefix!r} is too short (give at least 4 characters)")
            commits = self._view.commits
            matches = [
                h for h in commits.starting_with(prefix) if commits.kind(commits.row(h)).tract_id == self._tract_id
            ]
            if len(matches) != 1:
                found = "no commit" if not matches else f"{len(matches)} commits"
                raise CommitNotFoundError(f"{found} in tract {self._tract_id} start with {prefix!r}")
            return matches[0]

    def _find(self, commit_hash: str) -> StoredCommit | None:
        stored = self._view.get(commit_hash)
        if stored is None or stored.tract_id != self._tract_id:
            return None
        return stored

    def _require(self, commit_hash: str) -> StoredCommit:
        stored = self._find(commit_hash)
        if stored is None:
            raise CommitNotFoundError(f"no commit {commit_hash!r} in tract {self._tract_id}")
        return stored

    def _info(self, stored: StoredCommit, event: CommitCreated | None = None) -> CommitInfo:
        """The public view of a stored commit (its content read from the log unless `event` is at hand):
        built without re-validating what the log holds, with fresh copies of every dict so callers
        cannot reach into the view or the cache of content read."""
        return self._commit_info(event if event is not None else self._view.event(stored.row), stored.position)

    def _commit_info(self, event: CommitCreated, position: int, *, owned: bool = False) -> CommitInfo:
        """`_info` of the commit `event`, the tract's record `position`; `owned`: the event was read for
        this caller alone (`CommitView.events_at(fresh=True)`), so its payload and metadata are handed
        out as they are."""
        copy = _as_is if owned else fresh
        config = self._view.config(event.commit_hash, event)
        return trusted(
            CommitInfo,
            {
                "commit_hash": event.commit_hash,
                "tract_id": event.tract_id,
                "parent_hash": event.parent_hash,
                "content_hash": event.content_hash,
                "content_type": event.content_type,
                "content": copy(event.content),
                "operation": _OPERATIONS[event.operation],
                "response_to": event.response_to,
                "message": event.message,
                "token_count": event.token_count,
                "metadata": copy(event.metadata),
                "generation_config": copy(config) if config is event.generation_config else fresh(config),
                "created_at": event.created_at,
                "position": position,
                "branch": event.branch,
                "merge_parent": event.merge_parent,
                "compression": _compression_info(event),
            },
        )


def _as_is(value: Any) -> Any:
    return value


def _compression_info(event: CommitCreated) -> CompressionInfo | None:
    compression = event.compression
    if isinstance(compression, msgspec.UnsetType):
        return None
    return trusted(
        CompressionInfo,
        {
            "replaced": list(compression.replaces),
            "preserved": list(compression.preserves),
            "tokens_before": compression.tokens_before,
            "tokens_after": compression.tokens_after,
        },
    )

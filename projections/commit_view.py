"""The commit view: everything the SDK reads about commits, folded from events.

`ViewState` is plain data (and exactly what a snapshot stores); `CommitView`
applies events to it in log order and answers questions about it. Changes
that matter to a cached compile (a commit's SKIP status flipping, a config
recorded later) are also counted, so a cache can tell cheaply whether it is
still valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec

from events import (
    AnnotationAdded,
    CommitCreated,
    Event,
    GenerationConfigRecorded,
    Record,
    TractCreated,
    UsageRecorded,
)
from events.types import JsonObject, PriorityName

ConfigSource = Literal["commit", "record_usage"]


class StoredCommit(msgspec.Struct, frozen=True, gc=False):
    event: CommitCreated
    position: int


class AnnotationEntry(msgspec.Struct, frozen=True):
    priority: PriorityName
    reason: str | None
    created_at: datetime
    position: int


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


class TractState(msgspec.Struct):
    created_at: datetime
    head: str | None = None
    usage: list[UsageEntry] = msgspec.field(default_factory=list)


class ViewState(msgspec.Struct):
    """The folded log. Tracts keep creation order: the first is the log's default."""

    position: int = 0
    tracts: dict[str, TractState] = msgspec.field(default_factory=dict)
    commits: dict[str, StoredCommit] = msgspec.field(default_factory=dict)
    annotations: dict[str, list[AnnotationEntry]] = msgspec.field(default_factory=dict)
    recorded_configs: dict[str, list[ConfigEntry]] = msgspec.field(default_factory=dict)


class CommitView:
    def __init__(self, state: ViewState | None = None) -> None:
        self.state = state if state is not None else ViewState()
        self.skip_changes = 0
        """Bumped whenever some commit's SKIP status flips."""
        self.config_changes: list[str] = []
        """Commits whose config was recorded after creation, in log order."""

    # -- folding -------------------------------------------------------------

    def apply_records(self, records: Iterable[Record]) -> None:
        for record in records:
            self.apply(record.position, record.event)

    def apply(self, position: int, event: Event) -> None:
        state = self.state
        if isinstance(event, CommitCreated):
            state.commits[event.commit_hash] = StoredCommit(event, position)
            self._tract(event).head = event.commit_hash
        elif isinstance(event, AnnotationAdded):
            was_skipped = self.is_skipped(event.target_hash)
            entry = AnnotationEntry(event.priority, event.reason, event.created_at, position)
            state.annotations.setdefault(event.target_hash, []).append(entry)
            if was_skipped != (event.priority == "skip"):
                self.skip_changes += 1
        elif isinstance(event, GenerationConfigRecorded):
            entry = ConfigEntry(event.generation_config, "record_usage", event.created_at, position)
            state.recorded_configs.setdefault(event.commit_hash, []).append(entry)
            self.config_changes.append(event.commit_hash)
        elif isinstance(event, UsageRecorded):
            self._tract(event).usage.append(
                UsageEntry(
                    event.head_hash,
                    event.prompt_tokens,
                    event.completion_tokens,
                    event.total_tokens,
                    event.created_at,
                    position,
                )
            )
        elif isinstance(event, TractCreated):
            state.tracts.setdefault(event.tract_id, TractState(created_at=event.created_at))
        state.position = position

    def _tract(self, event: Event) -> TractState:
        tract = self.state.tracts.get(event.tract_id)
        if tract is None:
            tract = self.state.tracts[event.tract_id] = TractState(created_at=event.created_at)
        return tract

    # -- questions -----------------------------------------------------------

    @property
    def default_tract(self) -> str | None:
        return next(iter(self.state.tracts), None)

    def head(self, tract_id: str) -> str | None:
        tract = self.state.tracts.get(tract_id)
        return tract.head if tract is not None else None

    def get(self, commit_hash: str) -> StoredCommit | None:
        return self.state.commits.get(commit_hash)

    def chain(self, head: str | None) -> list[StoredCommit]:
        """The commits from the root to `head`, following parent links."""
        commits = self.state.commits
        out: list[StoredCommit] = []
        while head is not None:
            stored = commits[head]
            out.append(stored)
            head = stored.event.parent_hash
        out.reverse()
        return out

    def annotations(self, commit_hash: str) -> list[AnnotationEntry]:
        return self.state.annotations.get(commit_hash, [])

    def priority(self, commit_hash: str, at_time: datetime | None = None) -> PriorityName:
        entries = self.state.annotations.get(commit_hash)
        if not entries:
            return "normal"
        if at_time is None:
            return entries[-1].priority
        for entry in reversed(entries):
            if entry.created_at <= at_time:
                return entry.priority
        return "normal"

    def is_skipped(self, commit_hash: str, at_time: datetime | None = None) -> bool:
        return self.priority(commit_hash, at_time) == "skip"

    def config(self, commit_hash: str, at_time: datetime | None = None) -> JsonObject | None:
        """The commit's effective config: the latest recorded one, else its own."""
        recorded = self.state.recorded_configs.get(commit_hash)
        if recorded:
            if at_time is None:
                return recorded[-1].config
            for entry in reversed(recorded):
                if entry.created_at <= at_time:
                    return entry.config
        return self.state.commits[commit_hash].event.generation_config

    def config_history(self, commit_hash: str) -> list[ConfigEntry]:
        stored = self.state.commits[commit_hash]
        own = stored.event.generation_config
        history = [ConfigEntry(own, "commit", stored.event.created_at, stored.position)] if own is not None else []
        return history + self.state.recorded_configs.get(commit_hash, [])

    def usage(self, tract_id: str) -> list[UsageEntry]:
        tract = self.state.tracts.get(tract_id)
        return tract.usage if tract is not None else []

"""What a commit view holds about a tract, as plain data: refs, annotations, configs, usage.

`CommitView` (projections/commit_view.py) folds a tract's events into a `ViewState`;
`Visibility` is what one compiled history sees of it (its commits, and what its merges set aside).
Commits themselves live in the `CommitTable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from events.types import DEFAULT_BRANCH, JsonObject, PriorityName
from projections.commit_table import NO_ROW, CommitTable

ConfigSource = Literal["commit", "record_usage"]


class AnnotationEntry(msgspec.Struct, frozen=True):
    priority: PriorityName
    reason: str | None
    created_at: datetime
    position: int
    anchor: str | None = None
    anchor_row: int = NO_ROW
    """The anchor's row in the commit table (its history is a set of rows)."""


class ConfigEntry(msgspec.Struct, frozen=True):
    generation_config: JsonObject
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
    commits: CommitTable = msgspec.field(default_factory=CommitTable)
    annotations: dict[str, list[AnnotationEntry]] = msgspec.field(default_factory=dict)
    recorded_configs: dict[str, list[ConfigEntry]] = msgspec.field(default_factory=dict)


@dataclass
class Visibility:
    """What one compiled history sees: its commits (one flag per row), and what its merges set aside."""

    ancestors: bytearray = field(default_factory=bytearray)
    ignored_edits: set[str] = field(default_factory=set)
    ignored_annotations: set[int] = field(default_factory=set)

    def sees(self, entry: AnnotationEntry) -> bool:
        if entry.anchor is not None:
            row, ancestors = entry.anchor_row, self.ancestors
            if row < 0 or row >= len(ancestors) or not ancestors[row]:
                return False
        return entry.position not in self.ignored_annotations

    def include(self, row: int, table: CommitTable) -> None:
        """Take in one more commit of the history (and what a merge sets aside)."""
        ancestors = self.ancestors
        if row >= len(ancestors):
            ancestors.extend(bytes(row + 1 - len(ancestors) + len(ancestors) // 2 + 64))
        ancestors[row] = 1
        overridden = table.overridden(row)
        if overridden is not None:
            self.ignored_edits.update(overridden.edits)
            self.ignored_annotations.update(overridden.annotations)

    def replaced(self, row: int, table: CommitTable) -> bool:
        """Does a compression in this history (one no merge set aside) replace the commit at `row`?"""
        ancestors = self.ancestors
        return any(
            compression < len(ancestors)
            and ancestors[compression]
            and table.hash(compression) not in self.ignored_edits
            for compression in table.replaced_by(row)
        )

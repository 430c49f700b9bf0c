"""Branch names and merge planning: the rules, kept apart from the facade that applies them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from projections import CommitView
from projections.commit_table import NO_ROW
from tract.errors import BranchError, MergeConflictError

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\\ud800-\udfff]|\.\.|@\{|//|/\.|\.lock(/|$)")


def check_branch_name(name: object) -> str:
    """Git's ref-name rules, in short: no spaces, controls, ~^:?*[\\, lone surrogates, '..', '@{', '//';
    not starting with '-', '/' or '.', not ending with '/', '.' or '.lock'; not 'HEAD' or '@'."""
    if not isinstance(name, str) or not name:
        raise BranchError("a branch name must be a non-empty string")
    if len(name) > 200 or _FORBIDDEN.search(name) or name[0] in "-/." or name[-1] in "/." or name in ("HEAD", "@"):
        raise BranchError(f"{name!r} is not a valid branch name (git's ref-name rules apply)")
    return name


@dataclass(frozen=True)
class _Touches:
    """What one side of a merge did since the fork: edits, compressions and annotations, by target commit."""

    edits: dict[str, list[str]]
    annotations: dict[str, list[int]]
    compressions: dict[str, list[str]]
    """The compress commits replacing each commit."""

    @property
    def targets(self) -> set[str]:
        return set(self.edits) | set(self.annotations) | set(self.compressions)


@dataclass(frozen=True)
class MergePlan:
    overridden_edits: list[str]
    overridden_annotations: list[int]
    conflicts: list[str]


def plan_merge(view: CommitView, ours: str, theirs: str, strategy: str, branch: str) -> MergePlan:
    """Which side wins where both edited, compressed or annotated the same commit since they forked."""
    ours_history, theirs_history = view.history(ours), view.history(theirs)
    ours_rows, theirs_rows = set(ours_history), set(theirs_history)
    ours_side = _touches(view, [row for row in ours_history if row not in theirs_rows])
    theirs_side = _touches(view, [row for row in theirs_history if row not in ours_rows])
    conflicts = sorted(ours_side.targets & theirs_side.targets)
    if conflicts and strategy == "auto":
        described = "; ".join(
            f"{target[:12]} (ours: {_describe(ours_side, target)}; theirs: {_describe(theirs_side, target)})"
            for target in conflicts
        )
        raise MergeConflictError(
            f"merging {branch!r}: both sides changed the same commits: {described}. "
            "Use strategy='ours' or 'theirs' to choose.",
            conflicts=conflicts,
        )
    loser = theirs_side if strategy == "ours" else ours_side
    edits = sorted(
        {h for target in conflicts for h in (*loser.edits.get(target, ()), *loser.compressions.get(target, ()))}
    )
    annotations = sorted(p for target in conflicts for p in loser.annotations.get(target, ()))
    return MergePlan(edits, annotations, conflicts)


def _touches(view: CommitView, rows: list[int]) -> _Touches:
    """What the commits at `rows` (one side since the fork) edited, compressed and annotated."""
    commits = view.commits
    side = {commits.hash(row) for row in rows}
    edits: dict[str, list[str]] = {}
    compressions: dict[str, list[str]] = {}
    for row in rows:
        original = commits.targets[row]
        if commits.kind(row).operation == "edit" and original != NO_ROW:
            edits.setdefault(commits.hash(original), []).append(commits.hash(row))
        compressed = commits.compressed(row)
        for replaced in compressed.replaces if compressed is not None else ():
            compressions.setdefault(commits.hash(replaced), []).append(commits.hash(row))
    annotations: dict[str, list[int]] = {}
    for target, entries in view.state.annotations.items():
        for entry in entries:
            if entry.anchor in side:
                annotations.setdefault(target, []).append(entry.position)
    return _Touches(edits, annotations, compressions)


def _describe(side: _Touches, target: str) -> str:
    parts = [f"edit {h[:12]}" for h in side.edits.get(target, ())]
    parts += [f"compression {h[:12]}" for h in side.compressions.get(target, ())]
    parts += [f"annotation at position {p}" for p in side.annotations.get(target, ())]
    return ", ".join(parts)

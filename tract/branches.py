"""Branch names and merge planning: the rules, kept apart from the facade that applies them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from projections import CommitView
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
    """What one side of a merge did since the fork: edits and annotations, by target commit."""

    edits: dict[str, list[str]]
    annotations: dict[str, list[int]]

    @property
    def targets(self) -> set[str]:
        return set(self.edits) | set(self.annotations)


@dataclass(frozen=True)
class MergePlan:
    overridden_edits: list[str]
    overridden_annotations: list[int]
    conflicts: list[str]


def plan_merge(view: CommitView, ours: str, theirs: str, strategy: str, branch: str) -> MergePlan:
    """Which side wins where both edited or annotated the same commit since they forked."""
    ours_history = {stored.event.commit_hash for stored in view.history(ours)}
    theirs_history = {stored.event.commit_hash for stored in view.history(theirs)}
    ours_side = _touches(view, ours_history - theirs_history)
    theirs_side = _touches(view, theirs_history - ours_history)
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
    edits = sorted(h for target in conflicts for h in loser.edits.get(target, ()))
    annotations = sorted(p for target in conflicts for p in loser.annotations.get(target, ()))
    return MergePlan(edits, annotations, conflicts)


def _touches(view: CommitView, side: set[str]) -> _Touches:
    edits: dict[str, list[str]] = {}
    for commit_hash in side:
        event = view.state.commits[commit_hash].event
        if event.operation == "edit" and event.response_to is not None:
            edits.setdefault(event.response_to, []).append(commit_hash)
    annotations: dict[str, list[int]] = {}
    for target, entries in view.state.annotations.items():
        for entry in entries:
            if entry.anchor in side:
                annotations.setdefault(target, []).append(entry.position)
    return _Touches(edits, annotations)


def _describe(side: _Touches, target: str) -> str:
    parts = [f"edit {h[:12]}" for h in side.edits.get(target, ())]
    parts += [f"annotation at position {p}" for p in side.annotations.get(target, ())]
    return ", ".join(parts)

"""What the log says about refs must hold together, record by record.

Every event belongs to a tract created before it; a commit's parents and the
commit it responds to are earlier commits of the same tract (an edit replaces
an original, never another edit); a merge has two parents and says what it
set aside; annotations, recorded configs, usage, branch moves and HEAD name
commits and branches of their tract that exist at that point of the log.
The writer never breaks these rules, so a log that does was forged or
damaged: `verify` reports the first breach as a problem, and the commit view
refuses to fold it, so no reader ever follows a reference to nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, Protocol

from events.types import (
    DEFAULT_BRANCH,
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Event,
    GenerationConfigRecorded,
    HeadChanged,
    RefMoved,
    TractCreated,
    UsageRecorded,
)

Breach = tuple[str, str]
"""(kind, detail) of what an event gets wrong."""


class CommitFacts(Protocol):
    @property
    def tract_id(self) -> str: ...

    @property
    def operation(self) -> str: ...


class KnownRefs(Protocol):
    """What the checks ask of the log before the event: answered by `RefFold` or the commit view."""

    def branches_of(self, tract_id: str) -> Collection[str] | None:
        """The tract's branch names; None if the tract was never created."""

    def current_branch(self, tract_id: str) -> str | None:
        """The branch HEAD follows in a tract that exists (None when detached)."""

    def commit_facts(self, commit_hash: str) -> CommitFacts | None:
        """The commit's tract and operation; None if there is no such commit yet."""


def breach(event: Event, known: KnownRefs) -> Breach | None:
    """What `event` gets wrong about the refs `known` holds, or None if it holds together."""
    branches = known.branches_of(event.tract_id)
    if branches is None:
        if isinstance(event, TractCreated):
            return None
        return "unknown tract", f"{type(event).__name__} for tract {event.tract_id!r}, which was never created"
    check = _CHECKS.get(type(event))
    return check(event, known, branches) if check is not None else None


def _unknown(known: KnownRefs, tract_id: str, commit_hash: str | None, what: str) -> str | None:
    """Why `commit_hash` is no commit of the tract (None if it is one, or is not given)."""
    if commit_hash is None:
        return None
    facts = known.commit_facts(commit_hash)
    if facts is not None and facts.tract_id == tract_id:
        return None
    return f"{what} names {commit_hash}, which is no earlier commit of tract {tract_id!r}"


def _commit(event: CommitCreated, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    tract, name = event.tract_id, f"commit {event.commit_hash}"
    why = _unknown(known, tract, event.parent_hash, f"{name}: its parent")
    why = why or _unknown(known, tract, event.merge_parent, f"{name}: its merge parent")
    why = why or _unknown(known, tract, event.response_to, f"{name}: response_to")
    if why is not None:
        return "unknown parent", why
    if event.operation == "edit":
        if event.response_to is None:
            return "bad edit", f"edit {event.commit_hash} names no commit it replaces"
        target = known.commit_facts(event.response_to)
        if target is not None and target.operation == "edit":
            return "bad edit", f"edit {event.commit_hash} replaces {event.response_to}, itself an edit"
    if (event.operation == "merge") != (event.merge_parent is not None):
        return "bad merge", f"{name} is a {event.operation} with merge parent {event.merge_parent}"
    if event.operation == "merge" and not _merge_payload(event.content):
        return "bad merge", f"merge {event.commit_hash} does not say what it set aside as lists of hashes and positions"
    return None


def _merge_payload(content: dict[str, Any]) -> bool:
    """A merge sets aside edits (commit hashes) and annotations (log positions): lists of those, if given."""
    edits = content.get("overridden_edits", [])
    annotations = content.get("overridden_annotations", [])
    return (
        isinstance(edits, list)
        and all(isinstance(item, str) for item in edits)
        and isinstance(annotations, list)
        and all(isinstance(item, int) for item in annotations)
    )


def _annotation(event: AnnotationAdded, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    why = _unknown(known, event.tract_id, event.target_hash, "annotation target")
    why = why or _unknown(known, event.tract_id, event.anchor, "annotation anchor")
    return ("unknown commit", why) if why is not None else None


def _config(event: GenerationConfigRecorded, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    why = _unknown(known, event.tract_id, event.commit_hash, "recorded generation config")
    return ("unknown commit", why) if why is not None else None


def _usage(event: UsageRecorded, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    why = _unknown(known, event.tract_id, event.head_hash, "recorded usage")
    return ("unknown commit", why) if why is not None else None


def _branch_created(event: BranchCreated, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.name in branches:
        return "duplicate branch", f"branch {event.name!r} of tract {event.tract_id!r} already exists"
    why = _unknown(known, event.tract_id, event.head, f"new branch {event.name!r}")
    return ("unknown commit", why) if why is not None else None


def _branch_deleted(event: BranchDeleted, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.name not in branches:
        return "unknown branch", f"deletes branch {event.name!r}, which tract {event.tract_id!r} does not have"
    if event.name == known.current_branch(event.tract_id):
        return "unknown branch", f"deletes branch {event.name!r}, which HEAD of tract {event.tract_id!r} follows"
    return None


def _ref_moved(event: RefMoved, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.branch not in branches:
        return "unknown branch", f"moves branch {event.branch!r}, which tract {event.tract_id!r} does not have"
    why = _unknown(known, event.tract_id, event.old_head, f"move of branch {event.branch!r}: old head")
    why = why or _unknown(known, event.tract_id, event.new_head, f"move of branch {event.branch!r}: new head")
    return ("unknown commit", why) if why is not None else None


def _head_changed(event: HeadChanged, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.branch is not None:
        if event.branch not in branches:
            return (
                "unknown branch",
                f"HEAD follows branch {event.branch!r}, which tract {event.tract_id!r} does not have",
            )
        return None
    if event.commit_hash is None:
        return "unknown commit", "HEAD detached at no commit"
    why = _unknown(known, event.tract_id, event.commit_hash, "detached HEAD")
    return ("unknown commit", why) if why is not None else None


_CHECKS: dict[type[Event], Callable[[Any, KnownRefs, Collection[str]], Breach | None]] = {
    CommitCreated: _commit,
    AnnotationAdded: _annotation,
    GenerationConfigRecorded: _config,
    UsageRecorded: _usage,
    BranchCreated: _branch_created,
    BranchDeleted: _branch_deleted,
    RefMoved: _ref_moved,
    HeadChanged: _head_changed,
}


class _Commit(NamedTuple):
    tract_id: str
    operation: str


class _TractRefs:
    __slots__ = ("branches", "current")

    def __init__(self) -> None:
        self.branches = {DEFAULT_BRANCH}
        self.current: str | None = DEFAULT_BRANCH


class RefFold:
    """The refs of a log folded from its events: just what `breach` asks, for a reader
    (such as `verify`) that keeps no commit view."""

    def __init__(self) -> None:
        self._tracts: dict[str, _TractRefs] = {}
        self._commits: dict[str, _Commit] = {}

    def branches_of(self, tract_id: str) -> Collection[str] | None:
        tract = self._tracts.get(tract_id)
        return tract.branches if tract is not None else None

    def current_branch(self, tract_id: str) -> str | None:
        return self._tracts[tract_id].current

    def commit_facts(self, commit_hash: str) -> CommitFacts | None:
        return self._commits.get(commit_hash)

    def apply(self, event: Event) -> None:
        """Take in an event that `breach` let through."""
        if isinstance(event, TractCreated):
            self._tracts.setdefault(sys.intern(event.tract_id), _TractRefs())
            return
        tract = self._tracts[event.tract_id]
        if isinstance(event, CommitCreated):
            self._commits[event.commit_hash] = _Commit(sys.intern(event.tract_id), sys.intern(event.operation))
            tract.branches.add(event.branch)
        elif isinstance(event, BranchCreated):
            tract.branches.add(event.name)
        elif isinstance(event, BranchDeleted):
            tract.branches.discard(event.name)
        elif isinstance(event, HeadChanged):
            tract.current = event.branch

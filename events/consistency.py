"""What the log says about refs must hold together, record by record.

Every event belongs to a tract created before it; a commit's parents and the
commit it responds to are earlier commits of the same tract (an edit replaces
an original, never another edit); a merge has two parents and says what it
set aside; a compression names messages (no edits or merges) of its parent's
history, each once; annotations, recorded configs, usage, branch moves and HEAD name
commits and branches of their tract that exist at that point of the log.
The writer never breaks these rules, so a log that does was forged or
damaged: `verify` reports the first breach as a problem, and the commit view
refuses to fold it, so no reader ever follows a reference to nothing.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

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

    def missing_from_history(self, head: str | None, commit_hashes: Sequence[str]) -> str | None:
        """The first of `commit_hashes` (known commits) that is not in the history of `head`, else None."""


def breach(event: Event, known: KnownRefs) -> Breach | None:
    """What `event` gets wrong about the refs `known` holds, or None if it holds together."""
    if type(event) is CommitCreated:  # most events: checked first, and with as few lookups as possible
        return _commit(event, known)
    branches = known.branches_of(event.tract_id)
    if branches is None:
        if isinstance(event, TractCreated):
            return None
        return "unknown tract", f"{type(event).__name__} for tract {event.tract_id!r}, which was never created"
    check = _CHECKS.get(type(event))
    return check(event, known, branches) if check is not None else None


def _outside(known: KnownRefs, tract_id: str, commit_hash: str) -> bool:
    """Is `commit_hash` no earlier commit of the tract?"""
    facts = known.commit_facts(commit_hash)
    return facts is None or facts.tract_id != tract_id


def _unknown(known: KnownRefs, tract_id: str, **named: str | None) -> Breach | None:
    """The first of the `named` commits that is given but is no earlier commit of the tract."""
    for what, commit_hash in named.items():
        if commit_hash is not None and _outside(known, tract_id, commit_hash):
            detail = f"{what.replace('_', ' ')} {commit_hash} is no earlier commit of tract {tract_id!r}"
            return "unknown commit", detail
    return None


def _commit(event: CommitCreated, known: KnownRefs) -> Breach | None:
    tract, parent, merge_parent, target = event.tract_id, event.parent_hash, event.merge_parent, event.response_to
    if parent is None and known.branches_of(tract) is None:  # (a parent of the tract proves the tract exists)
        return "unknown tract", f"CommitCreated for tract {tract!r}, which was never created"
    if (
        (parent is not None and _outside(known, tract, parent))
        or (merge_parent is not None and _outside(known, tract, merge_parent))
        or (target is not None and _outside(known, tract, target))
    ):  # the usual commit costs one lookup; the message is worked out only for a breach
        found = _unknown(known, tract, parent=parent, merge_parent=merge_parent, response_to=target)
        assert found is not None
        return "unknown parent", f"commit {event.commit_hash}: its {found[1]}"
    operation = event.operation
    if operation == "edit":
        if target is None:
            return "bad edit", f"edit {event.commit_hash} names no commit it replaces"
        original = known.commit_facts(target)
        if original is not None and original.operation == "edit":
            return "bad edit", f"edit {event.commit_hash} replaces {target}, itself an edit"
    if (operation == "merge") != (merge_parent is not None):
        return "bad merge", f"commit {event.commit_hash} is a {operation} with merge parent {merge_parent}"
    if operation == "merge" and not _merge_payload(event.content):
        return "bad merge", f"merge {event.commit_hash} does not list what it set aside as hashes and positions"
    if (operation == "compress") != (event.compression is not msgspec.UNSET):
        held = "without" if operation == "compress" else "with"
        return "bad compression", f"commit {event.commit_hash} is a {operation} {held} a record of what it compresses"
    if operation == "compress":
        return _compression(event, known)
    return None


def _compression(event: CommitCreated, known: KnownRefs) -> Breach | None:
    """A compression replaces at least one message, names each commit once, and only messages
    (appends or other compressions) of its parent's history."""
    compression = event.compression
    assert not isinstance(compression, msgspec.UnsetType)
    named = [*compression.replaces, *compression.preserves]
    where = f"compression {event.commit_hash}"
    if not compression.replaces:
        return "bad compression", f"{where} replaces nothing"
    if len(set(named)) != len(named):
        return "bad compression", f"{where} names a commit twice"
    for commit_hash in named:
        facts = known.commit_facts(commit_hash)
        if facts is None or facts.tract_id != event.tract_id:
            return "unknown commit", f"{where} names {commit_hash}, no earlier commit of tract {event.tract_id!r}"
        if facts.operation in ("edit", "merge"):
            return "bad compression", f"{where} names {commit_hash}, an {facts.operation} (not a message)"
    missing = known.missing_from_history(event.parent_hash, named)
    if missing is not None:
        return "bad compression", f"{where} names {missing}, which is not in the history of its parent"
    return None


def first_unreached(head: int, wanted: dict[int, str], parents: Sequence[int], merges: Sequence[int]) -> str | None:
    """The first of `wanted` (rows and their hashes) that the walk back from row `head` over
    `parents` and `merges` (-1: none) never meets. A commit's ancestors have lower rows, so the
    walk never goes below the lowest row wanted: it costs the distance back to it, not the history."""
    missing = dict(wanted)
    floor = min(missing, default=0)
    seen: set[int] = set()
    stack = [head]
    while stack and missing:
        row = stack.pop()
        if row < floor or row in seen:
            continue
        seen.add(row)
        missing.pop(row, None)
        stack.append(parents[row])
        stack.append(merges[row])
    return next(iter(missing.values()), None)


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
    return _unknown(known, event.tract_id, annotation_target=event.target_hash, annotation_anchor=event.anchor)


def _config(event: GenerationConfigRecorded, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    return _unknown(known, event.tract_id, commit_of_a_recorded_config=event.commit_hash)


def _usage(event: UsageRecorded, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    return _unknown(known, event.tract_id, head_of_recorded_usage=event.head_hash)


def _branch_created(event: BranchCreated, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.name in branches:
        return "duplicate branch", f"branch {event.name!r} of tract {event.tract_id!r} already exists"
    return _unknown(known, event.tract_id, head_of_the_new_branch=event.head)


def _branch_deleted(event: BranchDeleted, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.name not in branches:
        return "unknown branch", f"deletes branch {event.name!r}, which tract {event.tract_id!r} does not have"
    if event.name == known.current_branch(event.tract_id):
        return "unknown branch", f"deletes branch {event.name!r}, which HEAD of tract {event.tract_id!r} follows"
    return None


def _ref_moved(event: RefMoved, known: KnownRefs, branches: Collection[str]) -> Breach | None:
    if event.branch not in branches:
        return "unknown branch", f"moves branch {event.branch!r}, which tract {event.tract_id!r} does not have"
    return _unknown(known, event.tract_id, old_head=event.old_head, new_head=event.new_head)


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
    return _unknown(known, event.tract_id, detached_HEAD=event.commit_hash)


_CHECKS: dict[type[Event], Callable[[Any, KnownRefs, Collection[str]], Breach | None]] = {
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
    (such as `verify`) that keeps no commit view. Commits are rows, with their parents as rows."""

    def __init__(self) -> None:
        self._tracts: dict[str, _TractRefs] = {}
        self._rows: dict[str, int] = {}
        self._row_facts = array("I")
        self._parents = array("i")
        self._merges = array("i")
        self._facts: dict[tuple[str, str], int] = {}
        self._fact_list: list[_Commit] = []

    def branches_of(self, tract_id: str) -> Collection[str] | None:
        tract = self._tracts.get(tract_id)
        return tract.branches if tract is not None else None

    def current_branch(self, tract_id: str) -> str | None:
        return self._tracts[tract_id].current

    def commit_facts(self, commit_hash: str) -> CommitFacts | None:
        row = self._rows.get(commit_hash)
        return None if row is None else self._fact_list[self._row_facts[row]]

    def missing_from_history(self, head: str | None, commit_hashes: Sequence[str]) -> str | None:
        start = self._rows.get(head, -1) if head is not None else -1
        wanted = {self._rows[commit_hash]: commit_hash for commit_hash in commit_hashes}
        return first_unreached(start, wanted, self._parents, self._merges)

    def apply(self, event: Event) -> None:
        """Take in an event that `breach` let through."""
        if type(event) is CommitCreated:
            key = (event.tract_id, event.operation)
            facts = self._facts.get(key)
            if facts is None:  # one per tract and operation, shared by its commits
                facts = self._facts[key] = len(self._fact_list)
                self._fact_list.append(_Commit(*key))
            rows = self._rows
            parent = -1 if event.parent_hash is None else rows[event.parent_hash]
            merged = -1 if event.merge_parent is None else rows[event.merge_parent]
            rows[event.commit_hash] = len(self._parents)
            self._row_facts.append(facts)
            self._parents.append(parent)
            self._merges.append(merged)
            self._tracts[event.tract_id].branches.add(event.branch)
            return
        if isinstance(event, TractCreated):
            self._tracts.setdefault(event.tract_id, _TractRefs())
            return
        tract = self._tracts[event.tract_id]
        if isinstance(event, BranchCreated):
            tract.branches.add(event.name)
        elif isinstance(event, BranchDeleted):
            tract.branches.discard(event.name)
        elif isinstance(event, HeadChanged):
            tract.current = event.branch

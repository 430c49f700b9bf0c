"""Branches: create, switch, check out, delete, reset, merge and diff them, and read their reflog.

The naming and merge-planning rules live in `tract.branches`; this applies them to a tract's refs,
writing the moves as events like any other change.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from events import AnyEvent, BranchCreated, BranchDeleted, CommitCreated, HeadChanged, RefMoved, sealed_commit
from projections import StoredCommit
from projections.commit_view import merge_content
from projections.view_state import TractState
from tract.arguments import flag, one_of, text
from tract.branches import check_branch_name, plan_merge
from tract.diff import diff_contexts
from tract.errors import BranchError, CommitNotFoundError, DetachedHeadError, TractError
from tract.models import BranchInfo, CommitInfo, ContextDiff, MergeResult, RefLogEntry
from tract.parts import TractParts
from tract.shared import utc_now

MERGE_STRATEGIES = ("auto", "ours", "theirs")


class Branching(TractParts):
    """Branch operations for `Tract` (which provides the methods declared below)."""

    if TYPE_CHECKING:

        def _write(self, new: list[AnyEvent]) -> None: ...
        def _timestamp_after(self, parent: str | None, unwritten: datetime | None = None) -> datetime: ...
        def resolve(self, prefix: str) -> str: ...
        def _require(self, commit_hash: str) -> StoredCommit: ...
        def _info(self, stored: StoredCommit, event: CommitCreated | None = None) -> CommitInfo: ...

    def branch(self, name: str, *, at: str | None = None, switch: bool = True) -> BranchInfo:
        """A new branch at HEAD (or at commit `at`), checked out unless switch=False."""
        with self._lock:
            self._check_writable()
            name = check_branch_name(name)
            switch = flag(switch, "switch")
            tract = self._tract_state()
            if name in tract.branches:
                raise BranchError(f"branch {name!r} already exists")
            head = self._require(self.resolve(text(at, "at"))).commit_hash if at is not None else self.head
            now = utc_now()
            new: list[AnyEvent] = [BranchCreated(tract_id=self._tract_id, created_at=now, name=name, head=head)]
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
                self._write([HeadChanged(tract_id=self._tract_id, created_at=utc_now(), branch=name)])
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
                    [HeadChanged(tract_id=self._tract_id, created_at=utc_now(), branch=None, commit_hash=commit_hash)]
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
            self._write([BranchDeleted(tract_id=self._tract_id, created_at=utc_now(), name=name)])

    def reset(self, commit_hash: str) -> CommitInfo:
        """Move the current branch to a commit of its history (back, or forward again).

        The commits after it stay in the log: reachable by hash and by `reflog()`.
        """
        with self._lock:
            self._check_writable()
            branch = self._current_branch_for_commit()
            target = self.resolve(text(commit_hash, "commit_hash"))
            if not self._in_branch_history(branch, target):
                raise BranchError(f"{target[:12]} is not in the history of branch {branch!r}")
            old = self.head
            if old != target:
                self._write(
                    [
                        RefMoved(
                            tract_id=self._tract_id,
                            created_at=utc_now(),
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
            if branch == current or theirs is None or self._view.reaches([ours], theirs):
                return MergeResult(kind="up-to-date", head=ours)
            if ours is None or self._view.reaches([theirs], ours):
                moved = RefMoved(
                    tract_id=self._tract_id,
                    created_at=utc_now(),
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
                created_at=self._timestamp_after(ours),
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
        """The head of branch `ref`, else the commit `ref` (a hash or a unique prefix of one) names."""
        branches = self._tract_state().branches
        if ref in branches:
            return branches[ref]
        try:
            return self.resolve(ref)
        except CommitNotFoundError as error:
            raise CommitNotFoundError(
                f"no branch {ref!r}, and {error}; branches: {', '.join(sorted(branches)) or 'none'}"
            ) from None

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

    def _in_branch_history(self, branch: str, commit_hash: str) -> bool:
        """Has the commit ever been in the branch's history (of a reflog head or of its ancestors)?"""
        heads = {entry.new_head for entry in self._view.reflog(self._tract_id, branch)}
        return self._view.reaches(heads, commit_hash)

    def _branch_info(self, name: str) -> BranchInfo:
        head = self._tract_state().branches[name]
        return BranchInfo(
            name=name, head=head, commit_count=len(self._view.history(head)), current=name == self.current_branch
        )

"""Verify checks what the log says about refs, and the readers agree with it.

Logs here have valid framing, chain and commit hashes (written with the log's own
append and `sealed_commit`) but events that may not hold together: references
to missing commits, edits of edits, commits of another tract, branch events
naming unknown commits, HEAD on deleted branches, tracts never created, odd
merges. `verify` names the first such record (its tract and its number there);
opening that tract refuses that very record; a log that passes `verify` never
makes a reader fail with anything but a `TractError`.
"""

from __future__ import annotations

import contextlib
import io
import signal
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from events import (
    LOG_FILE,
    AnnotationAdded,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Compression,
    Event,
    GenerationConfigRecorded,
    HeadChanged,
    RefMoved,
    TractCreated,
    UsageRecorded,
    verify,
)
from projections.commit_view import merge_content
from tract import ChainHead, CorruptLogError, Tract, TractError
from tract.cli import main

from logcraft import START, Forger
from properties import examples

UNKNOWN = "f" * 64


class Base:
    """A small valid log: tracts t and u, commits in both, an edit, a deleted branch."""

    def __init__(self, directory: Path) -> None:
        self.forger = forger = Forger(directory)
        forger.tract("t")
        forger.tract("u")
        self.c1 = forger.commit("t", "first", None)
        self.c2 = forger.commit("t", "second", self.c1)
        self.e1 = forger.commit("t", "first, edited", self.c2, operation="edit", response_to=self.c1)
        self.u1 = forger.commit("u", "other tract", None)
        forger.append(BranchCreated(tract_id="t", created_at=forger.now(), name="gone", head=self.c1))
        forger.append(BranchDeleted(tract_id="t", created_at=forger.now(), name="gone"))

    def commit(self, parent: str | None, **fields: Any) -> Event:
        return self.forger.commit_event("t", "hostile", parent, **fields)


def _compress(replaces: list[str], preserves: list[str] | None = None) -> dict[str, Any]:
    compression = Compression(replaces=replaces, preserves=preserves or [], tokens_before=9, tokens_after=4)
    return {"operation": "compress", "content": {"content_type": "summary", "text": "S"}, "compression": compression}


def _merge(parent: str, merge_parent: str | None, **changes: Any) -> dict[str, Any]:
    content = {**merge_content("dev", "auto", [], []), **changes}
    return {"operation": "merge", "merge_parent": merge_parent, "content": content}


CASES: dict[str, tuple[Callable[[Base], Event], str]] = {
    "edit of no commit": (lambda b: b.commit(b.e1, operation="edit", response_to=UNKNOWN), "unknown parent"),
    "edit of another tract's commit": (lambda b: b.commit(b.e1, operation="edit", response_to=b.u1), "unknown parent"),
    "response to no commit": (lambda b: b.commit(b.e1, response_to=UNKNOWN), "unknown parent"),
    "parent names no commit": (lambda b: b.commit(UNKNOWN), "unknown parent"),
    "parent from another tract": (lambda b: b.commit(b.u1), "unknown parent"),
    "merge parent names no commit": (lambda b: b.commit(b.e1, **_merge(b.e1, UNKNOWN)), "unknown parent"),
    "merge parent from another tract": (lambda b: b.commit(b.e1, **_merge(b.e1, b.u1)), "unknown parent"),
    "edit of an edit": (lambda b: b.commit(b.e1, operation="edit", response_to=b.e1), "bad edit"),
    "edit of nothing": (lambda b: b.commit(b.e1, operation="edit"), "bad edit"),
    "merge without a second parent": (lambda b: b.commit(b.e1, **_merge(b.e1, None)), "bad merge"),
    "append with a merge parent": (lambda b: b.commit(b.e1, merge_parent=b.c1), "bad merge"),
    "merge setting aside a number": (
        lambda b: b.commit(b.e1, **_merge(b.e1, b.c1, overridden_edits=5)),
        "bad merge",
    ),
    "merge setting aside objects": (
        lambda b: b.commit(b.e1, **_merge(b.e1, b.c1, overridden_annotations=[{"x": 1}])),
        "bad merge",
    ),
    "compression of no commit": (lambda b: b.commit(b.e1, **_compress([b.c1, UNKNOWN])), "unknown commit"),
    "compression of another tract's commit": (lambda b: b.commit(b.e1, **_compress([b.u1])), "unknown commit"),
    "compression of a commit off its history": (
        lambda b: b.commit(b.e1, **_compress([b.forger.commit("t", "aside", b.c1, branch="side")])),
        "bad compression",
    ),
    "compression preserving a commit off its history": (
        lambda b: b.commit(b.e1, **_compress([b.c2], [b.forger.commit("t", "aside", b.c1, branch="side")])),
        "bad compression",
    ),
    "compression of an edit": (lambda b: b.commit(b.e1, **_compress([b.e1])), "bad compression"),
    "compression replacing nothing": (lambda b: b.commit(b.e1, **_compress([], [b.c1])), "bad compression"),
    "compression naming a commit twice": (lambda b: b.commit(b.e1, **_compress([b.c1], [b.c1])), "bad compression"),
    "compress commit without its compression": (
        lambda b: b.commit(b.e1, operation="compress", content={"content_type": "summary", "text": "S"}),
        "bad compression",
    ),
    "append with a compression": (
        lambda b: b.commit(b.e1, compression=_compress([b.c1])["compression"]),
        "bad compression",
    ),
    "annotation of an unknown hash": (
        lambda b: AnnotationAdded(tract_id="t", created_at=b.forger.now(), target_hash=UNKNOWN, priority="skip"),
        "unknown commit",
    ),
    "annotation of another tract's commit": (
        lambda b: AnnotationAdded(tract_id="t", created_at=b.forger.now(), target_hash=b.u1, priority="skip"),
        "unknown commit",
    ),
    "annotation anchored at no commit": (
        lambda b: AnnotationAdded(
            tract_id="t", created_at=b.forger.now(), target_hash=b.c1, priority="skip", anchor=UNKNOWN
        ),
        "unknown commit",
    ),
    "config for another tract's commit": (
        lambda b: GenerationConfigRecorded(
            tract_id="t", created_at=b.forger.now(), commit_hash=b.u1, generation_config={"model": "m"}
        ),
        "unknown commit",
    ),
    "usage for an unknown head": (
        lambda b: UsageRecorded(
            tract_id="t",
            created_at=b.forger.now(),
            head_hash=UNKNOWN,
            prompt_tokens=1,
            completion_tokens=1,
            total_tokens=2,
        ),
        "unknown commit",
    ),
    "branch moved to no commit": (
        lambda b: RefMoved(
            tract_id="t", created_at=b.forger.now(), branch="main", old_head=b.c2, new_head=UNKNOWN, reason="reset"
        ),
        "unknown commit",
    ),
    "branch moved from another tract's commit": (
        lambda b: RefMoved(
            tract_id="t", created_at=b.forger.now(), branch="main", old_head=b.u1, new_head=b.c1, reason="reset"
        ),
        "unknown commit",
    ),
    "missing branch moved": (
        lambda b: RefMoved(
            tract_id="t", created_at=b.forger.now(), branch="gone", old_head=None, new_head=b.c1, reason="reset"
        ),
        "unknown branch",
    ),
    "HEAD to a deleted branch": (
        lambda b: HeadChanged(tract_id="t", created_at=b.forger.now(), branch="gone"),
        "unknown branch",
    ),
    "HEAD detached at no commit": (
        lambda b: HeadChanged(tract_id="t", created_at=b.forger.now(), branch=None, commit_hash=UNKNOWN),
        "unknown commit",
    ),
    "HEAD detached at nothing": (
        lambda b: HeadChanged(tract_id="t", created_at=b.forger.now(), branch=None),
        "unknown commit",
    ),
    "branch created at no commit": (
        lambda b: BranchCreated(tract_id="t", created_at=b.forger.now(), name="dev", head=UNKNOWN),
        "unknown commit",
    ),
    "branch created twice": (
        lambda b: BranchCreated(tract_id="t", created_at=b.forger.now(), name="main", head=b.c1),
        "duplicate branch",
    ),
    "missing branch deleted": (
        lambda b: BranchDeleted(tract_id="t", created_at=b.forger.now(), name="gone"),
        "unknown branch",
    ),
    "current branch deleted": (
        lambda b: BranchDeleted(tract_id="t", created_at=b.forger.now(), name="main"),
        "unknown branch",
    ),
    "usage in a tract never created": (
        lambda b: UsageRecorded(
            tract_id="ghost",
            created_at=b.forger.now(),
            head_hash=b.c1,
            prompt_tokens=1,
            completion_tokens=1,
            total_tokens=2,
        ),
        "unknown tract",
    ),
    "commit in a tract never created": (
        lambda b: b.forger.commit_event("ghost", "boo", None),
        "unknown tract",
    ),
}


def test_the_base_log_verifies_and_reads(log_dir: Path) -> None:
    Base(log_dir).forger.close()
    assert verify(log_dir).ok
    with Tract.open(log_dir, readonly=True, tract_id="t") as tract:
        assert [m.content for m in tract.compile().messages] == ["first, edited", "second"]


@pytest.mark.parametrize("case", list(CASES))
def test_verify_flags_refs_that_do_not_hold_and_open_refuses_the_same_record(
    log_dir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    hostile, kind = CASES[case]
    base = Base(log_dir)
    event = hostile(base)
    position = base.forger.append(event)
    in_log = base.forger.position
    base.forger.append(TractCreated(tract_id="later", created_at=base.forger.now()))  # not the last record
    base.forger.close()
    report = verify(log_dir)
    assert report.problem is not None, case
    assert (report.problem.tract_id, report.problem.position, report.problem.kind) == (event.tract_id, position, kind)
    assert report.records_checked == in_log - 1
    for readonly in (True, False):
        with pytest.raises(CorruptLogError) as caught:
            Tract.open(log_dir, readonly=readonly, tract_id=event.tract_id)
        assert (caught.value.position, caught.value.kind) == (position, kind)
    assert main(["verify", str(log_dir)]) == 1
    assert main(["log", str(log_dir), "--tract", event.tract_id]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(f"position {position}" in line and kind in line for line in lines), lines


@pytest.mark.parametrize("field", ["parent", "merge_parent", "response_to"])
def test_a_commit_written_later_is_no_parent(log_dir: Path, field: str) -> None:
    base = Base(log_dir)
    later = base.commit(base.e1)  # sealed now, written after the commit that names it
    names = {
        "parent": {"parent": later.commit_hash},
        "merge_parent": {"parent": base.e1, **_merge(base.e1, later.commit_hash)},
        "response_to": {"parent": base.e1, "operation": "edit", "response_to": later.commit_hash},
    }[field]
    position = base.forger.append(base.commit(**names))
    base.forger.append(later)
    base.forger.close()
    report = verify(log_dir)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "unknown parent")
    assert later.commit_hash in report.problem.detail


def test_a_refresh_never_takes_in_half_a_batch_whose_refs_do_not_hold(log_dir: Path) -> None:
    base = Base(log_dir)
    with Tract.open(log_dir, readonly=True, tract_id="t") as reader:
        before, head = reader.compile(), reader.chain_head
        usage = UsageRecorded(
            tract_id="t", created_at=base.forger.now(), head_hash=base.e1, prompt_tokens=7, completion_tokens=1,
            total_tokens=8,
        )  # fmt: skip
        orphan = AnnotationAdded(tract_id="t", created_at=base.forger.now(), target_hash=UNKNOWN, priority="skip")
        last = base.forger.append(usage, orphan)
        for _ in range(2):
            with pytest.raises(CorruptLogError) as caught:
                reader.refresh()
            assert (caught.value.position, caught.value.kind) == (last, "unknown commit")
            assert reader.chain_head == head
            assert reader.compile() == before  # the usage in the same batch is not shown
            assert [e.position for e in reader.events()] == list(range(1, head.position + 1))
    base.forger.close()


@pytest.mark.parametrize("position", [0, -3, 7, 99])
@pytest.mark.parametrize("tract_id", ["t", "u", "nowhere"])
def test_an_anchor_that_names_no_record_fails(
    log_dir: Path, capsys: pytest.CaptureFixture[str], position: int, tract_id: str
) -> None:
    """Positions are the tract's own: t holds 6 records and u 2, so position 7 of t, or 3 of u,
    is no record, even though the whole log holds 8."""
    Base(log_dir).forger.close()
    with Tract.open(log_dir, readonly=True, tract_id="t") as tract:
        head = tract.chain_head
        assert (head.tract_id, head.position) == ("t", 6)
        assert tract.verify(anchor=head).ok
        assert tract.verify(anchor=(head.position, head.hash)).ok
        report = tract.verify(anchor=ChainHead(tract_id=tract_id, position=position, hash=head.hash))
        assert report.problem is not None
        assert (report.problem.tract_id, report.problem.position, report.problem.kind) == (
            tract_id, position, "anchor missing",
        )  # fmt: skip
        assert verify(log_dir, anchor=(tract_id, position, head.hash)).problem == report.problem
        if tract_id == "t":
            assert tract.verify(anchor=(position, head.hash)).problem == report.problem
    if position >= 0:  # the CLI's POSITION is digits only
        assert main(["verify", str(log_dir), "--anchor", f"{tract_id}:{position}:{head.hash}"]) == 1
        assert f"anchor missing at {tract_id} position {position}" in capsys.readouterr().err
    assert main(["verify", str(log_dir), "--anchor", f"t:{head.position}:{head.hash}"]) == 0


# -- the property: verify flags it, or every reader copes ----------------------------------------
#
# Each drawn step is valid (what the writer could have written), odd (the writer never writes it,
# but it holds together: verify lets it through and readers must cope), or hostile (verify must
# flag exactly that record).

KINDS = [
    "commit", "commit", "commit", "compress", "annotate", "config", "usage",
    "branch", "delete", "move", "head", "tract",
]  # fmt: skip
MODES = ["valid"] * 6 + ["odd"] * 4 + ["hostile"]
STEPS = st.tuples(st.sampled_from(KINDS), st.sampled_from(MODES), st.integers(0, 9), st.integers(0, 9))
BIG = 2**63 - 1


class TractModel:
    def __init__(self) -> None:
        self.commits: list[str] = []
        self.edits: set[str] = set()
        self.merges: set[str] = set()
        self.parents: dict[str, tuple[str | None, str | None]] = {}
        self.branches: dict[str, str | None] = {"main": None}
        self.current: str | None = "main"
        self.detached: str | None = None

    @property
    def head(self) -> str | None:
        return self.branches.get(self.current) if self.current is not None else self.detached

    @property
    def originals(self) -> list[str]:
        return [h for h in self.commits if h not in self.edits]

    def history(self, head: str | None) -> list[str]:
        """The commits of `head`'s history that are messages of their own (no edits, no merges)."""
        seen: set[str] = set()
        pending = [head]
        while pending:
            commit_hash = pending.pop()
            if commit_hash is None or commit_hash in seen:
                continue
            seen.add(commit_hash)
            pending.extend(self.parents.get(commit_hash, (None, None)))
        return [h for h in self.commits if h in seen and h not in self.edits and h not in self.merges]


def pick(pool: list[Any], index: int) -> Any:
    return pool[index % len(pool)] if pool else None


class Hostile(NamedTuple):
    """Where the first hostile record is: its tract, its number there, its place in the whole log."""

    tract_id: str
    number: int
    position: int


class Script:
    """Writes drawn steps as events, keeping its own model of each tract to aim them."""

    def __init__(self, forger: Forger) -> None:
        self.forger = forger
        self.tracts: dict[str, TractModel] = {}
        self.first_hostile: Hostile | None = None
        self.create("t")

    def create(self, tract_id: str) -> None:
        self.forger.tract(tract_id)
        self.tracts.setdefault(tract_id, TractModel())

    def run(self, kind: str, mode: str, a: int, b: int) -> None:
        tract_id = "u" if a % 3 == 0 and "u" in self.tracts else "t"
        model = self.tracts[tract_id]
        other = [h for t, m in self.tracts.items() if t != tract_id for h in m.commits]
        foreign = pick(other, b) or UNKNOWN  # a commit of another tract (or of none)
        now = self.forger.now()
        hostile = mode == "hostile"
        if kind == "tract":
            if hostile or mode == "odd" or "u" in self.tracts:
                self.forger.tract(tract_id)  # created again: harmless, the first creation stands
            else:
                self.create("u")
            return
        if hostile and a % 5 == 4:
            tract_id = "ghost"  # anything for a tract never created
        if kind == "commit":
            self.commit(tract_id, model, mode, a, b, foreign)
            return
        if kind == "compress":
            self.compress(tract_id, model, mode, a, b, foreign)
            return
        own = pick(model.commits, a + b)
        if own is None and not hostile:
            return  # nothing to refer to yet
        if kind == "annotate":
            target, anchor = (pick([UNKNOWN, foreign], b), model.head) if hostile else (own, model.head)
            if mode == "odd":
                anchor = pick([None, *model.commits], b)
            event: Event = AnnotationAdded(
                tract_id=tract_id, created_at=now, target_hash=target, priority=["skip", "normal", "pinned"][b % 3],
                anchor=anchor,
            )  # fmt: skip
        elif kind == "config":
            commit_hash = foreign if hostile else model.head if mode == "valid" else own
            if commit_hash is None:
                return
            event = GenerationConfigRecorded(
                tract_id=tract_id, created_at=now, commit_hash=commit_hash, generation_config={"temperature": b / 9}
            )
        elif kind == "usage":
            head = pick([UNKNOWN, foreign], b) if hostile else model.head if mode == "valid" else own
            if head is None:
                return
            count = BIG if mode == "odd" and b % 2 else b
            unreadable = hostile and b % 3 == 0
            if unreadable:
                head, count = own or UNKNOWN, 2**64 - 1  # beyond any count: the record does not decode
            event = UsageRecorded(
                tract_id=tract_id, created_at=now, head_hash=head, prompt_tokens=count, completion_tokens=count,
                total_tokens=count,
            )  # fmt: skip
            if unreadable:  # the log's own append refuses it: crafted as a forger would write it
                self.first_hostile = Hostile(tract_id, self.forger.append_unreadable(event), self.forger.position)
                return
        elif kind == "branch":
            name = pick(["dev", "side", "x"], b)
            if hostile:
                name, head = (pick(list(model.branches), b) or "main", own) if b % 2 else (name, foreign)
            elif name in model.branches:
                return
            else:
                head = model.head if mode == "valid" else pick([None, *model.commits], b)
            event = BranchCreated(tract_id=tract_id, created_at=now, name=name, head=head)
        elif kind == "delete":
            if hostile:
                name = pick(["nope", model.current or "nope"], b)
            else:
                name = pick([n for n in model.branches if n != model.current], b)
                if name is None:
                    return
            event = BranchDeleted(tract_id=tract_id, created_at=now, name=name)
        elif kind == "move":
            branch = model.current if mode == "valid" else pick(list(model.branches), b)
            new_head = foreign if hostile and b % 2 else own
            if hostile and not b % 2:
                branch = "nope"
            if branch is None:
                return
            event = RefMoved(
                tract_id=tract_id, created_at=now, branch=branch, old_head=model.branches.get(branch),
                new_head=new_head, reason="reset",
            )  # fmt: skip
        else:  # head
            if hostile:
                branch, commit_hash = pick([("nope", None), (None, foreign), (None, None)], b)
            elif b % 2:
                branch, commit_hash = pick(list(model.branches), a), own if mode == "odd" else None
            else:
                branch, commit_hash = None, own
            event = HeadChanged(tract_id=tract_id, created_at=now, branch=branch, commit_hash=commit_hash)
        self.write(event, mode, model)

    def commit(self, tract_id: str, model: TractModel, mode: str, a: int, b: int, foreign: str) -> None:
        parent = model.head if mode == "valid" else pick([model.head, *model.commits], a)
        branch = model.current or "main" if mode != "odd" or b % 3 else "elsewhere"
        operation, target, merge_parent = "append", None, None
        content: dict[str, Any] = {"content_type": "dialogue", "role": ["user", "assistant"][b % 2], "text": f"m{a}"}
        choice = (a + b) % 4
        if choice == 1 and model.originals:
            operation, target = "edit", pick(model.originals, b)
        elif choice == 2:
            others = [h for n, h in model.branches.items() if h is not None and h != parent]
            merge_parent = pick(others if mode == "valid" else [parent, *model.commits], b)
            if merge_parent is not None:
                overridden = [pick(model.commits, b), UNKNOWN] if mode == "odd" else []
                operation, content = "merge", merge_content("dev", "auto", overridden, [b] if mode == "odd" else [])
        elif choice == 3 and mode == "odd":
            content = pick(
                [
                    {"content_type": "instruction", "text": "be brief"},
                    {"content_type": "custom", "payload": [1, 2]},
                    {"content_type": "dialogue", "role": 7},
                    {"content_type": "tool_io"},
                    {"content_type": "merge", "branch": "x"},
                ],
                a,
            )
            target = pick(model.commits, b)  # an append may name a commit it responds to
        if mode == "hostile":
            operation, target, merge_parent, parent, content = pick(
                [
                    ("append", None, None, UNKNOWN, content),
                    ("append", None, None, foreign, content),
                    ("edit", UNKNOWN, None, parent, content),
                    ("edit", foreign, None, parent, content),
                    ("edit", pick(sorted(model.edits), a) or UNKNOWN, None, parent, content),
                    ("edit", None, None, parent, content),
                    ("merge", None, None, parent, merge_content("dev", "auto", [], [])),
                    ("append", None, pick(model.commits, a) or UNKNOWN, parent, content),
                    ("merge", None, foreign, parent, merge_content("dev", "auto", [], [])),
                    ("merge", None, pick(model.commits, a) or UNKNOWN, parent, {"overridden_edits": [1]}),
                ],
                b,
            )
        event = self.forger.commit_event(
            tract_id, "text", parent, operation=operation, response_to=target, merge_parent=merge_parent,
            content=content, branch=branch,
        )  # fmt: skip
        self.write(event, mode, model)

    def compress(self, tract_id: str, model: TractModel, mode: str, a: int, b: int, foreign: str) -> None:
        """Valid: messages of HEAD's history; odd: of any commit's history, in any order, with odd
        content; hostile: naming what is no message of the parent's history (or nothing at all)."""
        parent = model.head if mode == "valid" else pick([model.head, *model.commits], a)
        reachable = model.history(parent)
        if not reachable and mode != "hostile":
            return
        replaces = [pick(reachable, a), pick(reachable, a + b)]
        replaces = list(dict.fromkeys(h for h in replaces if h is not None))
        preserves = [h for h in reachable[b % 3 :: 4] if h not in replaces] if mode != "valid" else []
        content = {"content_type": "summary", "text": f"summary {a}"}
        if mode == "odd" and b % 2:
            replaces.reverse()
            content = pick([{"content_type": "summary"}, {"content_type": "tool_result", "content": "x"}], a)
        if mode == "hostile":
            outside = [h for h in model.commits if h not in reachable]
            replaces, preserves = pick(
                [
                    ([UNKNOWN], []), ([foreign], []), ([pick(sorted(model.edits), a) or UNKNOWN], []),
                    ([pick(outside, b) or UNKNOWN], []), ([], replaces), (replaces, replaces or [UNKNOWN]),
                ],
                a + b,
            )  # fmt: skip
        compression = Compression(replaces=replaces, preserves=preserves, tokens_before=a, tokens_after=b)
        event = self.forger.commit_event(
            tract_id, "summary", parent, operation="compress", content=content, compression=compression,
            branch=model.current or "main",
        )  # fmt: skip
        self.write(event, mode, model)

    def write(self, event: Event, mode: str, model: TractModel) -> None:
        number = self.forger.append(event)
        if mode == "hostile":
            if self.first_hostile is None:
                self.first_hostile = Hostile(event.tract_id, number, self.forger.position)
            return
        # Keep the model as the view folds it (only events that hold together reach here).
        if isinstance(event, CommitCreated):
            model.commits.append(event.commit_hash)
            model.parents[event.commit_hash] = (event.parent_hash, event.merge_parent)
            if event.operation == "edit":
                model.edits.add(event.commit_hash)
            if event.operation == "merge":
                model.merges.add(event.commit_hash)
            model.branches[event.branch] = event.commit_hash
        elif isinstance(event, BranchCreated):
            model.branches[event.name] = event.head
        elif isinstance(event, BranchDeleted):
            del model.branches[event.name]
        elif isinstance(event, RefMoved):
            model.branches[event.branch] = event.new_head
        elif isinstance(event, HeadChanged):
            model.current, model.detached = event.branch, event.commit_hash


class Hung(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """Turn a reader that never returns into a failure instead of a stuck suite."""

    def expire(signum: int, frame: Any) -> None:
        raise Hung(f"a reader did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: Callable[[], Any]) -> str:
    """The call's outcome: "ok", or the name of the `TractError` it raised (anything else fails the test).
    A log that passes verify may still hold a payload its content type cannot render (verify knows no
    content types): that, and only that, is a corrupt record to a reader."""
    try:
        call()
    except CorruptLogError as error:
        assert error.kind == "unrenderable content", error
        assert error.position is not None
        return "unrenderable content"
    except TractError as error:
        return type(error).__name__
    return "ok"


def read_everything(directory: Path, scratch: Path) -> list[str]:
    """Every reader of every tract in the log, and the CLI; returns the outcomes."""
    results: list[str] = []
    tract_ids = list(verify(directory).heads)
    with Tract.open(directory, readonly=True) as first:
        logged = {tract_id: list(first.events(tract_id=tract_id)) for tract_id in tract_ids}
    hashes = [e.event.commit_hash for events in logged.values() for e in events if e.type == "CommitCreated"]
    moment = START + timedelta(seconds=sum(map(len, logged.values())) // 2)
    for tract_id in tract_ids:
        with Tract.open(directory, readonly=True, tract_id=tract_id) as t:
            branches = [b.name for b in t.list_branches()]
            calls: list[Callable[[], Any]] = [
                t.compile, lambda: t.compile(include_edit_annotations=True), lambda: t.compile(at_time=moment),
                lambda: t.log(limit=None), lambda: t.log(limit=2), t.list_branches, t.reflog,
                lambda: t.query_by_config("temperature", ">", 0.5), lambda: t.sql("SELECT * FROM commits"),
                lambda: t.sql("SELECT * FROM usage"), lambda: t.sql("SELECT * FROM ref_moves"),
                lambda: t.sql("SELECT * FROM compressions"),
                lambda tract_id=tract_id: list(t.events(tract_id=tract_id)), lambda: t.export_jsonl(io.BytesIO()),
                t.verify,
            ]  # fmt: skip
            for h in hashes:
                calls += [
                    lambda h=h: t.get_commit(h), lambda h=h: t.compile(at_commit=h),
                    lambda h=h: t.config_history(h), lambda h=h: t.get_annotations(h),
                ]  # fmt: skip
            for name in branches:
                calls.append(lambda name=name: t.reflog(name))
            refs = branches + hashes[:1] + hashes[-1:]
            calls += [lambda a=a, b=b: t.diff(a, b) for a in refs[:3] for b in refs[-3:]]
            for position in range(len(logged[tract_id]) + 1):
                calls.append(lambda p=position: (then := t.replay(until_position=p)).compile() and then.log())
            results += [outcome(call) for call in calls]
    for command in (["log"], ["compile"], ["branches"], ["events"], ["export", str(scratch / "out.jsonl")]):
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())), contextlib.redirect_stderr(stderr):
            code = main([command[0], str(directory), *command[1:]])
        assert code in (0, 1) and len(stderr.getvalue().strip().splitlines()) == code, stderr.getvalue()
    with Tract.open(directory, tract_id=tract_ids[0]) as writer:  # a writer's open folds the same log
        results.append(outcome(writer.compile))
    return results


def cut_before(directory: Path, offset: int, into: Path) -> None:
    """A copy of the log holding the records before byte `offset` (each operation is its own batch)."""
    into.mkdir()
    (into / LOG_FILE).write_bytes((directory / LOG_FILE).read_bytes()[:offset])


@examples(40)
@given(st.lists(STEPS, min_size=10, max_size=40))
@example(  # always at least once: a record of the second tract that does not decode
    [("commit", "valid", 1, 1), ("tract", "valid", 0, 0), ("commit", "valid", 3, 1), ("usage", "hostile", 3, 0)]
    + [("commit", "valid", 1, 1)] * 6
)
def test_verify_flags_hostile_refs_or_every_reader_copes(steps: list[tuple[str, str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as temporary, watchdog(300):
        root = Path(temporary)
        directory = root / "log"
        script = Script(Forger(directory))
        for step in steps:
            if script.first_hostile is None:  # nothing after the first hostile record is ever read
                script.run(*step)
        script.forger.close()
        report = verify(directory)
        event(f"verify: {report.problem.kind if report.problem else 'ok'}")
        hostile = script.first_hostile
        assert (report.problem is None) == (hostile is None), report
        readable = directory
        if report.problem is not None and hostile is not None:
            problem = report.problem
            if problem.tract_id is None:  # a record that does not decode has no known tract: its place in the log
                assert (problem.position, problem.kind) == (hostile.position, "undecodable record"), report
            else:
                assert (problem.tract_id, problem.position) == (hostile.tract_id, hostile.number), report
            with pytest.raises(CorruptLogError) as caught:
                Tract.open(directory, readonly=True, tract_id=hostile.tract_id)
            assert (caught.value.position, caught.value.kind) == (hostile.number, problem.kind)
            assert problem.offset is not None
            readable = root / "prefix"
            cut_before(directory, problem.offset, readable)
            assert verify(readable).ok
        results = read_everything(readable, root)
        event(f"records read: {min(verify(readable).records_checked // 5 * 5, 20)}+")
        for result in set(results):
            event(f"reader outcome: {result}")
        assert results and set(results) <= {"ok", "unrenderable content", "CommitNotFoundError"}, results

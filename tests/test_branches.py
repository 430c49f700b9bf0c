"""Branches: every verb and error through the public API, and replay of random branch histories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tract import (
    BranchError,
    CommitNotFoundError,
    DetachedHeadError,
    DialogueContent,
    InstructionContent,
    MergeConflictError,
    Priority,
    Tract,
    TractError,
)

from properties import examples


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def assistant(text: str) -> DialogueContent:
    return DialogueContent(role="assistant", text=text)


def contents(tract: Tract) -> list[str]:
    return [m.content for m in tract.compile().messages]


@pytest.fixture
def forked(tract: Tract) -> Tract:
    """main: sys, question, cold answer; hot (forked after question): hot answer."""
    tract.commit(InstructionContent(text="sys"))
    tract.commit(user("question"), generation_config={"temperature": 0.2})
    tract.branch("hot")
    tract.commit(assistant("hot answer"), generation_config={"temperature": 0.9})
    tract.switch("main")
    tract.commit(assistant("cold answer"), generation_config={"temperature": 0.2})
    return tract


def test_a_tract_starts_on_main(tract: Tract) -> None:
    assert tract.current_branch == "main"
    assert [(b.name, b.head, b.commit_count, b.current) for b in tract.list_branches()] == [("main", None, 0, True)]


def test_branch_switch_and_independent_histories(forked: Tract) -> None:
    assert contents(forked) == ["sys", "question", "cold answer"]
    forked.switch("hot")
    assert forked.current_branch == "hot"
    assert contents(forked) == ["sys", "question", "hot answer"]
    info = forked.commit(user("more"))
    assert info.branch == "hot"
    assert {b.name: b.commit_count for b in forked.list_branches()} == {"hot": 4, "main": 3}


def test_branch_at_a_commit_without_switching(forked: Tract) -> None:
    root = forked.log(limit=None)[-1]
    made = forked.branch("from-root", at=root.commit_hash, switch=False)
    assert made.head == root.commit_hash and not made.current
    assert forked.current_branch == "main"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a b",
        "a..b",
        "-x",
        "x/",
        "x.lock",
        "HEAD",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "@",
        "x@{1}",
        ".hidden",
        "a//b",
    ],
)
def test_invalid_branch_names(tract: Tract, name: str) -> None:
    with pytest.raises(BranchError):
        tract.branch(name)


def test_branch_errors(forked: Tract) -> None:
    with pytest.raises(BranchError, match="already exists"):
        forked.branch("hot")
    with pytest.raises(BranchError, match="no branch"):
        forked.switch("nope")
    with pytest.raises(BranchError, match="current branch"):
        forked.delete_branch("main")
    with pytest.raises(CommitNotFoundError):
        forked.branch("x", at="0" * 64)
    forked.branch("feature/good-name_1.2", switch=False)


def test_delete_branch_keeps_its_commits(forked: Tract) -> None:
    hot_head = next(b.head for b in forked.list_branches() if b.name == "hot")
    forked.delete_branch("hot")
    assert [b.name for b in forked.list_branches()] == ["main"]
    assert forked.get_commit(hot_head or "") is not None
    assert any(entry.branch == "hot" and entry.reason == "delete" for entry in forked.reflog("hot"))


def test_checkout_is_a_detached_read_only_view(forked: Tract) -> None:
    question = forked.log(limit=None)[1]
    forked.checkout(question.commit_hash)
    assert forked.current_branch is None and forked.head == question.commit_hash
    assert contents(forked) == ["sys", "question"]
    assert forked.get_commit(question.commit_hash) == question
    assert [c.commit_hash for c in forked.log()] == [question.commit_hash, forked.log(limit=None)[-1].commit_hash]
    with pytest.raises(DetachedHeadError, match="branch"):
        forked.commit(user("refused"))
    forked.branch("retry")
    assert forked.commit(user("retried")).branch == "retry"
    forked.checkout("main")
    assert forked.current_branch == "main"


def test_reset_moves_back_and_forward_and_keeps_commits(forked: Tract) -> None:
    cold = forked.head
    question = forked.log(limit=None)[1].commit_hash
    forked.reset(question)
    assert forked.head == question and contents(forked) == ["sys", "question"]
    assert forked.get_commit(cold or "") is not None
    forked.reset(cold or "")
    assert contents(forked) == ["sys", "question", "cold answer"]
    moves = [(entry.reason, entry.old_head, entry.new_head) for entry in forked.reflog()]
    assert moves[-2:] == [("reset", cold, question), ("reset", question, cold)]
    hot_head = next(b.head for b in forked.list_branches() if b.name == "hot")
    with pytest.raises(BranchError, match="not in the history"):
        forked.reset(hot_head or "")


def test_fast_forward_merge(tract: Tract) -> None:
    tract.commit(user("base"))
    tract.branch("ahead")
    tract.commit(assistant("ahead"))
    tract.switch("main")
    result = tract.merge("ahead")
    assert result.kind == "fast-forward" and tract.head == result.head
    assert contents(tract) == ["base", "ahead"]
    assert tract.merge("ahead").kind == "up-to-date"
    assert tract.reflog()[-1].reason.startswith("merge ahead")


def test_merge_commit_compiles_ours_then_theirs(forked: Tract) -> None:
    result = forked.merge("hot")
    assert result.kind == "merge"
    merge = forked.get_commit(forked.head or "")
    assert merge is not None and merge.merge_parent is not None and merge.parent_hash is not None
    assert contents(forked) == ["sys", "question", "cold answer", "hot answer"]
    assert forked.compile().generation_configs == [{}, {"temperature": 0.2}, {"temperature": 0.2}, {"temperature": 0.9}]
    texts = [c.content.get("text") for c in forked.log(limit=None)]
    assert texts == [None, "hot answer", "cold answer", "question", "sys"]
    assert forked.verify().ok


def test_conflicting_edits_need_a_strategy(tract: Tract) -> None:
    question = tract.commit(user("question"))
    tract.branch("theirs")
    tract.commit(user("their wording"), operation="edit", response_to=question.commit_hash)
    tract.switch("main")
    tract.commit(user("our wording"), operation="edit", response_to=question.commit_hash)
    with pytest.raises(MergeConflictError) as caught:
        tract.merge("theirs")
    assert caught.value.conflicts == [question.commit_hash]
    assert question.commit_hash[:12] in str(caught.value)
    head = tract.head
    tract.merge("theirs", strategy="ours")
    assert contents(tract) == ["our wording"]
    tract.reset(head or "")
    tract.merge("theirs", strategy="theirs")
    assert contents(tract) == ["their wording"]


def test_edit_against_skip_conflict(tract: Tract) -> None:
    question = tract.commit(user("question"))
    tract.commit(assistant("answer"))
    tract.branch("theirs")
    tract.commit(user("edited question"), operation="edit", response_to=question.commit_hash)
    tract.switch("main")
    tract.commit(assistant("more"))
    tract.annotate(question.commit_hash, Priority.SKIP)
    with pytest.raises(MergeConflictError):
        tract.merge("theirs")
    tract.merge("theirs", strategy="ours")
    assert contents(tract) == ["answer", "more"]


def test_skip_on_one_branch_does_not_leak_into_another(forked: Tract) -> None:
    question = forked.log(limit=None)[1].commit_hash
    forked.annotate(question, Priority.SKIP)
    assert contents(forked) == ["sys", "cold answer"]
    forked.switch("hot")
    assert contents(forked) == ["sys", "question", "hot answer"]
    assert forked.get_annotations(question) == []


def test_diff_between_branches(forked: Tract) -> None:
    question = forked.log(limit=None)[1].commit_hash
    forked.switch("hot")
    forked.commit(
        user("question, reworded"), operation="edit", response_to=question, generation_config={"temperature": 1.0}
    )
    diff = forked.diff("main", "hot")
    assert [c.a_message.content for c in diff.removed] == ["cold answer"]  # type: ignore[union-attr]
    assert [c.b_message.content for c in diff.added] == ["hot answer"]  # type: ignore[union-attr]
    assert [(c.a_message.content, c.b_message.content) for c in diff.changed] == [("question", "question, reworded")]  # type: ignore[union-attr]
    assert [(c.a_config, c.b_config) for c in diff.config_changes] == [({"temperature": 0.2}, {"temperature": 1.0})]
    assert diff.a_tokens == forked.compile(at_commit=diff.a_head).token_count
    assert diff.b_tokens == forked.compile().token_count
    assert forked.diff("main", "main").changed == []


def test_branch_column_in_analytics(forked: Tract) -> None:
    rows = forked.sql("SELECT branch, avg(temperature), count(*) FROM commits GROUP BY branch ORDER BY branch").rows
    assert rows == [("hot", 0.9, 1), ("main", 0.2, 3)]
    moves = forked.sql("SELECT branch, reason FROM ref_moves ORDER BY position").rows
    assert ("hot", "branch") in moves


def test_switching_back_and_forth_uses_the_cache(forked: Tract, monkeypatch: pytest.MonkeyPatch) -> None:
    from tract.compiler import Compiler

    forked.compile()
    forked.switch("hot")
    forked.compile()
    builds = []
    original = Compiler._build
    monkeypatch.setattr(Compiler, "_build", lambda self, *a, **k: (builds.append(1), original(self, *a, **k))[1])
    for _ in range(3):
        forked.switch("main")
        assert contents(forked)[-1] == "cold answer"
        forked.switch("hot")
        assert contents(forked)[-1] == "hot answer"
    assert builds == []


def test_branches_survive_reopen(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract.commit(user("base"))
        tract.branch("side")
        tract.commit(user("side"))
        expected = (tract.list_branches(), tract.current_branch, tract.compile(), tract.reflog("side"))
    for _ in range(2):  # once through the tract index, once after deleting it
        with Tract.open(log_dir) as tract:
            assert (tract.list_branches(), tract.current_branch, tract.compile(), tract.reflog("side")) == expected
        assert (log_dir / "index" / "catalogue").is_file(), "closing a writer saves the tract index"
        shutil.rmtree(log_dir / "index")


def test_cli_branches_and_diff(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        tract.commit(user("question"))
        tract.branch("alt")
        tract.commit(assistant("alt answer"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "tract.cli", *a], capture_output=True, text=True)  # noqa: E731
    done = run("branches", str(log_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].split()[:2] == ["*", "alt"] and lines[3].split()[0] == "main"
    done = run("diff", str(log_dir), "main", "alt")
    assert done.returncode == 0 and "+ [1]" in done.stdout and "alt answer" in done.stdout
    failed = run("diff", str(log_dir), "main", "nope")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(0, 9)),
        st.tuples(st.just("edit"), st.integers(0, 50)),
        st.tuples(st.just("skip"), st.integers(0, 50)),
        st.tuples(st.just("branch"), st.integers(0, 3)),
        st.tuples(st.just("switch"), st.integers(0, 3)),
        st.tuples(st.just("reset"), st.integers(0, 50)),
        st.tuples(st.just("merge"), st.integers(0, 3)),
        st.tuples(st.just("checkout"), st.integers(0, 50)),
    ),
    max_size=30,
)


def merge_and_check(tract: Tract, other: str, strategy: str) -> None:
    """Merge, and check the outcome: a merge that succeeds has the other branch's head in HEAD's history;
    one that fails does so for a reason the README gives (conflict under "auto", HEAD detached, itself)."""
    theirs = next(b.head for b in tract.list_branches() if b.name == other)
    current = tract.current_branch
    try:
        tract.merge(other, strategy=strategy)
    except MergeConflictError:
        assert strategy == "auto"
        event("merge: conflict")
        raise
    except DetachedHeadError:
        assert current is None
        raise
    except BranchError:
        assert other == current
        raise
    event("merge: done")
    assert theirs is None or theirs in {c.commit_hash for c in tract.log(limit=None)}


def apply_operation(tract: Tract, kind: str, n: int) -> None:
    """One step of a random branch history (a step the tract refuses leaves it as it was)."""
    commits = [c.commit_hash for c in tract.log(limit=None) if c.operation.value == "append"]
    names = [b.name for b in tract.list_branches()]
    try:
        if kind == "commit":
            tract.commit(user(f"m{n}"), generation_config={"n": n})
        elif kind == "edit" and commits:
            tract.commit(user(f"e{n}"), operation="edit", response_to=commits[n % len(commits)])
        elif kind == "skip" and commits:
            tract.annotate(commits[n % len(commits)], Priority.SKIP)
        elif kind == "branch":
            tract.branch(f"b{n}")
        elif kind == "switch":
            tract.switch(names[n % len(names)])
        elif kind == "reset" and commits:
            tract.reset(commits[n % len(commits)])
        elif kind == "merge":
            merge_and_check(tract, names[n % len(names)], ("auto", "ours", "theirs")[n % 3])
        elif kind == "checkout" and commits:
            tract.checkout(commits[n % len(commits)])
    except (BranchError, MergeConflictError, DetachedHeadError):
        pass


@examples(40)
@given(OPERATIONS)
def test_random_branch_histories_replay_to_the_same_state(operations: list[tuple[str, int]]) -> None:
    with Tract.open() as tract:
        checkpoints = []
        for kind, n in operations:
            apply_operation(tract, kind, n)
            live = tract.compile()
            assert live == tract.compile(at_commit=tract.head) if tract.head else live.messages == []
            checkpoints.append((tract.chain_head.position, live, tract.list_branches(), tract.current_branch))
        assert tract.verify().ok
        for position, compiled, branches, current in checkpoints:
            replayed = tract.replay(until_position=position)
            assert replayed.compile() == compiled
            assert replayed.list_branches() == branches and replayed.current_branch == current


@examples(40)
@given(OPERATIONS)
def test_history_lists_what_log_and_compile_see(operations: list[tuple[str, int]]) -> None:
    """`history()` (no content read) is HEAD's history in compile order, each commit with the
    priority its visible annotations give it: the messages compiled are its appends not skipped;
    and a replay lists the same history at every point."""
    with Tract.open() as tract:
        checkpoints = []
        for kind, n in operations:
            apply_operation(tract, kind, n)
            history = tract.history()
            assert [e.commit_hash for e in history] == [c.commit_hash for c in reversed(tract.log(limit=None))]
            for entry in history:
                annotations = tract.get_annotations(entry.commit_hash)
                assert entry.priority is (annotations[-1].priority if annotations else Priority.NORMAL)
            kept = [e.commit_hash for e in history if e.operation.value == "append" and e.priority is not Priority.SKIP]
            assert tract.compile().commit_hashes == kept
            for branch in tract.list_branches():
                assert [e.commit_hash for e in tract.history(branch.name)][-1:] == (
                    [branch.head] if branch.head else []
                )
            checkpoints.append((tract.chain_head.position, history))
        for position, history in checkpoints:
            assert tract.replay(until_position=position).history() == history


def test_a_replay_from_before_the_tract_existed_is_a_clear_error(forked: Tract) -> None:
    empty = forked.replay(until_position=0)
    assert empty.compile().messages == []
    with pytest.raises(TractError, match="does not exist"):
        empty.list_branches()


def test_fast_forward_onto_an_annotation_made_on_the_other_branch(tract: Tract) -> None:
    """The cached compile of main must notice a SKIP that arrives with the fast-forward."""
    tract.commit(user("A"))
    x = tract.commit(user("X"))
    tract.branch("b")
    tract.commit(user("Y"))
    tract.annotate(x.commit_hash, Priority.SKIP)
    tract.switch("main")
    assert contents(tract) == ["A", "X"]
    tract.merge("b")
    assert contents(tract) == ["A", "Y"] == [m.content for m in tract.compile(at_commit=tract.head).messages]


def test_merging_back_and_forth_stays_linear(tract: Tract) -> None:
    tract.commit(user("base"))
    tract.branch("b", switch=False)
    for i in range(30):
        tract.commit(user(f"main {i}"))
        tract.switch("b")
        tract.commit(user(f"b {i}"))
        tract.merge("main")
        tract.switch("main")
        tract.merge("b")
    compiled = tract.compile(at_commit=tract.head)
    assert compiled.commit_count == 61 and len(set(compiled.commit_hashes)) == 61

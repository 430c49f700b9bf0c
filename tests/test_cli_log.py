"""`tract log` and `tract log --graph` through a subprocess: HEAD, branch names, markers, and the graph
drawn as git draws it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tract import DialogueContent, InstructionContent, Priority, Tract
from tract.cli.graph import draw

from test_cli import fails, json_lines, ok


@pytest.fixture
def merged(log_dir: Path) -> dict[str, str]:
    """main: instruction, question, answer (later skipped), an edit of the question, then a merge of
    branch alt (forked after the question, one answer)."""
    with Tract.open(log_dir) as tract:
        instruction = tract.commit(InstructionContent(text="be brief"))
        question = tract.commit(DialogueContent(role="user", text="hello"))
        tract.branch("alt")
        alt = tract.commit(DialogueContent(role="assistant", text="alt answer"), generation_config={"temperature": 1.2})
        tract.switch("main")
        answer = tract.commit(
            DialogueContent(role="assistant", text="main answer"), generation_config={"temperature": 0.2}
        )
        edit = tract.commit(
            DialogueContent(role="user", text="hello there"), operation="edit", response_to=question.commit_hash
        )
        merge = tract.merge("alt")
        tract.annotate(answer.commit_hash, Priority.SKIP)
        assert merge.head is not None
    commits = {"instruction": instruction, "question": question, "alt": alt, "answer": answer, "edit": edit}
    return {name: info.commit_hash for name, info in commits.items()} | {"merge": merge.head}


def short(commit_hash: str) -> str:
    return commit_hash[:12]


def test_the_graph_shows_branches_merges_names_and_markers(log_dir: Path, merged: dict[str, str]) -> None:
    c = {name: short(commit_hash) for name, commit_hash in merged.items()}
    assert ok("log", log_dir, "--graph").splitlines() == [
        f"* {c['merge']} merge 0t (HEAD -> main) [MERGE] merge of branch alt (strategy auto)",
        "|\\",
        f"| * {c['alt']} dialogue 2t (alt) alt answer",
        f"* | {c['edit']} dialogue 2t [EDIT of {c['question']}] hello there",
        f"* | {c['answer']} dialogue 2t [SKIP] main answer",
        "|/",
        f"* {c['question']} dialogue 1t [EDITED] hello",
        f"* {c['instruction']} instruction 2t [PINNED] be brief",
    ]


def test_every_branch_in_the_order_written_and_a_limit(log_dir: Path, merged: dict[str, str]) -> None:
    c = {name: short(commit_hash) for name, commit_hash in merged.items()}
    lines = ok("log", log_dir, "--graph", "--all", "-n", "4").splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["*", c["merge"], "merge"], ["|\\"], ["*", "|", c["edit"]], ["*", "|", c["answer"]],
        ["|", "*", c["alt"]], ["|/"],
    ]  # fmt: skip


def test_the_log_of_a_branch_or_commit(log_dir: Path, merged: dict[str, str]) -> None:
    rows = json.loads(ok("log", log_dir, "alt", "--format", "json"))
    assert [row["commit_hash"] for row in rows] == [merged["alt"], merged["question"], merged["instruction"]]
    assert rows[0]["refs"] == ["alt"] and rows[1]["markers"] == []  # no edit in alt's history
    by_prefix = json.loads(ok("log", log_dir, merged["answer"][:7], "--format", "json"))
    assert [row["commit_hash"] for row in by_prefix] == [merged["answer"], merged["question"], merged["instruction"]]
    fails("log", log_dir, "nowhere", match="no branch 'nowhere'")


def test_log_records_in_machine_formats(log_dir: Path, merged: dict[str, str]) -> None:
    rows = json.loads(ok("log", log_dir, "--format", "json", "-n", "all"))
    by_hash = {row["commit_hash"]: row for row in rows}
    assert by_hash[merged["merge"]]["refs"] == ["HEAD -> main"] and by_hash[merged["merge"]]["operation"] == "merge"
    assert by_hash[merged["merge"]]["merge_parent"] == merged["alt"]
    assert (
        by_hash[merged["edit"]]["markers"] == ["EDIT"] and by_hash[merged["edit"]]["response_to"] == merged["question"]
    )
    assert by_hash[merged["answer"]]["priority"] == "skip" and by_hash[merged["answer"]]["generation_config"] == {
        "temperature": 0.2
    }
    assert by_hash[merged["instruction"]]["markers"] == ["PINNED"]
    graph = json_lines(ok("log", log_dir, "--graph", "--format", "jsonl", "-n", "all"))
    assert [row["graph"] for row in graph] == [["*", "|\\"], ["| *"], ["* |"], ["* |", "|/"], ["*"], ["*"]]


def test_a_detached_head_is_shown_as_git_shows_it(log_dir: Path, merged: dict[str, str]) -> None:
    with Tract.open(log_dir) as tract:
        tract.checkout(merged["question"])
    (first,) = json_lines(ok("log", log_dir, "--format", "jsonl", "-n", "1"))
    assert first["commit_hash"] == merged["question"] and first["refs"] == ["HEAD"]
    assert (
        ok("log", log_dir, "main", "-n", "1")
        .splitlines()[2]
        .endswith("(main) [MERGE] merge of branch alt (strategy auto)")
    )


@pytest.mark.parametrize(
    ("commits", "expected"),
    [
        ([("c3", ["c1"]), ("c2", ["c1"]), ("c1", [])], ["* c3", "| * c2", "|/", "* c1"]),
        (  # a branch merged, then continued: the merge's second edge goes left to the lane waiting for it
            [("b3", ["b2"]), ("m", ["a1", "b2"]), ("b2", ["b1"]), ("a1", ["r"]), ("b1", ["r"]), ("r", [])],
            ["* b3", "| * m", "|/|", "* | b2", "| * a1", "* | b1", "|/", "* r"],
        ),
        (  # a merge while another lane is open pushes it right
            [("m2", ["m1", "c"]), ("c", ["r"]), ("m1", ["a", "b"]), ("b", ["r"]), ("a", ["r"]), ("r", [])],
            ["* m2", "|\\", "| * c", "* | m1", "|\\ \\", "| * | b", "| |/", "* | a", "|/", "* r"],
        ),
        ([("x", ["r"]), ("y", ["r"]), ("z", ["r"]), ("r", [])], ["* x", "| * y", "|/", "| * z", "|/", "* r"]),
    ],
)
def test_lanes_are_drawn_as_git_draws_them(commits: list[tuple[str, list[str]]], expected: list[str]) -> None:
    drawn = []
    for row in draw(commits):
        drawn += [f"{row.lanes} {row.commit}", *row.after]
    assert drawn == expected

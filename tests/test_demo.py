"""`tract demo`: a fresh directory each time, and every line it prints is true of the log it wrote."""

from __future__ import annotations

import re
from pathlib import Path

from tract import Priority, Tract
from tract.cli.demo import COMPARISON

from test_cli import fails, ok, run


def test_without_a_directory_it_makes_a_fresh_one_each_time(tmp_path: Path) -> None:
    first, second = (run("demo", cwd=tmp_path) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    made = [Path(done.stdout.splitlines()[0].removeprefix("tract demo: a new log in ")) for done in (first, second)]
    assert made[0] != made[1] and all(path.parent == tmp_path.resolve() for path in made)
    for path in made:  # one conversation each: one instruction, never two
        with Tract.open(path, readonly=True) as tract:
            assert tract.compile().messages[0].role == "system" and tract.compile().commit_count == 3
            assert [e.content_type for e in tract.history()].count("instruction") == 1


def test_a_directory_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    ok("demo", tmp_path / "demo")
    before = (tmp_path / "demo" / "events.log").read_bytes()
    fails("demo", tmp_path / "demo", match="is not empty")
    assert (tmp_path / "demo" / "events.log").read_bytes() == before
    (tmp_path / "file").write_text("x")
    fails("demo", tmp_path / "file", match="is not empty")
    (tmp_path / "empty").mkdir()
    ok("demo", tmp_path / "empty")


def test_every_line_is_true_of_the_log(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    out = ok("demo", directory)
    with Tract.open(directory, readonly=True) as tract:
        history = {entry.commit_hash[:12]: entry for entry in tract.history("careful")}
        history |= {entry.commit_hash[:12]: entry for entry in tract.history()}

        # 1. the instruction and the question, with their token counts and markers
        first = re.findall(r"^   ([0-9a-f]{12})  (\w+) +(\d+) tokens  (\[PINNED\])? *(.+)$", out, re.MULTILINE)
        assert [(kind, pinned) for _, kind, _, pinned, _ in first] == [("instruction", "[PINNED]"), ("dialogue", "")]
        for short, kind, tokens, _, text in first:
            info = tract.get_commit(history[short].commit_hash)
            assert info is not None and (info.content_type, info.token_count, info.content["text"]) == (
                kind,
                int(tokens),
                text,
            )
        question = history[first[1][0]].commit_hash
        sent = tract.compile(at_commit=question)
        assert f"compiled: 2 messages, {sent.token_count} tokens ({sent.token_source})" in out

        # 2. each branch's reply, its config and its usage, labelled simulated
        replies = re.findall(r"branch (\w+): (.+)\n     reply ([0-9a-f]{12}), (\d+) tokens: .+\n"
                             r"     usage \(simulated: tract's own counts\) (\d+) prompt \+ (\d+) completion",
                             out)  # fmt: skip
        assert [reply[0] for reply in replies] == ["careful", "creative"]
        usage = dict(
            tract.sql(
                "SELECT c.branch, u.prompt_tokens FROM usage u JOIN commits c ON c.commit_hash = u.head_hash"
            ).rows
        )
        for branch, config, short, tokens, prompt, completion in replies:
            reply = tract.get_commit(tract.resolve(short))
            assert reply is not None and reply.branch == branch and reply.token_count == int(tokens) == int(completion)
            assert config == ", ".join(f"{key} {value}" for key, value in (reply.generation_config or {}).items())
            assert reply.metadata is not None and "no model was called" in reply.metadata["simulated"]
            assert usage[branch] == int(prompt) == sent.token_count

        # 3. the merge, the SKIP and the context it leaves
        merge = re.search(r"merge creative: a merge commit ([0-9a-f]{12})", out)
        assert merge is not None and tract.head is not None and tract.head.startswith(merge.group(1))
        skipped = re.search(r"SKIP ([0-9a-f]{12}): main's context is now (\d+) messages, (\d+) tokens", out)
        assert skipped is not None
        assert tract.get_annotations(tract.resolve(skipped.group(1)))[-1].priority is Priority.SKIP
        context = tract.compile()
        assert (context.commit_count, context.token_count) == (int(skipped.group(2)), int(skipped.group(3)))

    # 4. the comparison, as `tract sql` prints it
    table = ok("sql", directory, COMPARISON)
    assert "\n".join(f"   {line}" for line in table.splitlines()) in out

    # 5. the anchor verifies
    anchor = re.search(r"--anchor (\S+)\n   (ok: .+)", out)
    assert anchor is not None
    assert ok("verify", directory, "--anchor", anchor.group(1)).splitlines()[0] == anchor.group(2)

    # the graph is the one `tract log --graph --all` draws
    graph = ok("log", directory, "--graph", "--all", "-n", "all")
    assert "\n".join(f"  {line}" for line in graph.splitlines()) in out
    assert f"tract report {directory.resolve()} -o report.html" in out

"""Compression through the public API: a range of the context replaced by a summary, as a new commit.

Nothing is forgotten: the originals stay in the log and in history, time travel
shows them, an auditor sees the summary and what it replaced (log, verify,
replay, SQL, the CLI). Budgets compress before a commit that would not fit, and
tool results are compacted, without ever splitting a tool call from its results.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events import LOG_FILE, CommitCreated, canonical_json, commit_hash, content_hash
from events.jsonl import import_jsonl
from tract import (
    BudgetAction,
    BudgetExceededError,
    CommitNotFoundError,
    CommitOperation,
    CompressResult,
    InvalidArgumentError,
    MergeConflictError,
    Message,
    Priority,
    TiktokenCounter,
    TokenBudgetConfig,
    Tract,
    TractConfig,
)
from tract.cli import main

from provider_server import ProviderServer
from test_provider_clients import FORMATS, clients


class Summaries:
    """A deterministic summarizer that remembers what it was given."""

    def __init__(self, template: str = "summary of {count}: {first}..{last}") -> None:
        self.template = template
        self.calls: list[tuple[list[Message], int | None]] = []

    def __call__(self, messages: list[Message], *, target_tokens: int | None = None) -> str:
        self.calls.append((messages, target_tokens))
        return self.template.format(count=len(messages), first=messages[0].content, last=messages[-1].content)


def contents(t: Tract, **compile_args: Any) -> list[str]:
    return [message.content for message in t.compile(**compile_args).messages]


def conversation(t: Tract, turns: int = 4) -> list[str]:
    """A system prompt, then user and assistant turns: u0 a0 u1 a1 ...; returns every commit hash."""
    hashes = [t.system("be brief").commit_hash]
    for turn in range(turns):
        hashes.append(t.user(f"u{turn}").commit_hash)
        hashes.append(t.assistant(f"a{turn}").commit_hash)
    return hashes


def log_bytes(directory: Path) -> bytes:
    return (directory / LOG_FILE).read_bytes()


# -- compress() ------------------------------------------------------------------------


def test_a_range_is_replaced_by_its_summary_where_it_stood(tract: Tract) -> None:
    h = conversation(tract)
    before = tract.compile()
    summaries = Summaries()
    result = tract.compress(from_commit=h[1], to_commit=h[4], summarizer=summaries, target_tokens=40)
    assert isinstance(result, CompressResult)
    assert result.replaced == h[1:5] and result.preserved == []
    ((given, target),) = summaries.calls
    assert [m.content for m in given] == ["u0", "a0", "u1", "a1"] and all(isinstance(m, Message) for m in given)
    assert target == 40
    after = tract.compile()
    assert [m.content for m in after.messages] == ["be brief", "summary of 4: u0..a1", "u2", "a2", "u3", "a3"]
    assert after.commit_hashes == [h[0], result.summary.commit_hash, *h[5:]]
    assert after.content_types[1] == "summary" and after.messages[1].role == "user"
    assert (result.tokens_before, result.tokens_after) == (before.token_count, after.token_count)
    assert after.token_count < before.token_count
    summary = result.summary
    assert (
        summary.operation is CommitOperation.COMPRESS
        and summary.parent_hash == h[-1]
        and tract.head == summary.commit_hash
    )
    assert summary.compression is not None and summary.compression.replaced == h[1:5]
    assert tract.compile(at_commit=tract.head) == after  # a full compile agrees with the incremental one


def test_content_gives_the_summary_and_the_default_range_is_all_of_history(tract: Tract) -> None:
    h = conversation(tract, turns=2)
    result = tract.compress(content="we said hello twice", message="tidy up")
    assert contents(tract) == ["be brief", "we said hello twice"]  # the pinned system prompt before it stays
    assert result.replaced == h[1:] and result.summary.message == "tidy up"


def test_an_explicit_list_of_commits(tract: Tract) -> None:
    h = conversation(tract, turns=2)  # be brief, u0, a0, u1, a1
    result = tract.compress(commits=[h[3][:10], h[1]], content="u0 and u1")  # prefixes, any order
    assert result.replaced == [h[1], h[3]]
    assert contents(tract) == ["be brief", "u0 and u1", "a0", "a1"]


def test_the_summary_source_and_the_range_are_checked_and_nothing_is_written(tract: Tract, log_dir: Path) -> None:
    h = conversation(tract, turns=2)
    written = log_bytes(log_dir)
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "content= .* or summarizer="),
        ({"content": "x", "summarizer": Summaries()}, "not both"),
        ({"content": 5}, "content must be a string"),
        ({"content": "x", "target_tokens": 0}, "target_tokens"),
        ({"content": "x", "from_commit": h[3], "to_commit": h[1]}, "comes after"),
        ({"content": "x", "from_commit": h[1], "commits": [h[2]]}, "not both"),
        ({"content": "x", "commits": []}, "non-empty list"),
        ({"content": "x", "commits": h[1]}, "non-empty list"),
        ({"content": "x", "commits": [h[0]]}, "nothing to compress"),  # only the pinned prompt
        ({"content": "x", "from_commit": h[1], "to_commit": h[2], "preserve": [h[3]]}, "not in the range"),
        ({"summarizer": "no"}, "must be callable"),
        ({"summarizer": lambda messages, target_tokens=None: 42}, "return the summary as a string"),
    ]
    for arguments, error in bad:
        with pytest.raises(InvalidArgumentError, match=error):
            tract.compress(**arguments)
    with pytest.raises(CommitNotFoundError, match="no commit"):
        tract.compress(content="x", from_commit="f" * 64)
    assert log_bytes(log_dir) == written
    tract.branch("elsewhere", at=h[0])
    elsewhere = tract.user("only on elsewhere").commit_hash
    tract.switch("main")
    written = log_bytes(log_dir)
    with pytest.raises(InvalidArgumentError, match="not in HEAD's history"):
        tract.compress(content="x", commits=[elsewhere])
    assert log_bytes(log_dir) == written
    assert contents(tract) == ["be brief", "u0", "a0", "u1", "a1"] and tract.head == h[-1]


def test_a_summarizer_that_raises_leaves_nothing_written(tract: Tract, log_dir: Path) -> None:
    conversation(tract)
    head, before, written = tract.head, tract.compile(), log_bytes(log_dir)

    def broken(messages: list[Message], *, target_tokens: int | None = None) -> str:
        raise TimeoutError("the model did not answer")

    with pytest.raises(TimeoutError):
        tract.compress(summarizer=broken)
    assert (tract.head, tract.compile(), log_bytes(log_dir)) == (head, before, written)


def test_nothing_is_rewritten_and_time_travel_shows_the_originals(tract: Tract) -> None:
    h = conversation(tract)
    log_before = tract.log(limit=None)
    moment = datetime.now(timezone.utc)
    while datetime.now(timezone.utc) <= moment:
        pass
    result = tract.compress(from_commit=h[1], to_commit=h[6], content="S")
    # every commit is still there, unchanged, with its parent
    assert tract.log(limit=None)[1:] == log_before
    assert all(tract.get_commit(commit) is not None for commit in h)
    assert contents(tract, at_commit=h[-1]) == contents(tract, at_time=moment) == [
        "be brief", "u0", "a0", "u1", "a1", "u2", "a2", "u3", "a3",
    ]  # fmt: skip
    assert contents(tract) == ["be brief", "S", "u3", "a3"]
    # log shows the summary commit and what it replaced
    newest = tract.log(limit=1)[0]
    assert newest.commit_hash == result.summary.commit_hash and newest.compression == result.summary.compression


def test_edits_and_annotations_of_replaced_originals_change_nothing_while_the_compression_stands(tract: Tract) -> None:
    h = conversation(tract)
    tract.commit(
        {"content_type": "dialogue", "role": "user", "text": "u1 (edited before)"}, operation="edit", response_to=h[3]
    )
    summaries = Summaries()
    tract.compress(from_commit=h[1], to_commit=h[4], summarizer=summaries)
    assert [m.content for m in summaries.calls[0][0]] == ["u0", "a0", "u1 (edited before)", "a1"]
    compressed = contents(tract)
    tract.commit(
        {"content_type": "dialogue", "role": "user", "text": "u0 (edited after)"}, operation="edit", response_to=h[1]
    )
    for target in h[1:5]:
        tract.annotate(target, Priority.SKIP)
    tract.annotate(h[2], Priority.PINNED)
    assert contents(tract) == compressed
    assert tract.compile(at_commit=tract.head).messages == tract.compile().messages
    assert contents(tract, at_commit=h[-1])[1:3] == ["u0", "a0"]  # before the compression: the originals as they were


def test_pinned_and_preserved_commits_stay_verbatim_after_the_summary(tract: Tract) -> None:
    h = conversation(tract)  # be brief, u0 a0 u1 a1 u2 a2 u3 a3
    tract.annotate(h[3], Priority.PINNED)
    summaries = Summaries()
    result = tract.compress(from_commit=h[1], to_commit=h[6], preserve=[h[5]], summarizer=summaries)
    assert result.preserved == [h[3], h[5]]
    assert [m.content for m in summaries.calls[0][0]] == ["u0", "a0", "a1", "a2"]
    assert contents(tract) == ["be brief", "summary of 4: u0..a2", "u1", "u2", "u3", "a3"]
    assert tract.compile(at_commit=tract.head) == tract.compile()


def test_skipped_commits_are_not_summarised_and_come_back_if_unskipped(tract: Tract) -> None:
    h = conversation(tract)
    tract.annotate(h[2], Priority.SKIP)
    summaries = Summaries()
    result = tract.compress(from_commit=h[1], to_commit=h[4], summarizer=summaries)
    assert [m.content for m in summaries.calls[0][0]] == ["u0", "u1", "a1"]
    assert result.replaced == [h[1], h[3], h[4]]  # the summary stands for what it summarised
    assert contents(tract) == ["be brief", "summary of 3: u0..a1", "u2", "a2", "u3", "a3"]
    tract.annotate(h[2], Priority.NORMAL)
    assert contents(tract) == ["be brief", "summary of 3: u0..a1", "a0", "u2", "a2", "u3", "a3"]


def test_skipping_the_summary_leaves_it_out_and_the_replaced_stay_out(tract: Tract) -> None:
    h = conversation(tract, turns=2)
    result = tract.compress(from_commit=h[1], to_commit=h[2], content="S")
    tract.annotate(result.summary.commit_hash, Priority.SKIP)
    assert contents(tract) == ["be brief", "u1", "a1"]
    assert tract.compile(at_commit=tract.head) == tract.compile()


def test_compressing_a_compressed_range_nests(tract: Tract) -> None:
    h = conversation(tract)
    first = tract.compress(from_commit=h[1], to_commit=h[4], content="S1")
    summaries = Summaries()
    second = tract.compress(from_commit=h[1], to_commit=h[6], summarizer=summaries)
    assert [m.content for m in summaries.calls[0][0]] == ["S1", "u2", "a2"]
    assert second.replaced == [first.summary.commit_hash, h[5], h[6]]
    assert contents(tract) == ["be brief", "summary of 3: S1..a2", "u3", "a3"]
    assert contents(tract, at_commit=first.summary.commit_hash) == ["be brief", "S1", "u2", "a2", "u3", "a3"]
    assert tract.compile(at_commit=tract.head) == tract.compile()


# -- tool calls and results ------------------------------------------------------------


def tool_turns(t: Tract, count: int, size: int = 5) -> list[tuple[str, str]]:
    """`count` rounds of user question, assistant call, tool result; returns (call, result) commits."""
    pairs = []
    for number in range(count):
        t.user(f"look up {number}")
        call = t.assistant(tool_calls=[{"id": f"call_{number}", "name": "lookup", "arguments": {"n": number}}])
        result = t.tool_result(f"call_{number}", " ".join(["word"] * size) + f" {number}", name="lookup")
        pairs.append((call.commit_hash, result.commit_hash))
    t.assistant("done")
    return pairs


def test_a_range_splitting_a_call_from_its_result_is_refused(tract: Tract, log_dir: Path) -> None:
    tract.system("tools")
    pairs = tool_turns(tract, 2)
    written = log_bytes(log_dir)
    with pytest.raises(InvalidArgumentError, match="split tool call 'call_0'"):
        tract.compress(to_commit=pairs[0][0], content="x")
    with pytest.raises(InvalidArgumentError, match="split tool call 'call_1'"):
        tract.compress(from_commit=pairs[1][1], content="x")
    assert log_bytes(log_dir) == written
    tract.compress(to_commit=pairs[0][1], content="the first lookup")  # whole pairs: fine
    for render in ("to_openai", "to_openai_responses", "to_anthropic", "to_gemini"):
        getattr(tract.compile(), render)()


@pytest.fixture(scope="module")
def server() -> Any:
    with ProviderServer() as running:
        yield running


@pytest.mark.parametrize("fmt", FORMATS)
def test_compacted_tool_results_pair_with_their_calls_in_every_api(server: ProviderServer, fmt: str) -> None:
    client = clients(server)[fmt]
    with Tract.open() as t:
        t.system("You look things up.")
        pairs = tool_turns(t, 5, size=300)
        t.user("and now?")
        summaries = Summaries("{count} result: starts with {first:.9}")
        results = t.compact_tool_results(keep_last=2, min_tokens=200, summarizer=summaries)
        assert [r.replaced for r in results] == [[result] for _, result in pairs[:3]]
        compiled = t.compile()
        stand_ins = [m for m in compiled.messages if m.tool_call_id is not None]
        assert [m.tool_call_id for m in stand_ins] == [f"call_{n}" for n in range(5)]
        size = TiktokenCounter("o200k_base").count_text(" ".join(["word"] * 300) + " 0")
        for message in stand_ins[:3]:
            assert message.content == f"[lookup output compacted: {size} tokens] 1 result: starts with word word"
        assert all(len(m.content) > 1000 for m in stand_ins[3:])  # the last two are kept
        assert compiled.token_count == results[-1].tokens_after < results[0].tokens_before
        requests = len(server.requests)
        client.send(compiled)  # the real SDK, against a server enforcing the API's pairing rules
        assert len(server.requests) == requests + 1 and server.refusals == []
        assert t.compact_tool_results(keep_last=2, min_tokens=200) == []  # already compacted
        assert t.sql("SELECT count(*) FROM tool_results").rows == [(5,)]  # stand-ins are no results
        assert t.sql("SELECT count(*) FROM compressions").rows == [(3,)]


def test_compaction_without_a_summarizer_and_its_checks(tract: Tract) -> None:
    tract.system("tools")
    pairs = tool_turns(tract, 2, size=50)
    with pytest.raises(InvalidArgumentError, match="keep_last"):
        tract.compact_tool_results(keep_last=-1)
    with pytest.raises(InvalidArgumentError, match="min_tokens"):
        tract.compact_tool_results(min_tokens=True)
    (result,) = tract.compact_tool_results(keep_last=1, min_tokens=10)
    assert result.replaced == [pairs[0][1]]
    size = TiktokenCounter("o200k_base").count_text(" ".join(["word"] * 50) + " 0")
    assert result.summary.content["content"] == f"[lookup output compacted: {size} tokens]"
    assert tract.compact_tool_results(keep_last=0, min_tokens=100) == []


# -- branches and merges ---------------------------------------------------------------


def test_a_compression_stays_on_its_branch(tract: Tract) -> None:
    h = conversation(tract, turns=2)
    tract.branch("short")
    tract.compress(from_commit=h[1], to_commit=h[2], content="S")
    assert contents(tract) == ["be brief", "S", "u1", "a1"]
    tract.switch("main")
    assert contents(tract) == ["be brief", "u0", "a0", "u1", "a1"]


def test_merging_a_compressed_branch_brings_the_compression(tract: Tract) -> None:
    h = conversation(tract, turns=2)
    tract.branch("short")
    tract.compress(from_commit=h[1], to_commit=h[2], content="S")
    tract.user("on short")
    tract.switch("main")
    tract.user("on main")
    merged = tract.merge("short")
    assert merged.kind == "merge"
    assert contents(tract) == ["be brief", "S", "u1", "a1", "on main", "on short"]
    assert tract.compile(at_commit=tract.head) == tract.compile()


def test_compressions_of_the_same_commits_on_both_sides_conflict(tract: Tract) -> None:
    h = conversation(tract, turns=2)
    tract.branch("theirs")
    tract.compress(from_commit=h[1], to_commit=h[2], content="theirs")
    tract.switch("main")
    tract.annotate(h[2], Priority.SKIP)  # before ours compresses: both sides touch a0 since the fork
    tract.compress(from_commit=h[1], to_commit=h[3], content="ours")
    with pytest.raises(MergeConflictError, match="compression") as caught:
        tract.merge("theirs")
    assert set(caught.value.conflicts) >= {h[1]}
    tract.merge("theirs", strategy="ours")
    assert contents(tract) == ["be brief", "ours", "a1"]
    tract.reset(tract.log(limit=2)[1].commit_hash)
    tract.merge("theirs", strategy="theirs")  # ours' compression and annotation are set aside
    assert contents(tract) == ["be brief", "theirs", "u1", "a1"]
    assert tract.compile(at_commit=tract.head) == tract.compile()


# -- the token budget ------------------------------------------------------------------


def budget(max_tokens: int, summarizer: Any) -> TractConfig:
    return TractConfig(
        token_budget=TokenBudgetConfig(max_tokens=max_tokens, action=BudgetAction.COMPRESS, summarizer=summarizer)
    )


def test_compress_budget_needs_a_summarizer() -> None:
    with pytest.raises(ValueError, match="summarizer"):
        TokenBudgetConfig(max_tokens=10, action=BudgetAction.COMPRESS)


def test_the_budget_compresses_the_oldest_messages_before_the_commit_lands(log_dir: Path) -> None:
    summaries = Summaries("{count} earlier turns")
    with Tract.open(log_dir, config=budget(120, summaries)) as t:
        t.system("be brief")
        hashes = [t.user(" ".join(["word"] * 20) + f" {number}").commit_hash for number in range(4)]
        assert summaries.calls == [] and len(t.compile().messages) == 5
        last = t.user(" ".join(["word"] * 20) + " 4")
        compiled = t.compile()
        assert compiled.token_count <= 120
        ((given, room),) = summaries.calls
        assert room is not None and room > 0
        assert [m.content for m in compiled.messages][:2] == ["be brief", f"{len(given)} earlier turns"]
        assert compiled.commit_hashes[-1] == last.commit_hash
        compression = t.get_commit(last.parent_hash)
        assert compression is not None and compression.operation is CommitOperation.COMPRESS
        assert compression.compression is not None and compression.compression.replaced == hashes[: len(given)]
        assert compression.message == "compressed to fit the token budget"
        # the compression and the commit are one write: consecutive records of one batch
        logged = list(t.events(types="CommitCreated"))
        assert [e.event.commit_hash for e in logged[-2:]] == [compression.commit_hash, last.commit_hash]
        assert logged[-1].position == logged[-2].position + 1


def test_the_budget_refuses_what_no_compression_makes_fit(tract: Tract, log_dir: Path) -> None:
    tract.close()
    summaries = Summaries("{count} earlier turns")
    with Tract.open(log_dir, config=budget(60, summaries)) as t:
        t.system(" ".join(["rule"] * 30))  # pinned: never compressed
        t.user("short")
        head, written = t.head, (log_dir / LOG_FILE).read_bytes()
        with pytest.raises(BudgetExceededError, match="compressing every unpinned message"):
            t.user(" ".join(["word"] * 30))
        assert t.head == head and (log_dir / LOG_FILE).read_bytes() == written


def test_a_budget_compression_inside_a_batch_lands_with_it(log_dir: Path) -> None:
    with Tract.open(log_dir, config=budget(80, Summaries("{count} turns"))) as t:
        t.system("be brief")
        with t.batch():
            for number in range(6):
                t.user(" ".join(["word"] * 10) + f" {number}")
        assert t.compile().token_count <= 80
        operations = [info.operation.value for info in t.log(limit=None)]
        assert "compress" in operations
    with Tract.open(log_dir, readonly=True) as reader:
        assert reader.verify().ok
        assert [info.operation.value for info in reader.log(limit=None)] == operations


# -- audit: replay, verify, SQL, CLI ---------------------------------------------------


def test_replay_reopen_and_readers_see_the_compressions(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Tract.open(log_dir) as t:
        h = conversation(t)
        before = t.chain_head.position
        result = t.compress(from_commit=h[1], to_commit=h[4], content="S")
        live, history = t.compile(), t.log(limit=None)
        with t.replay(until_position=before) as then:
            assert contents(then) == ["be brief", "u0", "a0", "u1", "a1", "u2", "a2", "u3", "a3"]
    with Tract.open(log_dir, readonly=True) as reader:
        assert reader.verify().ok
        assert reader.compile() == live and reader.log(limit=None) == history
        rows = reader.sql("SELECT commit_hash, replaced, preserved, tokens_before, tokens_after FROM compressions").rows
        assert rows == [(result.summary.commit_hash, h[1:5], [], result.tokens_before, result.tokens_after)]
    assert main(["log", str(log_dir), "-n", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "compress" in line and f"[SUMMARY of 4: {h[1][:8]}..{h[4][:8]}]" in line


def test_an_export_with_compressions_imports_to_the_same_chain_and_context(log_dir: Path, tmp_path: Path) -> None:
    with Tract.open(log_dir) as t:
        h = conversation(t)
        t.compress(from_commit=h[1], to_commit=h[4], content="S", preserve=[h[3]])
        live, head = t.compile(), t.chain_head
        out = io.BytesIO()
        t.export_jsonl(out)
    heads = import_jsonl(io.BytesIO(out.getvalue()), tmp_path / "copy")
    assert heads[head.tract_id].hash == head.hash
    with Tract.open(tmp_path / "copy", readonly=True) as copy:
        assert copy.compile() == live


def test_records_without_a_compression_encode_and_hash_as_before() -> None:
    """Logs written before compressions existed: their commits decode, re-encode and hash exactly as then."""
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)
    payload = {"content_type": "dialogue", "role": "user", "text": "hi"}
    event = CommitCreated(
        tract_id="t", created_at=moment, commit_hash="h", parent_hash=None, content_hash=content_hash(payload),
        content=payload, content_type="dialogue", operation="append", token_count=1, tokenizer="x",
    )  # fmt: skip
    assert b"compression" not in msgspec.msgpack.encode(event)
    identity = {
        "content_hash": content_hash(payload), "parent_hash": None, "content_type": "dialogue",
        "operation": "append", "timestamp": moment.isoformat(), "response_to": None,
    }  # fmt: skip
    expected = hashlib.sha256(canonical_json(identity)).hexdigest()
    assert commit_hash(
        content_hash=content_hash(payload), parent_hash=None, content_type="dialogue", operation="append",
        created_at=moment, response_to=None,
    ) == expected  # fmt: skip


def test_the_compression_bench_runs_at_tiny_sizes() -> None:
    """bench/compression.py at tiny sizes: it runs and reports each figure for each history length
    (timings are not asserted; the context it compiles is the same size at every length)."""
    bench = Path(__file__).resolve().parent.parent / "bench" / "compression.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--sizes", "30,60"], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.strip().splitlines()
    assert "after an append (us)" in header and "cold compile (ms)" in header
    assert [row.split()[0] for row in rows] == ["30", "60"]
    assert rows[0].split()[4] == rows[1].split()[4]  # context tokens

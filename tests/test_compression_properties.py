"""Property tests for compression: random sequences of commits, tool rounds, edits, annotations,
compressions (ranges and lists, with summarizers or text, nested), tool-result compaction,
branches, merges and reopenings, on disk, with and without a compressing token budget.

What a user relies on, checked as the sequence runs:

* each compression does what it says to the compiled context: the replaced messages leave, the
  summary stands where the first of them stood, the preserved follow it, the rest is untouched;
  a refused one (a split tool pair, nothing to compress, half a summary) changes nothing at all;
* replay gives the live state: after every step a fresh read-only opener and a long-lived reader
  (after `refresh()`) see exactly what the writer sees (history, HEAD, compile()), `verify()`
  passes, and the live incremental compile() equals a full compile(at_commit=HEAD);
* what an auditor reconstructs: compile(at_time=t) and replay(until_position=p) for every earlier
  step give what was live then, compressions or not;
* under a COMPRESS budget every commit that lands leaves the context within the budget, and a
  commit the budget refuses changes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tract import (
    BudgetAction,
    BudgetExceededError,
    CompiledContext,
    DialogueContent,
    InvalidArgumentError,
    MergeConflictError,
    Message,
    Priority,
    TokenBudgetConfig,
    Tract,
    TractConfig,
)

from properties import examples

LOG_FILE = "events.log"
WORDS = ["the", "log", "keeps", "every", "fact", "and", "the", "summary", "stands", "for", "what", "it", "replaced"]
indices = st.integers(min_value=0, max_value=10**6)


def summarize(messages: list[Message], *, target_tokens: int | None = None) -> str:
    """Deterministic, and shorter than what it summarises once there is something to shorten."""
    words = " ".join(m.content for m in messages).split()
    return f"[{len(messages)} messages] " + " ".join(words[:: max(len(words) // 4, 1)][:4])


def text_of(size: int, seed: int) -> str:
    return " ".join(WORDS[(seed + i) % len(WORDS)] for i in range(size))


@dataclass(frozen=True)
class Moment:
    time: datetime
    position: int
    compiled: CompiledContext


def history(t: Tract) -> dict[str, Any]:
    return {"head": t.head, "branch": t.current_branch, "log": t.log(limit=None)}


class CompressionMachine(RuleBasedStateMachine):
    budget: ClassVar[int | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="tract-compress-props-")
        self.path = Path(self.tmp) / "log"
        self.t = self.open()
        self.reader: Tract | None = None
        self.timeline: list[Moment] = []
        self.calls = 0
        self.summaries: set[str] = set()

    def open(self) -> Tract:
        config = TractConfig()
        if self.budget is not None:
            config = TractConfig(
                token_budget=TokenBudgetConfig(
                    max_tokens=self.budget, action=BudgetAction.COMPRESS, summarizer=summarize
                )
            )
        return Tract.open(self.path, sync="batch", config=config)

    def teardown(self) -> None:
        try:
            for moment in self.timeline:
                assert self.t.compile(at_time=moment.time) == moment.compiled
                with self.t.replay(until_position=moment.position) as then:
                    assert then.compile() == moment.compiled
        finally:
            if self.reader is not None:
                self.reader.close()
            self.t.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what the steps draw from --------------------------------------------------------

    def messages(self) -> list[str]:
        """Commits that are messages of their own in HEAD's history (appends and summaries)."""
        return [i.commit_hash for i in reversed(self.t.log(limit=None)) if i.operation.value in ("append", "compress")]

    def unchanged(self, before: tuple[Any, ...]) -> None:
        assert self.state() == before

    def state(self) -> tuple[Any, ...]:
        return ((self.path / LOG_FILE).read_bytes(), history(self.t), self.t.compile())

    def commit_or_refuse(self, write: Any) -> None:
        """A commit under the budget lands (within the budget) or is refused and changes nothing."""
        before = self.state()
        try:
            write()
        except BudgetExceededError:
            assert self.budget is not None
            event("budget: refused")
            self.unchanged(before)
            return
        if self.budget is not None:
            assert self.t.compile().token_count <= self.budget
            compressed = [i for i in self.t.log(limit=3) if i.message == "compressed to fit the token budget"]
            event(f"budget: {'compressed' if compressed else 'fits'}")

    # -- rules ---------------------------------------------------------------------------

    @rule(role=st.sampled_from(["user", "assistant"]), size=st.integers(1, 40), seed=indices)
    def say(self, role: str, size: int, seed: int) -> None:
        self.commit_or_refuse(lambda: self.t.commit(DialogueContent(role=role, text=text_of(size, seed))))

    @rule(results=st.integers(1, 2), size=st.integers(1, 60), seed=indices)
    def tool_round(self, results: int, size: int, seed: int) -> None:
        """An assistant turn calling tools, and their results, in one batch (the pair lands whole)."""
        self.calls += 1
        ids = [f"call_{self.calls}_{n}" for n in range(results)]

        def write() -> None:
            with self.t.batch():
                self.t.assistant(tool_calls=[{"id": i, "name": "lookup", "arguments": {"n": seed}} for i in ids])
                for call_id in ids:
                    self.t.tool_result(call_id, text_of(size, seed), name="lookup")

        self.commit_or_refuse(write)

    @precondition(lambda self: self.t.head is not None)
    @rule(index=indices, size=st.integers(1, 20), seed=indices)
    def edit(self, index: int, size: int, seed: int) -> None:
        targets = self.messages()
        target = targets[index % len(targets)]
        self.commit_or_refuse(
            lambda: self.t.commit(
                DialogueContent(role="user", text=text_of(size, seed)), operation="edit", response_to=target
            )
        )

    @precondition(lambda self: self.t.head is not None)
    @rule(index=indices, priority=st.sampled_from([Priority.SKIP, Priority.NORMAL, Priority.PINNED]))
    def annotate(self, index: int, priority: Priority) -> None:
        commits = [info.commit_hash for info in self.t.log(limit=None)]
        self.t.annotate(commits[index % len(commits)], priority)

    @precondition(lambda self: self.t.head is not None)
    @rule(
        a=indices,
        b=indices,
        listed=st.booleans(),
        written=st.booleans(),
        preserve=st.booleans(),
        hint=st.none() | st.integers(1, 50),
    )
    def compress(self, a: int, b: int, listed: bool, written: bool, preserve: bool, hint: int | None) -> None:
        commits = [info.commit_hash for info in reversed(self.t.log(limit=None))]
        first, last = sorted((a % len(commits), b % len(commits)))
        chosen: dict[str, Any] = (
            {"commits": sorted({commits[first], commits[last], commits[(first + last) // 2]})}
            if listed
            else {"from_commit": commits[first], "to_commit": commits[last]}
        )
        if preserve:
            chosen["preserve"] = [commits[(first + last) // 2]]
        summary: dict[str, Any] = {"content": f"summary {a}"} if written else {"summarizer": summarize}
        if hint is not None and not written:
            summary["target_tokens"] = hint
        before, compiled = self.state(), self.t.compile()
        try:
            result = self.t.compress(**chosen, **summary)
        except InvalidArgumentError as error:
            reasons = ("split tool call", "nothing to compress", "stands for", "preserve names")
            assert any(why in str(error) for why in reasons), error
            event(f"compress refused: {next(why for why in reasons if why in str(error))}")
            self.unchanged(before)
            return
        event("compress: nested" if any(c in result.replaced for c in self.summaries) else "compress: done")
        self.summaries.add(result.summary.commit_hash)
        after = self.t.compile()
        assert (result.tokens_before, result.tokens_after) == (compiled.token_count, after.token_count)
        assert after.commit_hashes == expected_order(
            compiled.commit_hashes, result.replaced, result.preserved, result.summary.commit_hash
        )
        kept = dict(zip(compiled.commit_hashes, compiled.messages, strict=True))
        for commit_hash, message in zip(after.commit_hashes, after.messages, strict=True):
            assert (
                message == kept[commit_hash]
                if commit_hash in kept
                else message.content == result.summary.content["text"]
            )

    @precondition(lambda self: self.t.head is not None)
    @rule(keep_last=st.integers(0, 2), min_tokens=st.integers(0, 40), summarized=st.booleans())
    def compact(self, keep_last: int, min_tokens: int, summarized: bool) -> None:
        before = self.t.compile()
        results = self.t.compact_tool_results(
            keep_last=keep_last, min_tokens=min_tokens, summarizer=summarize if summarized else None
        )
        event(f"compacted: {min(len(results), 2)}")
        after = self.t.compile()  # each compacted result's stand-in stands in its place, answering the same call
        stand_ins = {result.replaced[0]: result.summary.commit_hash for result in results}
        assert after.commit_hashes == [stand_ins.get(commit, commit) for commit in before.commit_hashes]
        assert [m.tool_call_id for m in after.messages] == [m.tool_call_id for m in before.messages]

    @precondition(lambda self: self.t.head is not None)
    @rule(name=st.sampled_from(["b1", "b2"]))
    def branch_or_switch(self, name: str) -> None:
        if name in {b.name for b in self.t.list_branches()}:
            self.t.switch(name)
        else:
            self.t.branch(name)

    @precondition(lambda self: self.t.current_branch != "main")
    @rule()
    def back_to_main(self) -> None:
        self.t.switch("main")

    @rule(name=st.sampled_from(["main", "b1", "b2"]), strategy=st.sampled_from(["auto", "ours", "theirs"]))
    def merge(self, name: str, strategy: str) -> None:
        if name not in {b.name for b in self.t.list_branches()}:
            return
        before = self.state()
        try:
            event(f"merge: {self.t.merge(name, strategy=strategy).kind}")
        except MergeConflictError:
            assert strategy == "auto"
            event("merge: conflict")
            self.unchanged(before)

    @rule(delete_index=st.booleans())
    def reopen(self, delete_index: bool) -> None:
        before = self.state()
        self.t.close()
        if delete_index:
            shutil.rmtree(self.path / "index", ignore_errors=True)
        self.t = self.open()
        self.unchanged(before)

    # -- what holds after every step ------------------------------------------------------

    @invariant()
    def replay_gives_the_live_state(self) -> None:
        t = self.t
        live, state = t.compile(), history(t)
        assert t.verify().ok
        if t.head is not None:
            assert t.compile(at_commit=t.head) == live
        with Tract.open(self.path, readonly=True) as fresh:
            assert history(fresh) == state and fresh.compile() == live
        if self.reader is None:
            self.reader = Tract.open(self.path, readonly=True)
        self.reader.refresh()
        assert history(self.reader) == state and self.reader.compile() == live
        moment = datetime.now(timezone.utc)
        if t.head is not None:
            moment = max(moment, t.get_commit(t.head).created_at)  # type: ignore[union-attr]
        while datetime.now(timezone.utc) <= moment:
            pass
        self.timeline.append(Moment(moment, t.chain_head.position, live))


def expected_order(before: list[str], replaced: list[str], preserved: list[str], summary: str) -> list[str]:
    """The compiled order a compression should leave: the summary where the first replaced message
    stood, then the preserved that stood after it, then the rest, in their order."""
    gone = set(replaced)
    at = min(index for index, commit in enumerate(before) if commit in gone)
    moved = [commit for commit in before[at:] if commit in set(preserved)]
    rest = [commit for commit in before[at:] if commit not in gone and commit not in moved]
    return [*before[:at], summary, *moved, *rest]


class BudgetCompressionMachine(CompressionMachine):
    budget = 260


SETTINGS = examples(50, steps=40)
CompressionMachine.TestCase.settings = SETTINGS
BudgetCompressionMachine.TestCase.settings = SETTINGS
TestCompressionReplay = CompressionMachine.TestCase
TestBudgetCompressionReplay = BudgetCompressionMachine.TestCase

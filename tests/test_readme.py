"""The README's quickstart runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tract import Tract

from provider_server import ProviderServer

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(quickstart, "README quickstart", "exec"), {})
    with Tract.open(tmp_path / "chat-log", readonly=True) as t:  # what the example left in the log
        assert t.verify().ok
        assert [(m.role, m.content) for m in t.compile().messages] == [
            ("system", "You are a terse assistant."),  # the question is edited, then SKIPped
            ("assistant", "A monoid in the category of endofunctors."),
        ]
        _system, question, _answer, edit = reversed(t.log(limit=None))
        assert (edit.operation.value, edit.response_to) == ("edit", question.commit_hash)
        assert question.generation_config == {"model": "gpt-4o", "temperature": 0.2}
        sent = t.compile(at_commit=question.commit_hash)
        assert [m.content for m in sent.messages] == ["You are a terse assistant.", "What is a monad?"]
        assert sent.api_usage is not None and (sent.api_usage.prompt_tokens, sent.api_usage.completion_tokens) == (
            24,
            11,
        )


def test_agent_loops_run_as_written_against_the_local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's OpenAI and Anthropic agent loops, unchanged, with the SDKs pointed at a local server
    that enforces each API's rules."""
    section = README.read_text().split("## Agents with tools", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```python")[1:]]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    with ProviderServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        for number, block in enumerate(blocks):
            exec(compile(block, f"README agent loop {number + 1}", "exec"), {})
        assert server.refusals == []
        paths = [path for path, _ in server.requests]
    assert paths == ["/v1/chat/completions"] * 2 + ["/v1/messages"] * 2  # call, then answer, for each
    for directory, calls in (("agent-log", 2), ("agent-log-claude", 1)):
        with Tract.open(tmp_path / directory, readonly=True) as t:
            rows = t.sql("SELECT count(*) FROM tool_calls c JOIN tool_results r USING (tract_id, call_id)").rows
            assert rows == [(calls,)]
            assert t.sql("SELECT count(*) FROM usage WHERE context_hash IS NOT NULL").rows == [(2,)]


def test_the_compression_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("## Compression", 1)[1].split("\n## ", 1)[0]
    (block,) = [block.split("```", 1)[0] for block in section.split("```python")[1:]]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README compression", "exec"), {})
    with Tract.open(tmp_path / "trip-log", readonly=True) as t:
        assert t.verify().ok
        assert t.sql("SELECT count(*) FROM compressions").rows == [(3,)]  # compress, compaction, budget

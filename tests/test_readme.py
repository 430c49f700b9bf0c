"""Every Python block of the README runs as written, each on its own, and does what it says.

The blocks are collected from README.md itself (tests/readme_blocks.py), so a block added there
is run here with nothing to register. Each runs in a fresh working directory, with a fresh
namespace, beside the local provider server; the promises a block makes are `assert` lines in
the README itself. A few blocks leave a log whose contents are checked further below (CHECKS)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from tract import Tract

from provider_server import ProviderServer
from readme_blocks import README, Block, ReadmeFormatError, python_blocks, run, with_postgres

BLOCKS = python_blocks(README.read_text())


def _param(block: Block) -> object:
    marks = [pytest.mark.postgres] if "postgres" in block.needs else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(block) for block in BLOCKS])
def test_readme_block_runs_as_written(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    with ExitStack() as stack:
        code = block.code
        if "postgres" in block.needs:
            from pgstore import fresh_schema, store_url  # psycopg: only where a server is given

            code = with_postgres(code, store_url(stack.enter_context(fresh_schema())))
        server = stack.enter_context(ProviderServer())
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        run(block, code)
    assert server.refusals == []
    check = CHECKS.get(block.id)
    if check is not None:
        check(tmp_path, [path for path, _ in server.requests])


def check_quickstart(directory: Path, requests: list[str]) -> None:
    with Tract.open(directory / "chat-log", readonly=True) as t:  # what the example left in the log
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


def agent_loop_check(directory: str, path: str, calls: int) -> Callable[[Path, list[str]], None]:
    """An agent loop: its two requests (the call, then the answer) reached the server, and the log
    pairs each tool call with its result and ties both usages to the context sent."""

    def check(tmp_path: Path, requests: list[str]) -> None:
        assert requests == [path, path]
        with Tract.open(tmp_path / directory, readonly=True) as t:
            rows = t.sql("SELECT count(*) FROM tool_calls c JOIN tool_results r USING (tract_id, call_id)").rows
            assert rows == [(calls,)]
            assert t.sql("SELECT count(*) FROM usage WHERE context_hash IS NOT NULL").rows == [(2,)]

    return check


def check_compression(directory: Path, requests: list[str]) -> None:
    with Tract.open(directory / "trip-log", readonly=True) as t:
        assert t.verify().ok
        assert t.sql("SELECT count(*) FROM compressions").rows == [(3,)]  # compress, compaction, budget


def check_postgres(directory: Path, requests: list[str]) -> None:
    assert (directory / ".cache" / "tract" / "analytics").is_dir()  # a store's analytics live in the user's cache


CHECKS: dict[str, Callable[[Path, list[str]], None]] = {
    "quickstart-1": check_quickstart,
    "agents-with-tools-1": agent_loop_check("agent-log", "/v1/chat/completions", 2),
    "agents-with-tools-2": agent_loop_check("agent-log-claude", "/v1/messages", 1),
    "compression-1": check_compression,
    "the-log-on-postgresql-1": check_postgres,
}
"""Further checks of what a block left behind, by block id."""


def test_every_further_check_names_a_block() -> None:
    """Renaming a heading or moving a block must not silently drop its checks."""
    assert set(CHECKS) <= {block.id for block in BLOCKS}


def test_the_readme_has_its_python_blocks() -> None:
    """A collector that found nothing would let every block go unrun."""
    assert BLOCKS and BLOCKS[0].id == "quickstart-1"


SAMPLE = """# Title

```bash
echo not python
```

## Use it

```python
x = 1
```

~~~py
# needs: postgres
url = "postgresql://someone@somewhere/db"
~~~

````python
```python
nested fences stay inside
```
````

### Other `thing`

```python
y = 2
```
"""


def test_the_collector_finds_every_python_block_with_its_heading_line_and_needs() -> None:
    blocks = python_blocks(SAMPLE)
    assert [(block.id, block.line, block.needs) for block in blocks] == [
        ("use-it-1", 10, frozenset()),
        ("use-it-2", 14, frozenset({"postgres"})),
        ("use-it-3", 19, frozenset()),
        ("other-thing-1", 27, frozenset()),
    ]
    assert blocks[2].code == "```python\nnested fences stay inside\n```\n"


def test_a_postgres_block_gets_the_test_servers_store_url() -> None:
    block = python_blocks(SAMPLE)[1]
    assert with_postgres(block.code, "postgresql://t:t@127.0.0.1/t?schema=s") == (
        "# needs: postgres\nurl = 'postgresql://t:t@127.0.0.1/t?schema=s'\n"
    )


def test_an_unclosed_fence_or_an_unknown_need_is_an_error_not_a_block_fewer() -> None:
    with pytest.raises(ReadmeFormatError, match="line 3: a ``` block that is never closed"):
        python_blocks("# T\n\n```python\nx = 1\n")
    (block,) = python_blocks("```python\n# needs: redis\n```\n")
    with pytest.raises(ReadmeFormatError, match="unknown `# needs:` \\['redis'\\]"):
        _ = block.needs


def test_a_block_that_raises_fails_with_the_readme_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = python_blocks("# T\n\n```python\nfrom tract import Tract\n\nTract.opne('x')\n```\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AttributeError) as raised:
        run(block, block.code)
    assert (raised.traceback[-1].path, raised.traceback[-1].lineno + 1) == (README, 6)

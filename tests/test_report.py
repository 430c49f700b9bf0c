"""`tract report` opened in a real headless Chromium (tests/browser.py): the page loads with no console
error, shows what the log holds, runs nothing that came from the log, and stays usable at 100k commits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import LOG_FILE, EventLog, TractCreated, UsageRecorded, sealed_commit
from tract import DialogueContent, InstructionContent, Tract
from tract.cli.report.collect import COMMITS_SHOWN
from tract.cli.report.page import embedded_json
from tract.tokens import TiktokenCounter

from browser import Browser, Page, without_security_policy
from test_cli import fails, ok, run

COUNTS = """Object.fromEntries([...document.querySelectorAll("#tract-%d [data-count]")]
    .map((item) => [item.dataset.count, Number(item.querySelector(".value").textContent.replaceAll(",", ""))]))"""
OPEN_EVERY_DETAILS = """document.querySelectorAll("details").forEach((details) => { details.open = true; });
    new Promise((done) => setTimeout(done, 100))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as started:
        yield started


def report(directory: Path, out: Path, *args: str) -> Path:
    assert ok("report", directory, "-o", out, *args) == f"wrote {out}\n"
    return out


def loaded(browser: Browser, path: Path) -> Page:
    """The page, after checking it loaded without a single error."""
    page = browser.open(path)
    assert page.evaluate("document.readyState") == "complete"
    assert page.errors == [], page.errors
    return page


def texts(page: Page, selector: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map((node) => node.textContent)")


def test_the_demo_and_its_report_make_the_first_minute(browser: Browser, tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    ok("demo", directory)
    page = loaded(browser, report(directory, tmp_path / "report.html"))
    summary, head_line = ok("verify", directory).splitlines()
    assert page.evaluate("document.getElementById('verification').dataset.ok") == "true"
    assert texts(page, "#verification-summary") == [summary]
    assert head_line.rsplit(":", 1)[1] in texts(page, "#verification code")
    with Tract.open(directory, readonly=True) as tract:
        context = tract.compile()
        expected = {
            "records": tract.chain_head.position,
            "commits": tract.sql("SELECT count(*) FROM commits").rows[0][0],
            "in_head_history": len(tract.history()),
            "messages": context.commit_count,
            "tokens": context.token_count,
            "branches": 3,
            "skipped": 1,
            "edits": 0,
            "merges": 1,
            "usage_records": 2,
            "prompt_tokens": tract.sql("SELECT sum(prompt_tokens) FROM usage").rows[0][0],
            "completion_tokens": tract.sql("SELECT sum(completion_tokens) FROM usage").rows[0][0],
        }
        graph = [line for row in json.loads(ok("log", directory, "--graph", "--all", "-n", "all", "--format", "json"))
                 for line in row["graph"]]  # fmt: skip
    assert page.evaluate(COUNTS % 0) == expected
    assert len(texts(page, ".graph-commit")) == 5 and len(texts(page, ".graph-line")) == len(graph) - 5
    assert texts(page, ".lanes") == graph
    assert texts(page, ".message .badge-role") == ["system", "user", "assistant", "dialogue"]
    assert len(texts(page, ".message.kind-left-out")) == 1 and len(texts(page, ".merge")) == 1
    assert texts(page, ".branches .branch-name") == ["careful", "creative", "main"]
    assert page.evaluate("document.querySelectorAll('svg.chart').length") == 2
    page.evaluate(OPEN_EVERY_DETAILS)
    configs = " ".join(texts(page, ".commit-body pre.json"))
    assert '"temperature": 1.1' in configs and '"temperature": 0.2' in configs
    assert "recorded at this commit" in " ".join(texts(page, ".commit-body table.usage"))
    assert page.errors == []
    page.close()


def test_edits_show_what_the_model_saw_and_open_to_the_original(browser: Browser, tmp_path: Path) -> None:
    with Tract.open(tmp_path / "log") as tract:
        tract.commit(InstructionContent(text="be brief"))
        question = tract.commit(DialogueContent(role="user", text="the original question"))
        tract.commit(
            DialogueContent(role="user", text="the edited question"), operation="edit", response_to=question.commit_hash
        )
    page = loaded(browser, report(tmp_path / "log", tmp_path / "report.html"))
    assert texts(page, ".message pre.text") == ["be brief", "the edited question"]
    assert "the original question" not in texts(page, ".message")[1]  # until its originals are opened
    page.evaluate(OPEN_EVERY_DETAILS)
    originals = texts(page, "ol.originals li pre")
    assert originals == ["the original question", "the edited question"]
    assert page.errors == []
    page.close()


def test_summaries_show_what_the_model_saw_and_open_to_the_originals(browser: Browser, tmp_path: Path) -> None:
    with Tract.open(tmp_path / "log") as tract:
        tract.commit(InstructionContent(text="be brief"))
        first = tract.commit(DialogueContent(role="user", text="first question"))
        tract.commit(DialogueContent(role="assistant", text="first answer"))
        summary = tract.compress(from_commit=first.commit_hash, content="they talked about a first thing").summary
        tract.commit(DialogueContent(role="user", text="next question"))
    page = loaded(browser, report(tmp_path / "log", tmp_path / "report.html"))
    assert texts(page, ".message pre.text") == ["be brief", "they talked about a first thing", "next question"]
    replaced = texts(page, ".kind-left-out .note")
    assert replaced == [f"Replaced in the context the model saw by the summary {summary.commit_hash[:12]}."] * 2
    assert any("SUMMARY" in badge for badge in texts(page, ".message header"))
    page.evaluate(OPEN_EVERY_DETAILS)
    assert texts(page, "ol.originals li pre") == ["first question", "first answer"]
    assert page.errors == []
    page.close()


HOSTILE_TRACT = "<img src=x onerror=\"window.__pwned='tract'\">"
HOSTILE_BRANCH = "<script>window.__pwned='branch'</script>"
HOSTILE_TEXT = (
    "<script>window.__pwned='message'</script> </script><script>window.__pwned='end'</script> <!--<script>\u2028"
)
HOSTILE_CONFIG = {
    "<b onmouseover=x>key</b>": "</script><script>window.__pwned='config'</script>",
    "model": "<svg onload=\"window.__pwned='model'\">",
}
HOSTILE_METADATA = {"</script>": "<iframe src=\"javascript:window.__pwned='meta'\"></iframe>"}
HOSTILE_TOOL = "</script><script>window.__pwned='tool'</script>"


def hostile_log(directory: Path) -> None:
    """Everything a log can carry into the page, hostile: the tract id, a branch name, message text,
    config keys and values (the model too), metadata, and a tool name (written beneath the SDK,
    which refuses such a name, as a forged log could hold it)."""
    with Tract.open(directory, tract_id=HOSTILE_TRACT) as tract:
        tract.branch(HOSTILE_BRANCH)
        tract.commit(
            DialogueContent(role="user", text=HOSTILE_TEXT), generation_config=HOSTILE_CONFIG, metadata=HOSTILE_METADATA
        )
        tract.record_usage({"prompt_tokens": 5, "completion_tokens": 1})
        head = tract.head
    log = EventLog.open(directory)
    try:
        call = {"id": "call_1", "name": HOSTILE_TOOL, "arguments": {"<i>": "</script>"}}
        forged = sealed_commit(
            tract_id=HOSTILE_TRACT, content={"content_type": "tool_call", "text": None, "tool_calls": [call]},
            content_type="tool_call", operation="append", parent_hash=head,
            created_at=datetime.now(timezone.utc), token_count=1, tokenizer="tiktoken:o200k_base",
            branch=HOSTILE_BRANCH,
        )  # fmt: skip
        log.append(HOSTILE_TRACT, [forged])
    finally:
        log.close()


@pytest.mark.parametrize("policy", ["with its security policy", "with its escaping alone"])
def test_a_hostile_log_renders_as_text_and_runs_nothing(browser: Browser, tmp_path: Path, policy: str) -> None:
    hostile_log(tmp_path / "log")
    path = report(tmp_path / "log", tmp_path / "report.html")
    if policy == "with its escaping alone":
        path = without_security_policy(path, tmp_path / "open.html")
    html = path.read_text()
    data = html.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and json.loads(data)["tracts"][0]["tract_id"] == HOSTILE_TRACT
    page = loaded(browser, path)
    page.evaluate(OPEN_EVERY_DETAILS)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('img, iframe, b, i, svg:not(.chart), object, embed').length") == 0
    shown = page.evaluate("document.body.textContent")
    pretty = [json.dumps(value, indent=2, ensure_ascii=False) for value in (HOSTILE_CONFIG, HOSTILE_METADATA)]
    for hostile in (HOSTILE_TRACT, HOSTILE_BRANCH, HOSTILE_TEXT, HOSTILE_TOOL, HOSTILE_CONFIG["model"], *pretty):
        assert hostile in shown, hostile  # (the embedded data holds no "<": this is the page's own text)
    assert page.evaluate("document.querySelector('#verification .tract-id').textContent") == HOSTILE_TRACT
    assert page.errors == []
    page.close()


@given(st.text())
def test_embedded_json_never_holds_markup_and_reads_back(text: str) -> None:
    embedded = embedded_json({"text": text, text: [text]})
    assert not set("<>&\u2028\u2029") & set(embedded)
    assert json.loads(embedded) == {"text": text, text: [text]}


def test_one_tract_or_an_unknown_one(browser: Browser, tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as first:
        first.commit(DialogueContent(role="user", text="first tract"))
    with Tract.open(directory, tract_id="second") as second:
        second.commit(DialogueContent(role="user", text="second tract"))
        second.commit(DialogueContent(role="assistant", text="answer"))
    every = loaded(browser, report(directory, tmp_path / "all.html"))
    assert len(texts(every, "section.tract")) == 2
    every.close()
    page = loaded(browser, report(directory, tmp_path / "one.html", "--tract", "second"))
    assert texts(page, "section.tract h2 .tract-id") == ["second"]
    assert page.evaluate(COUNTS % 0)["commits"] == 2
    page.close()
    fails("report", directory, "-o", tmp_path / "none.html", "--tract", "third", match="no tract 'third'")
    assert not (tmp_path / "none.html").exists()


def test_a_log_that_does_not_verify_is_reported_and_fails(browser: Browser, tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Tract.open(directory) as tract:
        for number in range(20):
            tract.commit(DialogueContent(role="user", text=f"message {number}"))
    path = directory / LOG_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    done = run("report", directory, "-o", tmp_path / "report.html")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "does not verify" in done.stderr
    page = loaded(browser, tmp_path / "report.html")
    assert page.evaluate("document.getElementById('verification').dataset.ok") == "false"
    assert "FAILED" in texts(page, "#verification h2")[0] and texts(page, ".problem")
    assert texts(page, "section.tract .error")  # the damaged tract cannot be read: said so, not hidden
    page.close()


def write_long_log(directory: Path, commits: int, tract_id: str = "long") -> None:
    """`commits` dialogue turns (configs alternating between two models, usage after each answer)
    written with the log directly, in batches, as `bench/scale_build.py` does: fast enough for a test."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    texts = [f"turn {number}: the chain slips on the smallest cog; check its wear" for number in range(97)]
    tokens = [TiktokenCounter("o200k_base").count_text(text) for text in texts]
    configs = [{"model": "gpt-4o", "temperature": 0.2}, {"model": "claude-sonnet-4", "temperature": 0.9}]
    log = EventLog.open(directory, sync="batch")
    try:
        log.append(tract_id, [TractCreated(tract_id=tract_id, created_at=start)], expected=0)
        head: str | None = None
        batch: list[Any] = []
        for number in range(commits):
            at = start + timedelta(milliseconds=number + 1)
            role = "user" if number % 2 == 0 else "assistant"
            commit = sealed_commit(
                tract_id=tract_id, content={"content_type": "dialogue", "role": role, "text": texts[number % 97]},
                content_type="dialogue", operation="append", parent_hash=head, created_at=at,
                token_count=tokens[number % 97], tokenizer="tiktoken:o200k_base",
                generation_config=configs[number // 2 % 2],
            )  # fmt: skip
            head = commit.commit_hash
            batch.append(commit)
            if role == "assistant":
                batch.append(
                    UsageRecorded(tract_id=tract_id, created_at=at, head_hash=head, context_hash=head,
                                  prompt_tokens=100 + number % 50, completion_tokens=20, total_tokens=120 + number % 50)
                )  # fmt: skip
            if len(batch) >= 5000:
                log.append(tract_id, batch)
                batch = []
        log.append(tract_id, batch)
        log.flush()
    finally:
        log.close()


def test_a_log_of_100k_commits_gives_a_usable_page(browser: Browser, tmp_path: Path) -> None:
    commits = 100_000
    write_long_log(tmp_path / "log", commits)
    path = report(tmp_path / "log", tmp_path / "report.html")
    assert path.stat().st_size < 10_000_000
    page = loaded(browser, path)
    counts = page.evaluate(COUNTS % 0)
    assert (counts["commits"], counts["usage_records"], counts["records"]) == (
        commits,
        commits // 2,
        1 + commits * 3 // 2,
    )
    assert texts(page, ".truncated") == [
        f"Showing the newest {COMMITS_SHOWN:,} of {commits:,} {what}: the page holds at most {COMMITS_SHOWN:,}. "
        "The log has them all (`tract log DIR -n all`, `tract compile DIR`)."
        for what in ("commits", "messages")
    ]
    labels = texts(page, ".page-label")
    assert labels == [f" commits 1–100 of the {COMMITS_SHOWN:,} shown (page 1 of 20)",
                      f" messages 1,901–2,000 of the {COMMITS_SHOWN:,} shown (page 20 of 20)"]  # fmt: skip
    newest = texts(page, ".graph-commit .hash")
    assert len(newest) == 100 and texts(page, ".message").__len__() == 100
    page.evaluate("document.querySelector('.pager .controls button:nth-child(3)').click()")
    assert texts(page, ".page-label")[0] == f" commits 101–200 of the {COMMITS_SHOWN:,} shown (page 2 of 20)"
    assert set(texts(page, ".graph-commit .hash")).isdisjoint(newest)
    points = page.evaluate("document.querySelectorAll('svg.chart g.bucket').length")
    assert 0 < points <= 200
    assert page.errors == []
    page.close()

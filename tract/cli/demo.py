"""`tract demo [DIR]`: what tract is for, in a minute, written to a new log.

An instruction and a question; two branches answering it with different
generation configs; a merge; the SQL that compares the branches; `verify` with
an anchor. No model is called: the replies and their usage are simulated, the
output says so, and so does each reply's metadata in the log. Every figure
printed is read back from the log the demo wrote.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from tract import verify
from tract.cli.common import anchor_text
from tract.cli.history import Markers, marker_text
from tract.cli.log import graph_lines
from tract.cli.output import format_table, one_line
from tract.content import DialogueContent, InstructionContent
from tract.errors import TractError
from tract.models import CommitInfo
from tract.tract import Tract

SIMULATED = {"simulated": "written by `tract demo`: no model was called; reply and usage are made up"}
BRANCHES: dict[str, tuple[dict[str, Any], str]] = {
    "careful": (
        {"model": "gpt-4o-mini", "temperature": 0.2, "top_p": 1.0},
        (
            "Check chain wear first (a worn chain skips on small cogs), then the rear derailleur's "
            "high limit screw and the cable tension."
        ),
    ),
    "creative": (
        {"model": "gpt-4o-mini", "temperature": 1.1, "top_p": 0.95},
        (
            "Your chain is staging a protest! Worn teeth, a stretched chain or a derailleur out of "
            "tune are the usual ringleaders: start with the chain."
        ),
    ),
}
COMPARISON = """SELECT c.branch, c.model, c.temperature, u.prompt_tokens, u.completion_tokens
FROM usage u JOIN commits c ON c.commit_hash = u.head_hash
ORDER BY c.branch"""


def run_demo(args: argparse.Namespace) -> int:
    directory = _fresh_directory(args.directory)
    with Tract.open(directory) as tract:
        print(f"tract demo: a new log in {directory}")
        print("No model is called here: the replies and their usage figures are simulated (the log says so in")
        print("each reply's metadata). Everything else below is read back from the log.")
        _question(tract)
        _branches(tract)
        _merge(tract)
        _compare(tract)
        head = tract.chain_head
    _verify(directory, anchor_text(head.tract_id, head.position, head.hash))
    print("\nThe whole history, as `tract log DIR --graph --all` draws it:")
    with Tract.open(directory, readonly=True) as reader:
        for line in graph_lines(reader, every_branch=True):
            print(f"  {line}")
    print(f"\nNext: tract report {directory} -o report.html   (one HTML file for an auditor)")
    return 0


def _fresh_directory(given: str | None) -> Path:
    """`given` if it is missing or empty, else a refusal; without one, a new directory here."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="tract-demo-", dir=".")).resolve()
    path = Path(given)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise TractError(f"{given} is not empty: give a new or empty directory (or none, for a fresh one)")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _question(tract: Tract) -> None:
    print("\n1. An instruction and a question, committed on branch main")
    tract.commit(InstructionContent(text="You are a concise assistant for a bicycle repair shop."))
    tract.commit(DialogueContent(role="user", text="My chain keeps slipping on the smallest cog. What should I check?"))
    _show_commits(tract)
    compiled = tract.compile()
    print(f"   compiled: {compiled.commit_count} messages, {compiled.token_count} tokens ({compiled.token_source})")


def _branches(tract: Tract) -> None:
    print("\n2. Two branches answer it, each with its own generation config")
    for name, (config, text) in BRANCHES.items():
        tract.switch("main")
        tract.branch(name)
        sent = tract.compile()
        reply = tract.commit(DialogueContent(role="assistant", text=text), generation_config=config, metadata=SIMULATED)
        usage = tract.record_usage({"prompt_tokens": sent.token_count, "completion_tokens": reply.token_count})
        recorded = usage.api_usage
        assert recorded is not None
        print(f"   branch {name}: {_config_text(reply)}")
        print(f"     reply {reply.commit_hash[:12]}, {reply.token_count} tokens: {one_line(text, 70)}")
        print(
            f"     usage (simulated: tract's own counts) {recorded.prompt_tokens} prompt + "
            f"{recorded.completion_tokens} completion tokens, for the {usage.commit_count} messages sent"
        )


def _merge(tract: Tract) -> None:
    print("\n3. main takes the careful answer and merges the creative one for the record, left out of the context")
    tract.switch("main")
    forward = tract.merge("careful")
    print(f"   merge careful: {forward.kind} to {forward.head[:12] if forward.head else None}")
    merged = tract.merge("creative")
    print(f"   merge creative: a {merged.kind} commit {merged.head[:12] if merged.head else None}")
    creative_head = next(branch.head for branch in tract.list_branches() if branch.name == "creative")
    creative = tract.get_commit(creative_head or "")
    assert creative is not None
    tract.annotate(creative.commit_hash, "skip", reason="kept for the record, not sent again")
    compiled = tract.compile()
    print(f"   SKIP {creative.commit_hash[:12]}: main's context is now {compiled.commit_count} messages, "
          f"{compiled.token_count} tokens:")  # fmt: skip
    for message in compiled.messages:
        print(f"     {message.role:>9}: {one_line(message.content, 80)}")


def _compare(tract: Tract) -> None:
    print('\n4. The branches compared in SQL (tract sql DIR "...")')
    for line in COMPARISON.splitlines():
        print(f"   {line}")
    result = tract.sql(COMPARISON)
    for line in format_table(result.columns, result.rows).splitlines():
        print(f"   {line}")


def _verify(directory: Path, anchor: str) -> None:
    print("\n5. Verify: every record checked, and the chain head written down as an anchor")
    tract_id, position, digest = anchor.rsplit(":", 2)
    report = verify(directory, anchor=(tract_id, int(position), digest))
    if not report.ok:
        raise TractError(f"the demo's own log does not verify: {report}")
    print(f"   tract verify {directory} --anchor {anchor}")
    print(f"   {report}")


def _show_commits(tract: Tract) -> None:
    entries = tract.history()
    markers = Markers.among(entries)
    for entry in entries:
        info = tract.get_commit(entry.commit_hash)
        assert info is not None
        marks = marker_text(markers.of(entry), entry.response_to)
        text = info.content.get("text", "")
        print(f"   {entry.commit_hash[:12]}  {entry.content_type:<11} {info.token_count:>3} tokens  {marks:<8} {text}")


def _config_text(info: CommitInfo) -> str:
    config = info.generation_config or {}
    return ", ".join(f"{key} {value}" for key, value in config.items())

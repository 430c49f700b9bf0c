"""What the audit report shows, gathered from the log into plain data (the page embeds it as JSON).

Per tract: its counts, its branches, the graph of every branch, the conversation as the model
saw it at HEAD (edits, skips and merges visible, originals kept), each shown commit with its
generation config and the usage recorded for it, and the usage for the charts. A long log is
cut to its newest `COMMITS_SHOWN` commits (graph) and messages (conversation), with the true
totals beside them; the charts and counts always cover the whole tract.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from events import VerifyReport
from tract.cli.common import anchor_text, shown
from tract.cli.graph import draw
from tract.cli.history import Markers, decorations, describe, newest_first, parents
from tract.errors import TractError
from tract.models import CommitOperation, HistoryEntry, Priority
from tract.tract import Tract

COMMITS_SHOWN = 2000
"""Commits (graph) and messages (conversation) a tract's section shows at most: the newest."""
TEXT_SHOWN = 2000
"""Characters of one commit's text the page holds (the log has the rest: `tract show`)."""
TIME_BUCKETS = 200
"""Points of the tokens-over-time chart at most: usage records are summed into this many."""
CONFIGS_SHOWN = 20
"""Generation configs listed in the per-config table: those used most."""

USAGE_QUERY = """
SELECT position, created_at, head_hash, context_hash, prompt_tokens, completion_tokens, total_tokens,
       cache_read_tokens, reasoning_tokens, provider
FROM usage WHERE tract_id = $tract ORDER BY position
"""
PER_CONFIG_QUERY = """
SELECT c.model, c.generation_config::VARCHAR AS config, count(*) AS calls,
       sum(u.prompt_tokens) AS prompt_tokens, sum(u.completion_tokens) AS completion_tokens
FROM usage u LEFT JOIN commits c ON c.commit_hash = u.head_hash AND c.tract_id = u.tract_id
WHERE u.tract_id = $tract
GROUP BY ALL ORDER BY calls DESC, prompt_tokens DESC, config
"""
COMMIT_COUNT_QUERY = "SELECT count(*) FROM commits WHERE tract_id = $tract"


def collect(location: Path | str, report: VerifyReport, tract_ids: Iterable[str], version: str) -> dict[str, Any]:
    """The report's data: the verification, then one section per tract (or the error opening it)."""
    problem = report.problem
    return {
        "directory": shown(location),  # a store's URL without its credentials
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": version,
        "verification": {
            "ok": report.ok,
            "summary": str(report),
            "records_checked": report.records_checked,
            "problem": None
            if problem is None
            else {
                "tract_id": problem.tract_id,
                "position": problem.position,
                "kind": problem.kind,
                "detail": problem.detail,
            },
            "heads": [
                {
                    "tract_id": tract_id,
                    "position": head.number,
                    "hash": head.hash,
                    "anchor": anchor_text(tract_id, head.number, head.hash),
                }
                for tract_id, head in report.heads.items()
            ],
        },
        "limits": {"commits_shown": COMMITS_SHOWN, "text_shown": TEXT_SHOWN, "configs_shown": CONFIGS_SHOWN},
        "tracts": [_section(location, tract_id) for tract_id in tract_ids],
    }


def _section(location: Path | str, tract_id: str) -> dict[str, Any]:
    try:
        with Tract.open(location, tract_id=tract_id, readonly=True) as tract:
            return _tract(tract)
    except TractError as error:
        return {"tract_id": tract_id, "error": " ".join(str(error).split())}


def _tract(tract: Tract) -> dict[str, Any]:
    at_head = tract.history()
    every = newest_first(tract, every_branch=True, head_history=at_head)
    markers = Markers.among(every)
    names = decorations(tract)
    compiled = tract.compile()
    usage = tract.sql(USAGE_QUERY, params={"tract": tract.tract_id}).rows
    per_config = tract.sql(PER_CONFIG_QUERY, params={"tract": tract.tract_id}).rows
    commit_count = tract.sql(COMMIT_COUNT_QUERY, params={"tract": tract.tract_id}).rows[0][0]

    graph_rows = draw([(entry.commit_hash, parents(entry)) for entry in every[:COMMITS_SHOWN]])
    summaries = {
        entry.commit_hash: info.compression.replaced
        for entry in at_head
        if entry.operation is CommitOperation.COMPRESS
        and (info := tract.get_commit(entry.commit_hash)) is not None
        and info.compression is not None
    }
    conversation, conversation_total = _conversation(at_head, compiled.commit_hashes, compiled.messages, summaries)
    by_hash = {entry.commit_hash: entry for entry in every}
    shown = {row.commit for row in graph_rows} | {row["commit"] for row in conversation}
    shown |= {edit for row in conversation for edit in row.get("edits", ())}
    shown |= {original for row in conversation for original in summaries.get(row["commit"], ())}
    usage_of = _usage_by_commit(usage, shown)
    commits = {
        commit_hash: _commit(tract, by_hash[commit_hash], markers, names, usage_of.get(commit_hash, []))
        for commit_hash in sorted(shown, key=lambda commit_hash: -by_hash[commit_hash].position)
    }
    return {
        "tract_id": tract.tract_id,
        "head": tract.head,
        "current_branch": tract.current_branch,
        "chain_head": tract.chain_head.model_dump(),
        "counts": {
            "records": tract.chain_head.position,
            "commits": commit_count,
            "in_head_history": len(at_head),
            "messages": compiled.commit_count,
            "tokens": compiled.token_count,
            "branches": len(tract.list_branches()),
            "skipped": sum(entry.priority is Priority.SKIP for entry in at_head),
            "edits": sum(entry.operation is CommitOperation.EDIT for entry in at_head),
            "merges": sum(entry.operation is CommitOperation.MERGE for entry in at_head),
            "usage_records": len(usage),
            "prompt_tokens": sum(row[4] for row in usage),
            "completion_tokens": sum(row[5] for row in usage),
        },
        "token_source": compiled.token_source,
        "branches": [branch.model_dump() for branch in tract.list_branches()],
        "graph": {
            "rows": [{"commit": row.commit, "lanes": row.lanes, "after": list(row.after)} for row in graph_rows],
            "total": len(every),
        },
        "conversation": {"rows": conversation, "total": conversation_total},
        "commits": commits,
        "usage_over_time": _buckets(usage),
        "per_model": _per_model(per_config),
        "per_config": {
            "rows": [
                {"model": model, "config": config, "calls": calls,
                 "prompt_tokens": prompt, "completion_tokens": completion}
                for model, config, calls, prompt, completion in per_config[:CONFIGS_SHOWN]
            ],
            "total": len(per_config),
        },
    }  # fmt: skip


def _conversation(
    at_head: list[HistoryEntry], sent: list[str], messages: list[Any], summaries: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], int]:
    """HEAD's history as the conversation reads, oldest first (the newest `COMMITS_SHOWN` rows):
    each message as the model saw it, or left out (by a SKIP, or replaced by a summary: `summaries`
    gives what each summary commit replaces); edits listed under the message they replace;
    merges where they happened."""
    seen = {commit_hash: message for commit_hash, message in zip(sent, messages, strict=True)}
    summarized_in = {original: summary for summary, replaced in summaries.items() for original in replaced}
    edits: dict[str, list[str]] = defaultdict(list)
    for entry in at_head:
        if entry.operation is CommitOperation.EDIT and entry.response_to is not None:
            edits[entry.response_to].append(entry.commit_hash)
    rows: list[dict[str, Any]] = []
    for entry in at_head:
        if entry.operation is CommitOperation.EDIT:
            continue
        if entry.operation is CommitOperation.MERGE:
            rows.append({"commit": entry.commit_hash, "kind": "merge"})
            continue
        message = seen.get(entry.commit_hash)
        row: dict[str, Any] = {"commit": entry.commit_hash, "kind": "message" if message is not None else "left out"}
        if message is not None:
            row["role"] = message.role
            row["name"] = message.name
            row.update(_cut(message.content))
        if entry.commit_hash in edits:
            row["edits"] = edits[entry.commit_hash]
        if message is None and entry.commit_hash in summarized_in:
            row["summarized_in"] = summarized_in[entry.commit_hash]
        if entry.commit_hash in summaries:
            row["replaces"] = summaries[entry.commit_hash]
        rows.append(row)
    return rows[-COMMITS_SHOWN:], len(rows)


def _commit(
    tract: Tract, entry: HistoryEntry, markers: Markers, names: dict[str, list[str]], usage: list[dict[str, Any]]
) -> dict[str, Any]:
    """A commit as `tract log` describes it, its text cut, with the tools it calls, its config
    history (when it had more than one config) and its usage."""
    record = describe(tract, entry, markers, names)
    info = tract.get_commit(entry.commit_hash)
    assert info is not None  # (as describe found it)
    calls = info.content.get("tool_calls") or ()
    history = tract.config_history(entry.commit_hash)
    del record["commit_hash"]  # (the key it is filed under)
    return {
        **record,
        **_cut(record["text"]),
        "tool_names": [call.get("name") for call in calls if isinstance(call, dict)],
        "config_history": [config.model_dump(mode="json") for config in history] if len(history) > 1 else [],
        "usage": usage,
    }


def _cut(text: str) -> dict[str, Any]:
    """A text as the page holds it: at most `TEXT_SHOWN` characters, and its true length."""
    return {"text": text[:TEXT_SHOWN], "text_length": len(text)}


def _usage_by_commit(usage: list[tuple[Any, ...]], shown: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The usage recorded when a shown commit was HEAD, or for the context that ended with it."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for position, created_at, head, context, prompt, completion, total, cache_read, reasoning, provider in usage:
        record = {
            "position": position, "created_at": created_at.isoformat(), "prompt_tokens": prompt,
            "completion_tokens": completion, "total_tokens": total, "cache_read_tokens": cache_read,
            "reasoning_tokens": reasoning, "provider": provider, "head_hash": head, "context_hash": context,
        }  # fmt: skip
        if head in shown:
            found[head].append({**record, "role": "recorded at this commit"})
        if context in shown and context != head:
            found[context].append({**record, "role": "for the context that ended with this commit"})
    return found


def _buckets(usage: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Usage records in order, summed into at most `TIME_BUCKETS` consecutive groups."""
    if not usage:
        return []
    size = -(-len(usage) // TIME_BUCKETS)
    points = []
    for start in range(0, len(usage), size):
        group = usage[start : start + size]
        points.append(
            {
                "first": group[0][1].isoformat(),
                "last": group[-1][1].isoformat(),
                "records": len(group),
                "prompt_tokens": sum(row[4] for row in group),
                "completion_tokens": sum(row[5] for row in group),
            }
        )
    return points


def _per_model(per_config: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    totals: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for model, _, calls, prompt, completion in per_config:
        total = totals[model]
        total[0] += calls
        total[1] += prompt
        total[2] += completion
    return [
        {"model": model, "calls": calls, "prompt_tokens": prompt, "completion_tokens": completion}
        for model, (calls, prompt, completion) in sorted(totals.items(), key=lambda item: -item[1][0])
    ]

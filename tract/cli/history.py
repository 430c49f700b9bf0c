"""The commits `log`, `log --graph` and `report` show, and what each of them marks on a commit.

`Markers.of` is the one place where a commit's markers are decided (EDIT, EDITED,
MERGE, SUMMARY, SKIP, PINNED): every display asks it, so a new kind of commit is marked
everywhere by adding it there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tract.models import CommitOperation, HistoryEntry, Priority
from tract.tract import Tract


def newest_first(
    tract: Tract,
    ref: str | None = None,
    *,
    every_branch: bool = False,
    limit: int | None = None,
    head_history: list[HistoryEntry] | None = None,
) -> list[HistoryEntry]:
    """The history of `ref` (default HEAD), newest first; with `every_branch`, every branch's
    and HEAD's commits, in the order they were written. A commit's priority is the one the
    first of HEAD and the branches (by name) whose history holds it gives it. At most `limit`
    commits; `head_history`: `tract.history()`, if the caller has it already."""
    if not every_branch:
        return tract.history(ref, newest=limit)[::-1]
    chosen = {entry.commit_hash: entry for entry in head_history or tract.history()}
    for branch in tract.list_branches():
        if branch.head is not None and branch.head not in chosen:  # (a head already listed brings no commit more)
            for entry in tract.history(branch.name):
                chosen.setdefault(entry.commit_hash, entry)
    return sorted(chosen.values(), key=lambda entry: entry.position, reverse=True)[:limit]


def parents(entry: HistoryEntry) -> list[str]:
    return [parent for parent in (entry.parent_hash, entry.merge_parent) if parent is not None]


def decorations(tract: Tract) -> dict[str, list[str]]:
    """The names pointing at commits, as git decorates them: `HEAD -> main` for the checked-out
    branch, `HEAD` alone when detached, then the other branches."""
    names: dict[str, list[str]] = {}
    head, current = tract.head, tract.current_branch
    if head is not None and current is None:
        names[head] = ["HEAD"]
    for branch in sorted(tract.list_branches(), key=lambda branch: not branch.current):
        if branch.head is not None:
            names.setdefault(branch.head, []).append(f"HEAD -> {branch.name}" if branch.current else branch.name)
    return names


@dataclass(frozen=True)
class Markers:
    """Decides what a commit is marked with, knowing the commits shown around it."""

    edited: frozenset[str]
    """Commits an edit among those shown replaces."""

    @classmethod
    def among(cls, entries: Iterable[HistoryEntry]) -> Markers:
        return cls(
            frozenset(
                entry.response_to
                for entry in entries
                if entry.operation is CommitOperation.EDIT and entry.response_to is not None
            )
        )

    def of(self, entry: HistoryEntry) -> list[str]:
        """EDIT (it replaces the commit it responds to), EDITED (an edit replaces it), MERGE,
        SUMMARY (a compression: it stands for the commits it replaces), SKIP (left out of the context), PINNED."""
        marks: list[str] = []
        if entry.operation is CommitOperation.EDIT:
            marks.append("EDIT")
        elif entry.operation is CommitOperation.MERGE:
            marks.append("MERGE")
        elif entry.operation is CommitOperation.COMPRESS:
            marks.append("SUMMARY")
        if entry.commit_hash in self.edited:
            marks.append("EDITED")
        if entry.priority is Priority.SKIP:
            marks.append("SKIP")
        elif entry.priority is Priority.PINNED:
            marks.append("PINNED")
        return marks


def marker_text(marks: Sequence[str], response_to: str | None, replaces: Sequence[str] | None = None) -> str:
    """Markers as a line shows them: `[EDIT of 1a2b3c4d5e6f] [SKIP]`, `[SUMMARY of 4: 1a2b3c4d..5e6f7a8b]`."""
    return " ".join(_marker(mark, response_to, replaces) for mark in marks)


def _marker(mark: str, response_to: str | None, replaces: Sequence[str] | None) -> str:
    if mark == "EDIT" and response_to:
        return f"[EDIT of {response_to[:12]}]"
    if mark == "SUMMARY" and replaces:
        span = replaces[0][:8] if len(replaces) == 1 else f"{replaces[0][:8]}..{replaces[-1][:8]}"
        return f"[SUMMARY of {len(replaces)}: {span}]"
    return f"[{mark}]"


def decoration_text(names: Sequence[str]) -> str:
    return f"({', '.join(names)})" if names else ""


def content_text(content: dict[str, Any]) -> str:
    """What a commit's content says, as plain text: its text (and the tool calls it makes), a tool
    result's content, what a merge merged, else the payload as JSON."""
    if content.get("content_type") == "merge":
        return f"merge of branch {content.get('branch')} (strategy {content.get('strategy')})"
    parts = [str(content[key]) for key in ("text", "content") if isinstance(content.get(key), str)]
    for call in content.get("tool_calls") or ():
        if isinstance(call, dict):
            parts.append(f"{call.get('name')}({json.dumps(call.get('arguments'), ensure_ascii=False)})")
    if parts:
        return "\n".join(parts)
    shown = {key: value for key, value in content.items() if key != "content_type"}
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)


def describe(tract: Tract, entry: HistoryEntry, markers: Markers, names: dict[str, list[str]]) -> dict[str, Any]:
    """A shown commit with its content read from the log: the fields `tract log` documents."""
    info = tract.get_commit(entry.commit_hash)
    assert info is not None  # (the entry comes from this tract's history)
    return {
        "commit_hash": entry.commit_hash,
        "position": entry.position,
        "created_at": entry.created_at,
        "branch": entry.branch,
        "operation": entry.operation.value,
        "content_type": entry.content_type,
        "token_count": info.token_count,
        "priority": entry.priority.value,
        "markers": markers.of(entry),
        "refs": names.get(entry.commit_hash, []),
        "parent_hash": entry.parent_hash,
        "merge_parent": entry.merge_parent,
        "response_to": entry.response_to,
        "replaces": list(info.compression.replaced) if info.compression is not None else None,
        "message": info.message,
        "text": content_text(info.content),
        "generation_config": info.generation_config,
        "metadata": info.metadata,
    }

"""Branches and merges drawn as `git log --graph` draws them, from commits newest first.

Each commit gets a lane (a column two characters wide): `*` marks the commit in
its lane and `|` every other open lane. Below a commit, lines lead its lanes to
where they go next: `\\` to a merge's second parent (or a lane pushed right),
`/` where two lanes meet again at a common parent (or a lane moves left), one
column per line, so several lines may follow one commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GraphRow:
    """The drawing for one commit: its own line's lanes, then the lines that lead to the next."""

    commit: str
    lanes: str
    after: tuple[str, ...]


def draw(commits: Sequence[tuple[str, Sequence[str]]]) -> list[GraphRow]:
    """Rows for `commits`, (hash, parent hashes: first parent first) newest first, every commit
    after all its children. A parent not in `commits` ends its lane where it would be drawn."""
    lanes: list[str] = []
    rows: list[GraphRow] = []
    for commit, parents in commits:
        if commit not in lanes:
            lanes.append(commit)
        at = lanes.index(commit)
        line = " ".join("*" if index == at else "|" for index in range(len(lanes)))
        lanes, after = _step(lanes, at, list(dict.fromkeys(parents)))
        rows.append(GraphRow(commit, line, tuple(after)))
    return rows


def _step(lanes: list[str], at: int, parents: list[str]) -> tuple[list[str], list[str]]:
    """The lanes after the commit in lane `at` is replaced by its parents, and the lines drawn
    on the way. Every edge (a lane going on, or the commit to one parent) starts in a column and
    ends in the column its commit takes next; the lines move each edge one column per line. The
    first parent takes the commit's lane; a merged parent not already in a lane gets a new one
    to its right."""
    first, merged = parents[:1], parents[1:]
    open_elsewhere = {lane for index, lane in enumerate(lanes) if index != at} | set(first)
    wanted = lanes[:at] + first + [parent for parent in merged if parent not in open_elsewhere] + lanes[at + 1 :]
    settled = list(dict.fromkeys(wanted))  # lanes that meet again keep the leftmost column
    column = {lane: index for index, lane in enumerate(settled)}
    edges = [(index, column[lane]) for index, lane in enumerate(lanes) if index != at]
    edges += [(at, column[parent]) for parent in parents]
    return settled, _lines(edges)


def _lines(edges: list[tuple[int, int]]) -> list[str]:
    """The lines that take every edge from its start column to its end column, one step a line."""
    positions = [start for start, _ in edges]
    lines: list[str] = []
    while any(position != end for position, (_, end) in zip(positions, edges, strict=True)):
        cells: dict[int, str] = {}
        for number, (position, (_, end)) in enumerate(zip(positions, edges, strict=True)):
            if position == end:
                cells.setdefault(2 * position, "|")
            elif position < end:
                cells[2 * position + 1] = "\\"
                positions[number] = position + 1
            else:
                cells[2 * position - 1] = "/"
                positions[number] = position - 1
        lines.append("".join(cells.get(index, " ") for index in range(max(cells) + 1)))
    return lines

"""The commits of a commit view, one row each, in columns: what a tract costs in memory once opened.

An opened tract of 300,000 commits should cost a few hundred bytes per commit,
so a commit owns no Python object: everything is a column. Its hash is 32
bytes of one bytearray, found through an open-addressing table of row
numbers (a dict would cost a key and a value object per commit, about a
hundred bytes more); parents, merge parents and edit targets are row
numbers, record numbers and times integers, the (tract, operation, content
type, branch) of a commit one of a few shared tuples, and the chain hash of
the commit's record is remembered when it is read, so that its content, read
back later, is known to be what was folded.

Payloads, token counts, configs, metadata and messages stay in the log: the
facade reads them by the record's number (`position`) when they are needed.
`StoredCommit` is a row made into an object for the code that wants one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from events import CommitCreated

NO_ROW = -1
UNKNOWN_HASH = bytes(32)
"""The record hash of a commit folded without one (a plain `Record`): its record is then read back
chained to the record before it instead."""


class Kind(NamedTuple):
    """The small fields a commit shares with many others: one tuple per combination."""

    tract_id: str
    operation: str
    content_type: str
    branch: str


class Overridden(NamedTuple):
    """What a merge set aside: edits and compressions (commit hashes) and annotations (record numbers)."""

    edits: tuple[Any, ...]
    annotations: tuple[Any, ...]


class Compressed(NamedTuple):
    """The rows a compress commit replaces and preserves, in the order it names them."""

    replaces: tuple[int, ...]
    preserves: tuple[int, ...]


class StoredCommit(msgspec.Struct, frozen=True, gc=False):
    """A commit as the view holds it: everything but what stays in the log (payload, token count,
    config, metadata, message), which `CommitView.event` reads."""

    row: int
    position: int
    """The record's number in its tract."""
    commit_hash: str
    tract_id: str
    operation: str
    content_type: str
    branch: str
    parent_hash: str | None
    merge_parent: str | None
    response_to: str | None
    created_at: datetime


def digest_of(commit_hash: str) -> bytes | None:
    """The 32 bytes of a lowercase SHA-256 hex digest (as the writer makes every commit hash), else None."""
    if len(commit_hash) == 64:
        try:
            digest = bytes.fromhex(commit_hash)
        except ValueError:
            return None
        if digest.hex() == commit_hash:  # 32 bytes, spelled as the writer spells them
            return digest
    return None


class CommitTable(Mapping[str, StoredCommit]):
    """Every commit folded so far, found by hash (`row`) and read by row."""

    def __init__(self, capacity: int = 0) -> None:
        """`capacity`: how many commits to make room for at once (more only cost a regrowth)."""
        self._digests = bytearray()
        """32 bytes per row: the commit hash (all zeros for one of `_odd`)."""
        self._slots = array("i", [NO_ROW]) * _table_size(capacity)
        """Rows by `hash(digest)`, linearly probed, at most half full."""
        self._odd: dict[str, int] = {}
        """Rows of the hashes that are no SHA-256 hex digest (only a foreign or forged log holds one)."""
        self._odd_rows: dict[int, str] = {}
        self._distinct = 0
        self.parents = array("i")
        self.merge_parents = array("i")
        self.targets = array("i")
        """The row each edit (or reply) responds to."""
        self.positions = array("q")
        self._times: list[datetime] = []
        """created_at, as decoded (kept rather than packed into 8 bytes: converting costs every open
        about a fifth of a microsecond per commit, keeping them about 48 bytes per commit)."""
        self._kinds = array("I")
        self._kind_list: list[Kind] = []
        self._kind_ids: dict[tuple[str, str, str, str], int] = {}
        self._hashes = bytearray()
        self._overridden: dict[int, Overridden] = {}
        self._compressed: dict[int, Compressed] = {}
        self._replaced_by: dict[int, list[int]] = {}
        """The compress commits replacing each replaced row (rows)."""
        self._last: tuple[str, int] = ("", NO_ROW)
        """The hash (as the log spelled it) and row of the newest commit: most commits' parent."""

    # -- adding --------------------------------------------------------------

    def add(self, event: CommitCreated, position: int, record_hash: bytes | None) -> int:
        """Take in a commit whose refs hold; returns its row. (It runs for every commit folded: locals
        and inlined lookups keep it short.)"""
        row = len(self.positions)
        newest, newest_row = self._last
        parent, merged, target = event.parent_hash, event.merge_parent, event.response_to
        self.parents.append(NO_ROW if parent is None else newest_row if parent == newest else self.row(parent))
        self.merge_parents.append(NO_ROW if merged is None else self.row(merged))
        self.targets.append(NO_ROW if target is None else self.row(target))
        self.positions.append(position)
        self._times.append(event.created_at)
        shape = (event.tract_id, event.operation, event.content_type, event.branch)
        kind = self._kind_ids.get(shape)
        if kind is None:
            kind = self._kind_ids[shape] = len(self._kind_list)
            self._kind_list.append(Kind(*shape))
        self._kinds.append(kind)
        self._hashes += record_hash if record_hash is not None else UNKNOWN_HASH
        if shape[1] == "merge":
            content = event.content
            self._overridden[row] = Overridden(
                tuple(content.get("overridden_edits", ())), tuple(content.get("overridden_annotations", ()))
            )
        elif event.operation == "compress":
            self._add_compression(event, row)
        commit_hash = event.commit_hash
        self._last = (commit_hash, row)
        try:  # (digest_of, inlined)
            digest: bytes | None = bytes.fromhex(commit_hash) if len(commit_hash) == 64 else None
        except ValueError:
            digest = None
        if digest is None or digest.hex() != commit_hash:
            self._distinct += commit_hash not in self._odd
            self._odd[commit_hash] = row
            self._odd_rows[row] = commit_hash
            self._digests += UNKNOWN_HASH
            return row
        digests = self._digests
        digests += digest
        slots = self._slots
        if 2 * (self._distinct + 1) > len(slots):
            self._grow()
            slots = self._slots
        mask = len(slots) - 1
        index = hash(digest) & mask
        while (found := slots[index]) != NO_ROW:
            if digests.startswith(digest, 32 * found):  # folded again: the newest row answers
                slots[index] = row
                return row
            index = (index + 1) & mask
        slots[index] = row
        self._distinct += 1
        return row

    def _add_compression(self, event: CommitCreated, row: int) -> None:
        compression = event.compression
        assert not isinstance(compression, msgspec.UnsetType)  # (checked before a commit is folded)
        replaces = tuple(self.row(commit_hash) for commit_hash in compression.replaces)
        self._compressed[row] = Compressed(
            replaces, tuple(self.row(commit_hash) for commit_hash in compression.preserves)
        )
        for replaced in replaces:
            self._replaced_by.setdefault(replaced, []).append(row)

    def _grow(self) -> None:
        """Twice the slots, every row placed again."""
        size = 2 * len(self._slots)
        slots, digests, mask = array("i", [NO_ROW]) * size, self._digests, size - 1
        for row in self._slots:
            if row != NO_ROW:
                index = hash(bytes(digests[32 * row : 32 * row + 32])) & mask
                while slots[index] != NO_ROW:
                    index = (index + 1) & mask
                slots[index] = row
        self._slots = slots

    def remember_hash(self, row: int, record_hash: bytes) -> None:
        """The chain hash of the row's record, learnt after it was folded (once it was written)."""
        self._hashes[32 * row : 32 * row + 32] = record_hash

    # -- finding -------------------------------------------------------------

    def row(self, commit_hash: str) -> int:
        """The row of the commit, or `NO_ROW`."""
        newest, row = self._last
        if commit_hash == newest:
            return row
        digest = digest_of(commit_hash)
        if digest is None:
            return self._odd.get(commit_hash, NO_ROW)
        slots, digests, mask = self._slots, self._digests, len(self._slots) - 1
        index = hash(digest) & mask
        while (row := slots[index]) != NO_ROW:
            if digests.startswith(digest, 32 * row):
                return row
            index = (index + 1) & mask
        return NO_ROW

    def starting_with(self, prefix: str) -> list[str]:
        """Every hash (once) that starts with `prefix`, found by a scan of the hash column."""
        matches = [commit_hash for commit_hash in self._odd if commit_hash.startswith(prefix)]
        even = prefix[: len(prefix) // 2 * 2]
        if not even or digest_of(even.ljust(64, "0")) is None:  # no lowercase hex digest starts so
            return matches
        needle, digests = bytes.fromhex(even), self._digests
        at = digests.find(needle)
        while at != -1:
            if at % 32 == 0:
                commit_hash = self.hash(at // 32)
                if commit_hash.startswith(prefix) and self.row(commit_hash) == at // 32:
                    matches.append(commit_hash)
            at = digests.find(needle, at + 1)
        return matches

    @property
    def rows(self) -> int:
        """Rows taken (a hash folded twice, which only a forged log holds, takes two)."""
        return len(self.positions)

    # -- reading a row -------------------------------------------------------

    def hash(self, row: int) -> str:
        odd = self._odd_rows.get(row) if self._odd_rows else None
        return odd if odd is not None else self._digests[32 * row : 32 * row + 32].hex()

    def hash_or_none(self, row: int) -> str | None:
        return None if row == NO_ROW else self.hash(row)

    def kind(self, row: int) -> Kind:
        return self._kind_list[self._kinds[row]]

    def created_at(self, row: int) -> datetime:
        return self._times[row]

    def record_hash(self, row: int) -> bytes | None:
        """The chain hash the row's record had when it was read, if known."""
        digest = bytes(self._hashes[32 * row : 32 * row + 32])
        return None if digest == UNKNOWN_HASH else digest

    def overridden(self, row: int) -> Overridden | None:
        """What the merge at `row` set aside (None for every other commit)."""
        return self._overridden.get(row)

    def compressed(self, row: int) -> Compressed | None:
        """What the compress commit at `row` replaces and preserves (None for every other commit)."""
        return self._compressed.get(row)

    def replaced_by(self, row: int) -> list[int]:
        """The compress commits (rows) that replace the commit at `row`, oldest first."""
        return self._replaced_by.get(row, [])

    def entry(self, row: int) -> StoredCommit:
        kind = self._kind_list[self._kinds[row]]
        return StoredCommit(
            row,
            self.positions[row],
            self.hash(row),
            kind.tract_id,
            kind.operation,
            kind.content_type,
            kind.branch,
            self.hash_or_none(self.parents[row]),
            self.hash_or_none(self.merge_parents[row]),
            self.hash_or_none(self.targets[row]),
            self.created_at(row),
        )

    # -- the mapping (hash -> StoredCommit) ------------------------------------

    def __getitem__(self, commit_hash: str) -> StoredCommit:
        row = self.row(commit_hash) if isinstance(commit_hash, str) else NO_ROW
        if row == NO_ROW:
            raise KeyError(commit_hash)
        return self.entry(row)

    def __contains__(self, commit_hash: object) -> bool:
        return isinstance(commit_hash, str) and self.row(commit_hash) != NO_ROW

    def __iter__(self) -> Iterator[str]:
        """Every hash once, in the order its newest row was folded."""
        return (self.hash(row) for row in range(self.rows) if self.row(self.hash(row)) == row)

    def __len__(self) -> int:
        return self._distinct


def _table_size(capacity: int) -> int:
    """The power of two that holds `capacity` rows at most half full."""
    size = 8
    while size < 2 * capacity:
        size *= 2
    return size

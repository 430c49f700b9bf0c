"""Prove a log whole and unaltered, or name the first record that is not.

Checks every record's framing and checksums, that it decodes, dense
positions, the hash chain, re-derives each commit's content and commit
hashes from the event's own fields, and checks that what each event says
about refs holds together (see `events.consistency`: parents, edit targets,
annotations, configs, usage, branches and HEAD name what exists in their
tract at that point). Any altered, deleted, inserted or reordered byte range
breaks one of these; a crash's torn tail is reported as such, not as
tampering. An auditor's recorded chain head (`anchor`) proves a later,
longer log only grew; an anchor that names no record of the log fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from events.consistency import RefFold, breach
from events.errors import LogCorruptError, LogFormatError
from events.framing import (
    FILE_HEADER,
    GENESIS_HASH,
    LOG_FILE,
    FrameScanner,
    check_file_header,
)
from events.hashing import expected_hashes
from events.records import decode_record
from events.storage import FileStorage, MemoryStorage
from events.types import CommitCreated

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    position: int
    kind: str
    """torn tail, bad header, bad checksum, undecodable record, position mismatch,
    broken chain, hash mismatch, unknown parent, bad edit, bad merge, unknown commit,
    unknown branch, duplicate branch, unknown tract, anchor mismatch, anchor missing"""
    detail: str
    offset: int | None = None

    def __str__(self) -> str:
        where = f"position {self.position}" + (f" (byte {self.offset})" if self.offset is not None else "")
        return f"{self.kind} at {where}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    records_checked: int
    last_position: int
    head_hash: str
    """Hex SHA-256 of the last whole record checked: write it down to prove later growth."""
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem is None:
            return (
                f"ok: {self.records_checked} records, last position {self.last_position}, chain head {self.head_hash}"
            )
        return f"FAILED: {self.problem} ({self.records_checked} records checked before it)"


def verify(
    directory: str | Path, *, anchor: tuple[int, str] | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Verify the log in `directory` without locking or writing anything."""
    path = Path(directory) / LOG_FILE
    if not path.exists():
        raise LogFormatError(f"{directory}: no tract log here (missing {LOG_FILE})")
    storage = FileStorage(path, readonly=True)
    try:
        return verify_storage(storage, anchor=anchor, progress=progress)
    finally:
        storage.close()


def verify_storage(
    storage: FileStorage | MemoryStorage, *, anchor: tuple[int, str] | None = None, progress: Progress | None = None
) -> VerifyReport:
    check_file_header(storage.read(0, FILE_HEADER.size), "log")
    walk = _Walk(anchor)
    scanner = FrameScanner(storage.read, storage.size(), FILE_HEADER.size, 1)
    try:
        for frame in scanner:
            problem = walk.check(frame.position, frame.offset, frame.record)
            if problem is not None:
                return walk.report(problem)
            if progress is not None and frame.position % 50_000 == 0:
                progress(frame.position)
    except LogCorruptError as error:
        return walk.report(Problem(error.position, error.kind, error.detail, error.offset))
    if scanner.torn is not None:
        torn = scanner.torn
        return walk.report(Problem(torn.position, "torn tail", torn.reason, torn.offset))
    if anchor is not None and not 1 <= anchor[0] <= walk.position:
        detail = f"the log holds positions 1 to {walk.position}" if walk.position else "the log holds no record"
        return walk.report(Problem(anchor[0], "anchor missing", f"no record has position {anchor[0]}: {detail}"))
    return walk.report(None)


class _Walk:
    """State carried from record to record: the chain hash and the refs seen."""

    def __init__(self, anchor: tuple[int, str] | None) -> None:
        self.anchor = anchor
        self.position = 0
        self.last_hash = GENESIS_HASH
        self.refs = RefFold()

    def check(self, position: int, offset: int, raw: memoryview) -> Problem | None:
        try:
            record = decode_record(raw[1:], position, offset)
        except LogCorruptError as error:
            return Problem(position, error.kind, error.detail, offset)
        if record.prev_hash != self.last_hash:
            return Problem(position, "broken chain", "previous-record hash does not match the record before", offset)
        event = record.event
        if isinstance(event, CommitCreated):
            problem = self._check_hashes(position, offset, event)
            if problem is not None:
                return problem
        found = breach(event, self.refs)
        if found is not None:
            return Problem(position, found[0], found[1], offset)
        self.refs.apply(event)
        record_hash = hashlib.sha256(raw).digest()
        if self.anchor is not None and self.anchor[0] == position and record_hash.hex() != self.anchor[1].lower():
            return Problem(
                position, "anchor mismatch", f"chain hash is {record_hash.hex()}, not {self.anchor[1]}", offset
            )
        self.position, self.last_hash = position, record_hash
        return None

    def _check_hashes(self, position: int, offset: int, event: CommitCreated) -> Problem | None:
        content_hash, commit_hash = expected_hashes(event)
        if content_hash != event.content_hash:
            return Problem(
                position, "hash mismatch", f"content hashes to {content_hash}, event says {event.content_hash}", offset
            )
        if commit_hash != event.commit_hash:
            return Problem(
                position, "hash mismatch", f"commit hashes to {commit_hash}, event says {event.commit_hash}", offset
            )
        return None

    def report(self, problem: Problem | None) -> VerifyReport:
        return VerifyReport(self.position, self.position, self.last_hash.hex(), problem)

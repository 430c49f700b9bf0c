"""Prove a log whole and unaltered, or name the first record that is not.

Checks every record's framing and checksums, that it decodes, that each
tract's records are numbered densely and chained (each names the hash of the
tract's record before it), re-derives each commit's content and commit hashes
from the event's own fields, and checks that what each event says about refs
holds together (see `events.consistency`: parents, edit targets, compressions, annotations,
configs, usage, branches and HEAD name what exists in their tract at that
point). Any altered, deleted, inserted or reordered record breaks one of
these, except the loss of a tract's newest records, which only an anchor
catches: an auditor's recorded chain head (tract, number, hash) proves a later
log only grew; an anchor that names no record of the log fails. A crash's
torn tail is reported as such, not as tampering.

Logs of format 1 chained the whole log as one: they are checked that way;
their anchors are (position, hash) in the whole log, as written down then,
or (tract, number, hash) as the facade names a tract's records now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from events.consistency import RefFold, breach
from events.errors import CorruptLogError, LogFormatError
from events.framing import (
    FILE_HEADER,
    FIRST_FORMAT,
    GENESIS_HASH,
    LOG_FILE,
    FrameScanner,
    check_file_header,
    record_hash,
)
from events.hashing import expected_hashes
from events.records import decode_record
from events.storage import FileStorage, MemoryStorage
from events.types import CommitCreated, Record

Progress = Callable[[int], None]
Anchor = tuple[str | None, int, str]
"""(tract id, the record's number in it, its hex hash); tract None: a whole-log position (format 1)."""


@dataclass(frozen=True)
class Problem:
    position: int
    """The record's number in `tract_id`, or its place in the whole log when `tract_id` is None."""
    kind: str
    """torn tail, bad header, bad checksum, undecodable record, position mismatch,
    broken chain, hash mismatch, unknown parent, bad edit, bad merge, bad compression, unknown commit,
    unknown branch, duplicate branch, unknown tract, anchor mismatch, anchor missing"""
    detail: str
    offset: int | None = None
    tract_id: str | None = None

    def __str__(self) -> str:
        where = f"position {self.position}" if self.tract_id is None else f"{self.tract_id} position {self.position}"
        if self.offset is not None:
            where += f" (byte {self.offset})"
        return f"{self.kind} at {where}: {self.detail}"


@dataclass(frozen=True)
class TractHead:
    """A tract's chain head: its last record's number and hash."""

    number: int
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    records_checked: int
    heads: dict[str, TractHead] = field(default_factory=dict)
    """Every tract's chain head (write one down to prove later growth), in creation order."""
    problem: Problem | None = None
    format: int = 2
    log_head: TractHead | None = None
    """Format 1 only: the whole log's chain head (its last position and hash), what its anchors name."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem is None:
            tracts = f"{len(self.heads)} tract" + ("" if len(self.heads) == 1 else "s")
            return f"ok: {self.records_checked} records in {tracts}"
        return f"FAILED: {self.problem} ({self.records_checked} records checked before it)"


def verify(directory: str | Path, *, anchor: Anchor | None = None, progress: Progress | None = None) -> VerifyReport:
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
    storage: FileStorage | MemoryStorage, *, anchor: Anchor | None = None, progress: Progress | None = None
) -> VerifyReport:
    version = check_file_header(storage.read(0, FILE_HEADER.size), "log")
    walk = RecordWalk(anchor, version)
    scanner = FrameScanner(storage.read, storage.size(), FILE_HEADER.size, 1)
    try:
        for frame in scanner:
            problem = walk.check(frame.position, frame.offset, frame.record)
            if problem is not None:
                return walk.report(problem)
            if progress is not None and frame.position % 50_000 == 0:
                progress(frame.position)
    except CorruptLogError as error:
        return walk.report(Problem(error.position, error.kind, error.detail, error.offset))
    if scanner.torn is not None:
        torn = scanner.torn
        return walk.report(Problem(torn.position, "torn tail", torn.reason, torn.offset))
    return walk.report(walk.missing_anchor())


class RecordWalk:
    """State carried from record to record: each tract's count and chain hash, and the refs seen."""

    def __init__(self, anchor: Anchor | None, version: int) -> None:
        self.anchor = anchor
        self.version = version
        self.records = 0
        self.global_hash = GENESIS_HASH
        self.heads: dict[str, tuple[int, bytes]] = {}
        self.anchor_seen = False
        self.refs = RefFold()

    def check(self, position: int, offset: int | None, raw: memoryview) -> Problem | None:
        try:
            record = decode_record(raw[1:], position, offset)
        except CorruptLogError as error:
            return Problem(position, error.kind, error.detail, offset)
        tract_id = record.event.tract_id
        count, last_hash = self.heads.get(tract_id, (0, GENESIS_HASH))
        number = count + 1
        digest = record_hash(raw, self.version)
        if self.version == FIRST_FORMAT:
            problem = self._whole_log_chain(record, position, offset)
            anchored: tuple[tuple[str | None, int], ...] = ((None, position), (tract_id, number))
        else:
            problem = self._tract_chain(record, tract_id, number, last_hash, offset)
            anchored = ((tract_id, number),)
        if problem is not None:
            return problem
        event = record.event
        where = (position, offset, None) if self.version == FIRST_FORMAT else (number, offset, tract_id)
        if isinstance(event, CommitCreated):
            problem = _check_hashes(event, *where)
            if problem is not None:
                return problem
        found = breach(event, self.refs)
        if found is not None:
            return Problem(where[0], found[0], found[1], offset, where[2])
        self.refs.apply(event)
        if self.anchor is not None and self.anchor[:2] in anchored:
            self.anchor_seen = True
            if digest.hex() != self.anchor[2].lower():
                return Problem(
                    where[0], "anchor mismatch", f"chain hash is {digest.hex()}, not {self.anchor[2]}", offset, where[2]
                )
        self.records += 1
        self.heads[tract_id] = (number, digest)
        self.global_hash = digest
        return None

    def _whole_log_chain(self, record: Record, position: int, offset: int | None) -> Problem | None:
        if record.number != position:
            return Problem(position, "position mismatch", f"record says position {record.number}", offset)
        if record.prev_hash != self.global_hash:
            return Problem(position, "broken chain", "previous-record hash does not match the record before", offset)
        return None

    def _tract_chain(
        self, record: Record, tract_id: str, number: int, last_hash: bytes, offset: int | None
    ) -> Problem | None:
        if record.number != number:
            detail = f"record says position {record.number}, but it is the tract's record {number}"
            return Problem(number, "position mismatch", detail, offset, tract_id)
        if record.prev_hash != last_hash:
            detail = "previous-record hash does not match the tract's record before"
            return Problem(number, "broken chain", detail, offset, tract_id)
        return None

    def missing_anchor(self) -> Problem | None:
        if self.anchor is None or self.anchor_seen:
            return None
        tract_id, number, _ = self.anchor
        if tract_id is None:
            detail = f"the log holds positions 1 to {self.records}" if self.records else "the log holds no record"
            return Problem(number, "anchor missing", f"no record has position {number}: {detail}")
        count = self.heads.get(tract_id, (0, b""))[0]
        held = f"the tract holds positions 1 to {count}" if count else "the log holds no record of the tract"
        return Problem(
            number, "anchor missing", f"no record of {tract_id} has position {number}: {held}", None, tract_id
        )

    def report(self, problem: Problem | None) -> VerifyReport:
        heads = {tract_id: TractHead(number, digest.hex()) for tract_id, (number, digest) in self.heads.items()}
        log_head = TractHead(self.records, self.global_hash.hex()) if self.version == FIRST_FORMAT else None
        return VerifyReport(self.records, heads, problem, self.version, log_head)


def _check_hashes(event: CommitCreated, position: int, offset: int | None, tract_id: str | None) -> Problem | None:
    content_hash, commit_hash = expected_hashes(event)
    if content_hash != event.content_hash:
        detail = f"content hashes to {content_hash}, event says {event.content_hash}"
        return Problem(position, "hash mismatch", detail, offset, tract_id)
    if commit_hash != event.commit_hash:
        detail = f"commit hashes to {commit_hash}, event says {event.commit_hash}"
        return Problem(position, "hash mismatch", detail, offset, tract_id)
    return None

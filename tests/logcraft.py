"""Crafting logs a forger could write: valid framing and checksums around bad bytes, or
valid framing, chain and commit hashes around events that do not hold together."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from events import (
    LOG_FILE,
    CommitCreated,
    Event,
    EventLog,
    TractCreated,
    sealed_commit,
)
from events.framing import FLAG_BATCH_END, FRAME_HEADER, seal_frame

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def framed(body: bytes, *, batch_end: bool = True) -> bytes:
    """One frame around a record body, with the flags byte and both checksums right."""
    out = bytearray(FRAME_HEADER.size)
    out.append(FLAG_BATCH_END if batch_end else 0)
    out += body
    seal_frame(out, 0)
    return bytes(out)


def encoded(position: int, prev_hash: bytes, event: Any) -> bytes:
    """A record body as the log encodes it (`event` may be a struct or a hand-made dict)."""
    return msgspec.msgpack.encode([position, prev_hash, event])


def frames(directory: Path) -> list[tuple[int, int, bytes]]:
    """(offset, end, record bytes with the flags byte) of every whole record, position 1 first."""
    log = EventLog.open(directory, readonly=True)
    try:
        return [(frame.offset, frame.end, bytes(frame.record)) for frame in log.frames()]
    finally:
        log.close()


def record_hash(directory: Path, position: int) -> bytes:
    """The chain hash of the record at `position` (what the next record names as its previous)."""
    return hashlib.sha256(frames(directory)[position - 1][2]).digest()


def append_bytes(directory: Path, data: bytes) -> None:
    with open(directory / LOG_FILE, "ab") as handle:
        handle.write(data)


def replace_record(directory: Path, position: int, body: bytes) -> None:
    """Put a validly framed `body` where the record at `position` was (the rest of the file untouched)."""
    offset, end, _ = frames(directory)[position - 1]
    path = directory / LOG_FILE
    data = path.read_bytes()
    path.write_bytes(data[:offset] + framed(body) + data[end:])


class Forger:
    """Appends events with the log's own `append` (so framing and chain are right) and seals
    every commit (so its hashes are right), whatever the events say."""

    def __init__(self, directory: Path) -> None:
        self.log = EventLog.open(directory)
        self.clock = START

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def append(self, *events: Event) -> int:
        return self.log.append(list(events))

    def tract(self, tract_id: str) -> int:
        return self.append(TractCreated(tract_id=tract_id, created_at=self.now()))

    def commit_event(
        self,
        tract_id: str,
        text: str,
        parent: str | None,
        *,
        operation: str = "append",
        response_to: str | None = None,
        merge_parent: str | None = None,
        content: dict[str, Any] | None = None,
        branch: str = "main",
    ) -> CommitCreated:
        return sealed_commit(
            tract_id=tract_id,
            created_at=self.now(),
            parent_hash=parent,
            content=content if content is not None else {"content_type": "dialogue", "role": "user", "text": text},
            content_type=(content or {}).get("content_type", "dialogue"),
            operation=operation,
            response_to=response_to,
            merge_parent=merge_parent,
            token_count=len(text.split()) + 1,
            tokenizer="tiktoken:o200k_base",
            branch=branch,
        )

    def commit(self, tract_id: str, text: str, parent: str | None, **fields: Any) -> str:
        event = self.commit_event(tract_id, text, parent, **fields)
        self.append(event)
        return event.commit_hash

    def close(self) -> None:
        self.log.close()

"""One way in for every backend: a log directory, or a postgresql:// URL naming a store.

`Tract.open` and every CLI command that takes a log directory go through here, so wherever a
directory is taken a store URL is too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from events.jsonl import import_jsonl, import_lines_into
from events.log import EventLog, SyncMode
from events.postgres.settings import is_store_url
from events.postgres.store import PostgresLog
from events.verify import Anchor, Progress, TractHead, VerifyReport, verify

AnyLog = EventLog | PostgresLog
"""Either backend of the storage interface."""


def open_log(location: str | Path, *, readonly: bool = False, sync: SyncMode = "always") -> AnyLog:
    """The file log in directory `location`, or the PostgreSQL store its postgresql:// URL names."""
    if is_store_url(location):
        return PostgresLog.open(str(location), readonly=readonly, sync=sync)
    return EventLog.open(location, readonly=readonly, sync=sync)


def verify_location(
    location: str | Path, *, anchor: Anchor | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Verify a log directory, or every tract of a store, without writing anything."""
    if not is_store_url(location):
        return verify(location, anchor=anchor, progress=progress)
    log = PostgresLog.open(str(location), readonly=True)
    try:
        return log.verify(anchor=anchor, progress=progress)
    finally:
        log.close()


def import_location(
    lines: Iterable[bytes], location: str | Path, progress: Progress | None = None
) -> dict[str, TractHead]:
    """Import an export into a new log directory, or into a store as one transaction (all of it or
    nothing; its tracts must be new there); returns each imported tract's chain head."""
    if not is_store_url(location):
        return import_jsonl(lines, location, progress)
    log = PostgresLog.open(str(location))
    try:
        return import_lines_into(log, lines, progress)
    finally:
        log.close()

"""Read models folded from the event log: the commit view (with its snapshots)
and the DuckDB analytics projection. Each is a disposable cache of the log."""

from projections.commit_view import (
    AnnotationEntry,
    CommitView,
    ConfigEntry,
    StoredCommit,
    UsageEntry,
    ViewState,
)
from projections.snapshot import SNAPSHOT_FILE, Snapshot, load_snapshot, save_snapshot

__all__ = [
    "SNAPSHOT_FILE",
    "AnnotationEntry",
    "CommitView",
    "ConfigEntry",
    "Snapshot",
    "StoredCommit",
    "UsageEntry",
    "ViewState",
    "load_snapshot",
    "save_snapshot",
]

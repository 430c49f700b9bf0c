"""Read models folded from the event log: the commit view of a tract and the
DuckDB analytics projection of the whole log. Each is a disposable cache of the log."""

from projections.commit_table import StoredCommit
from projections.commit_view import CommitView
from projections.view_state import AnnotationEntry, ConfigEntry, UsageEntry, ViewState

__all__ = [
    "AnnotationEntry",
    "CommitView",
    "ConfigEntry",
    "StoredCommit",
    "UsageEntry",
    "ViewState",
]

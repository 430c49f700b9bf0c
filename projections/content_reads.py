"""Reading a view's commits back whole from the log: where they come from, and a loop's read-ahead.

The commit view keeps hashes, parents and positions; payloads, configs and metadata are read
back through the `EventSource` the facade attaches (its cache over the log), checked against
the record hash remembered when the commit was folded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from events import CommitCreated

if TYPE_CHECKING:
    from projections.commit_view import CommitView


class EventSource(Protocol):
    """Where a view's commits are read back whole (the facade's cache over the log)."""

    def cached(self, position: int) -> CommitCreated | None:
        """The commit of record `position` if it is at hand (nothing is read)."""

    def commit(self, position: int, record_hash: bytes | None, commit_hash: str) -> CommitCreated:
        """The commit event of the tract's record `position`, checked to be the one folded."""

    def read(self, wanted: Sequence[tuple[int, bytes | None, str]]) -> Iterator[tuple[int, CommitCreated]]:
        """(position, commit) of these written records, read afresh and checked, in order; not kept."""


class ReadAhead:
    """The commits of a list of rows, read from the log a window at a time as a loop asks for them.

    The loop sets `index` to its place in `rows`; asking for a commit there (or anywhere, while
    the loop is past the last window read) reads the next `WINDOW` rows' records at once, but for
    the rows `spare` says the loop will not ask for (a recompile reuses most messages). A window's
    commits are held until the next one is read, not kept in the view's cache."""

    WINDOW = 256

    def __init__(self, view: CommitView, rows: Sequence[int], spare: Callable[[int], bool] | None = None) -> None:
        self._view = view
        self._rows = rows
        self._spare = spare
        self._window: dict[int, CommitCreated] = {}
        self.index = 0
        self._upto = 0

    def __call__(self, row: int) -> CommitCreated:
        if self.index >= self._upto:
            self._upto = self.index + self.WINDOW
            window = self._rows[self.index : self._upto]
            spare = self._spare
            self._window = self._view.events_at(
                window if spare is None else [ahead for ahead in window if not spare(ahead)]
            )
        event = self._window.get(row)
        return event if event is not None else self._view.event(row)

    def events(self) -> Iterator[CommitCreated]:
        """Every row's commit, in order."""
        for index, row in enumerate(self._rows):
            self.index = index
            yield self(row)

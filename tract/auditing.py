"""Auditing: the log itself, not the view folded from it: its chain head, verification, the records
a read-only tract has yet to take in, past states replayed from it, and its raw events.

Kept apart because these read the log's records and positions directly, where every other part
answers from the commit view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from events import EVENT_TYPES, Anchor, Problem, VerifyReport
from events.framing import FIRST_FORMAT
from projections import CommitView
from projections.bulk import paused_gc
from tract.arguments import text
from tract.compiler import Compiler
from tract.errors import CorruptLogError, InvalidArgumentError, storage_errors
from tract.models import ChainHead, LoggedEvent
from tract.parts import TractParts

if TYPE_CHECKING:
    from tract.tract import Tract


class Auditing(TractParts):
    """Log-level checks, replays and event reads for `Tract` (which provides what `TractParts` declares)."""

    @property
    def chain_head(self) -> ChainHead:
        """This tract's last record (position and hash): write it down, and a later
        `verify(anchor=...)` proves the tract only grew since."""
        with self._lock:
            self._check_open()
            position = self._view.state.position
            with storage_errors():
                if self._log.tract_length(self._tract_id) == position:
                    head = self._log.tract_head(self._tract_id)
                else:  # a failed refresh left the log's index ahead of this view
                    prefix = self._log.prefix(self._tract_id, position)
                    try:
                        head = prefix.tract_head(self._tract_id)
                    finally:
                        prefix.close()
            return ChainHead(tract_id=self._tract_id, position=position, hash=head.hex())

    def verify(self, *, anchor: ChainHead | tuple[int, str] | None = None) -> VerifyReport:
        """Check every record of the log (every tract): framing, checksums, decoding, each tract's
        positions and hash chain, commit hashes, and that its refs hold (see `events.verify`).
        An anchor is a `ChainHead` or (position, hash) of this tract; one that names no record
        fails the check (a format-1 log's anchors are positions in the whole log), and so does
        an anchor of this tract past what this tract, as opened, holds (for a reader, `refresh()`
        first): the log passing through it is not enough when what is served stops short of it."""
        with self._lock:
            self._check_open()
            if isinstance(anchor, ChainHead):
                checked: Anchor | None = (anchor.tract_id, anchor.position, anchor.hash)
            elif anchor is not None:
                whole_log = self._log.version == FIRST_FORMAT
                checked = (None if whole_log else self._tract_id, *anchor)
            else:
                checked = None
            with storage_errors():
                report = self._log.verify(anchor=checked)
            if report.ok and checked is not None and checked[0] == self._tract_id:
                return _served_through(report, self._tract_id, checked[1], self._view.state.position)
            return report

    def refresh(self) -> int:
        """Read-only tracts: take in what the writer appended since; returns this tract's last position.

        A record that cannot be trusted raises `CorruptLogError`; the tract then stays
        as it was before.
        """
        with self._lock:
            self._check_open()
            position = self._view.state.position
            try:
                with storage_errors(), paused_gc():
                    self._log.refresh()
                    new = list(self._log.read_hashed(self._tract_id, position + 1))
                    self._view.apply_hashed(new)
            except CorruptLogError:
                if self._view.state.position != position:  # it took in part of what it read: forget that
                    self._fold_until(position)
                raise
            return self._view.state.position

    def _fold_until(self, position: int) -> None:
        """Fold the view anew from the tract's records up to `position`."""
        view = CommitView(source=self._events, capacity=position)
        with storage_errors(), paused_gc():
            view.apply_hashed(self._log.read_hashed(self._tract_id, 1, position))
        self._events.forget_after(position)
        self._view, self._compiler = view, Compiler(view, self._registry, self._counter)

    def replay(self, until_position: int | None = None, until_time: datetime | None = None) -> Tract:
        """A read-only view of this tract as it was after one of its positions, or at a time."""
        with self._lock:
            self._check_open()
            if until_position is not None and until_time is not None:
                raise InvalidArgumentError("replay() takes until_position or until_time, not both")
            if until_position is not None and until_position < 0:
                raise InvalidArgumentError("until_position must be 0 or more")
            position = self._view.state.position if until_position is None else until_position
            if until_time is not None:
                position = self._position_at(_aware(until_time))
            with storage_errors():
                prefix = self._log.prefix(self._tract_id, position)
                view = CommitView()
                view.apply_hashed(prefix.read_hashed(self._tract_id))
            from tract.tract import Tract  # at call time: tract.tract imports this module

            return Tract(
                log=prefix,
                view=view,
                directory=self._directory,
                tract_id=self._tract_id,
                config=self._config,
                counter=self._counter,
                registry=self._registry,
            )

    def events(
        self,
        *,
        tract_id: str | None = None,
        types: str | Iterable[str] | None = None,
        from_position: int = 1,
        to_position: int | None = None,
    ) -> Iterator[LoggedEvent]:
        """A tract's events in order (this one unless `tract_id`), optionally only some types;
        positions are the tract's.

        Arguments are checked, and the range fixed, when this is called: the iterator
        then yields the log as it stood at that moment, whatever is appended meanwhile.
        """
        wanted = {types} if isinstance(types, str) else set(types) if types is not None else None
        if wanted is not None and not wanted <= set(EVENT_TYPES):
            unknown, known = sorted(wanted - set(EVENT_TYPES)), sorted(EVENT_TYPES)
            raise InvalidArgumentError(f"unknown event type(s) {unknown}; known: {known}")
        chosen = self._tract_id if tract_id is None else text(tract_id, "tract_id")
        with self._lock:
            self._check_open()
            count = self._view.state.position if chosen == self._tract_id else self._log.tract_length(chosen)
            last = count if to_position is None else min(to_position, count)
        return self._logged_events(chosen, wanted, from_position, last)

    def _logged_events(self, tract_id: str, wanted: set[str] | None, first: int, last: int) -> Iterator[LoggedEvent]:
        with storage_errors():
            for record in self._log.read_tract(tract_id, first, last):
                event = record.event
                kind = type(event).__name__
                if wanted is None or kind in wanted:
                    yield LoggedEvent(record.number, event.created_at, kind, event)

    def _position_at(self, moment: datetime) -> int:
        position = 0
        with storage_errors():
            for record in self._log.read_tract(self._tract_id, 1, self._view.state.position):
                if record.event.created_at > moment:
                    break
                position = record.number
        return position


def _served_through(report: VerifyReport, tract_id: str, position: int, served: int) -> VerifyReport:
    """The report, failed if the anchor (`position` in `tract_id`) lies past the records this tract
    serves (which only a reader behind its writer, or an index forged to hide the tract's newest
    records, can cause)."""
    if position <= served:
        return report
    detail = (
        f"the tract as opened holds positions 1 to {served}, the log {report.heads[tract_id].number}: "
        "refresh() a reader; if it still stops short, its index hides records (delete the index to rebuild it)"
    )
    return dataclasses.replace(report, problem=Problem(position, "anchor missing", detail, None, tract_id))


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, like every timestamp in the log."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)

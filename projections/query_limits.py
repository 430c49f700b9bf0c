"""What bounds one analytics query: a time limit, and what its failures are called.

DuckDB has no statement timeout, so a timer thread calls the connection's
`interrupt()` when the time is up; the query then fails with DuckDB's
InterruptException and the connection stays usable. The same interrupt stops
a query when the projection is closed under it. DuckDB forgets an interrupt that
arrives before the query starts executing, so it is repeated until the query ends.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from events.errors import StorageError, TractError

if TYPE_CHECKING:
    import duckdb


class AnalyticsError(TractError):
    """A refused or failed analytics query."""


class AnalyticsStorageError(AnalyticsError, StorageError):
    """The analytics database or the disk under it failed: not the query's fault."""


class AnalyticsClosedError(AnalyticsError):
    """The projection was closed before or while the query ran."""


class QueryTimer:
    """Interrupts the connection's query after `seconds`, or when `stop()` is called, but only
    while the query runs: a later statement on the connection (the ROLLBACK) is never hit."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self._con = con
        self._seconds = seconds
        self._guard = threading.Lock()
        self._state = "waiting"
        self._timer = threading.Timer(seconds, self.stop, args=(False,))
        self._timer.daemon = True
        self.stopped: AnalyticsError | None = None
        """Why the query was interrupted: the error to raise in place of DuckDB's."""

    def __enter__(self) -> QueryTimer:
        with self._guard:
            if self.stopped is not None:  # stopped before it started
                raise self.stopped
            self._state = "running"
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            self._state = "done"
        self._timer.cancel()

    def stop(self, closing: bool) -> None:
        with self._guard:
            if self._state == "done" or self.stopped is not None:
                return
            if closing:
                self.stopped = AnalyticsClosedError("the analytics projection was closed while the query ran")
            else:
                self.stopped = AnalyticsError(
                    f"query stopped after {self._seconds:g} seconds, its time limit (timeout)"
                )
        # DuckDB forgets an interrupt that comes before the query has begun executing (between the
        # timer's start and the fetch): repeat it until the query has ended.
        while True:
            with self._guard:
                if self._state != "running":
                    return
                self._con.interrupt()
            time.sleep(0.01)

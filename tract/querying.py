"""Analytics: SQL and config queries over the DuckDB projection, and exports of the log and its tables.

Kept apart because it alone loads DuckDB (on first use, so commits never do) and answers outside
the tract lock: the log range is fixed under it, then the projection catches up and answers.
A log directory's writer and readers share its `analytics.duckdb` (see `projections.analytics`):
the writer keeps it caught up, readers use it while it is current and never write it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from events import CommitCreated, LogReader
from events.jsonl import exported_records, write_jsonl
from projections.analytics import ANALYTICS_FILE, Analytics, QueryResult, duckdb_errors
from projections.bulk import paused_gc
from projections.commit_table import NO_ROW
from projections.query_limits import AnalyticsClosedError, AnalyticsError, AnalyticsStorageError
from tract.arguments import optional_text
from tract.errors import InvalidArgumentError, QueryError, TractClosedError, TractError, storage_errors
from tract.models import CommitInfo
from tract.parts import TractParts

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")
SQL_TIMEOUT = 30.0
"""Seconds a `sql()` query may run by default before it is stopped."""


class Querying(TractParts):
    """Analytics queries and exports for `Tract` (which provides the methods declared below)."""

    if TYPE_CHECKING:

        def _commit_info(self, event: CommitCreated, position: int, *, owned: bool = False) -> CommitInfo: ...

    def query_by_config(self, field: str, operator: str, value: Any) -> list[CommitInfo]:
        """This tract's commits whose effective generation config matches, oldest first.

        `field` may be a dotted path into nested configs; values compare with
        their own JSON type; a commit without the field never matches.
        Operators: = != > < >= <= in, not in.
        """
        try:
            hashes = self._analytics_query(
                lambda analytics, log: analytics.commits_where_config(log, self._tract_id, field, operator, value)
            )
        except ValueError as error:
            if isinstance(error, TractError):
                raise
            raise InvalidArgumentError(str(error)) from None
        with self._lock:
            self._check_open()
            commits = self._view.state.commits
            rows = [
                row for commit_hash in dict.fromkeys(hashes) if (row := commits.row(commit_hash)) != NO_ROW
            ]  # a replay: fewer
            with paused_gc():  # many new long-lived objects, no cycles
                events = self._view.events_at(rows, fresh=True)  # their content, in few reads, theirs alone
                positions = commits.positions
                return [self._commit_info(events[row], positions[row], owned=True) for row in rows]

    def sql(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float = SQL_TIMEOUT
    ) -> QueryResult:
        """Run one read-only SELECT over the analytics tables (all tracts of the log).

        It sees the log as it stood when called, and is stopped with `QueryError`
        once it has run `timeout` seconds; commits from other threads go on meanwhile.
        """
        seconds = _timeout(timeout)
        return self._analytics_query(lambda analytics, log: analytics.sql(log, query, params, timeout=seconds))

    def sql_relation(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float = SQL_TIMEOUT
    ) -> duckdb.DuckDBPyRelation:
        """The same query's result as a `duckdb.DuckDBPyRelation` (for `.df()`, `.arrow()`, chaining),
        on a throwaway database of its own: nothing done with it reaches the projection."""
        seconds = _timeout(timeout)
        return self._analytics_query(lambda analytics, log: analytics.relation(log, query, params, timeout=seconds))

    def _analytics_query(self, ask: Callable[[Analytics, LogReader[Any]], T]) -> T:
        """Fix the log position under the tract lock, then let the projection catch up to it and answer
        outside that lock: a slow query never holds up commits. (The reader is either backend's: `Any`
        stands for its own resume point type.)"""
        try:
            with self._lock, storage_errors(), duckdb_errors():
                analytics = self._analytics_db()
                self._log.flush()  # the projection must never record a position the log does not durably hold
                snapshot = self._log.global_reader()
            try:
                with storage_errors():
                    return ask(analytics, snapshot)
            finally:
                snapshot.close()
        except AnalyticsClosedError:
            raise TractClosedError("this tract was closed before the query finished") from None
        except AnalyticsStorageError:
            raise  # a StorageError already, naming the database
        except AnalyticsError as error:
            raise QueryError(str(error)) from None

    def export_jsonl(
        self, out: IO[bytes], *, tract_id: str | None = None, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write every record of the log (all tracts, or the one `tract_id` names) as JSON lines;
        `tract import` rebuilds it exactly, with the same chain heads."""
        with self._lock:
            self._check_open()
            with storage_errors():
                return write_jsonl(exported_records(self._log, optional_text(tract_id, "tract_id")), out, progress)

    def export_parquet(self, directory: str | Path) -> list[Path]:
        """The analytics tables (all tracts) as Parquet files in `directory`."""
        with self._lock:
            self._check_open()
            with storage_errors():
                self._log.flush()  # a writer's export catches the shared file up: only to what is durable
                analytics = Analytics(self._analytics_path(), readonly=self._analytics_readonly(), file_access=True)
                reader: LogReader[Any] = self._log.global_reader()  # either backend's: Any is its resume point
                try:
                    return analytics.export_parquet(reader, Path(directory))
                finally:
                    reader.close()
                    analytics.close()

    def _analytics_db(self) -> Analytics:
        """The analytics projection, opened on first use (so commits never load DuckDB)."""
        self._check_open()
        if self._analytics is None:
            self._analytics = Analytics(self._analytics_path(), readonly=self._analytics_readonly())
        return self._analytics

    def _analytics_path(self) -> Path | None:
        """The analytics database: in `analytics_dir` if given (a store's local cache), else the log
        directory's shared one (None: in memory, for an in-memory tract or a replay of a store).
        A cache directory is made when first needed, private to the user."""
        if self._analytics_dir is not None:
            self._analytics_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return self._analytics_dir / ANALYTICS_FILE
        return None if self._directory is None else self._directory / ANALYTICS_FILE

    def _analytics_readonly(self) -> bool:
        """A log directory's reader never writes its analytics file; a cache directory of our own is
        ours to keep caught up, whatever the store lets this role do."""
        return self._log.readonly and self._analytics_dir is None


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= threading.TIMEOUT_MAX:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, not {value!r}")
    return float(value)

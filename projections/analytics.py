"""The DuckDB analytics projection: commits, configs, usage and annotations as tables.

It is a cache of the log like the commit view. It records the cursor of the
last log record it has applied (opaque here: the log's own) and is caught up
from there, in log order, before every query, as one transaction, so a crash
mid-load leaves the previous state. The new rows reach DuckDB as JSON lines,
read in one statement per table (`analytics_schema.load_rows`). Nothing on the
commit path touches it: `duckdb` is imported only when analytics are first
used. The tables and the rows each event becomes are in `analytics_schema`;
DuckDB's connection, the file and its lock in `analytics_files`.

One file, `analytics.duckdb` in the log directory, serves the log's writer and
its readers in any number of processes. Nobody keeps it open (DuckDB lets one
process write a file or several read it, never both):

- The writer attaches it read-only to answer while it is current, and
  read-write only to catch it up (then detaches, which checkpoints the file).
  A file another process holds is tried again for 2 s (`analytics_files.LOCK_WAIT`), then
  reported (`AnalyticsStorageError`, the file kept).
- A reader never writes it. While its cursor is the reader's log end, the
  reader queries the file itself. When it is behind, the reader copies it into
  memory and catches up only the tail there; when it is missing, of another
  schema or log, ahead of the reader's log, damaged, or held by the writer for
  longer than `LOCK_WAIT`, the reader builds its own copy from the log in
  memory. Either way the copy is the reader's from then on (caught up on later
  queries), and every answer is the log's.

A damaged writer's file (unreadable, cut short, from another log) is reported
with a warning and rebuilt from the log. A disk that cannot be written (full,
failing, read-only) or a database another process holds is not damage: it
raises `AnalyticsStorageError` and the file is kept. The recorded cursor never
runs ahead of what the log holds durably: callers hand in a reader taken after
the log was synced.

User SQL runs with file access and extension loading disabled, must be a
single read-only SELECT over the projection's own tables (see `readonly_sql`),
executes in a transaction that is rolled back, and is interrupted at its time
limit (see `query_limits`). Catch-ups and queries take turns on a lock of
their own and get the log as a fixed snapshot, so nothing here waits for or
holds up the writer. DuckDB spills to a private scratch directory, never the
log directory.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from events import LogReader
from projections.analytics_files import (
    ANALYTICS_FILE,
    FILE_CATALOG,
    PRIVATE_CATALOG,
    attach,
    connect,
    database_files,
    detach,
    discard_files,
    duckdb_errors,
    is_damage,
    is_failure,
    is_held,
    is_storage_failure,
)
from projections.analytics_schema import EXPORTED, RELATIONS, SCHEMA_VERSION, load_rows, load_state, reset, save_state
from projections.bulk import paused_gc
from projections.config_query import config_predicate
from projections.query_limits import AnalyticsClosedError, AnalyticsError, AnalyticsStorageError, QueryTimer
from projections.query_result import QueryResult, as_relation
from projections.readonly_sql import NotReadOnly, check_read_only, first_line

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ANALYTICS_FILE",
    "SCHEMA_VERSION",
    "Analytics",
    "AnalyticsClosedError",
    "AnalyticsError",
    "AnalyticsStorageError",
    "QueryResult",
    "duckdb_errors",
]

T = TypeVar("T")
Resume = TypeVar("Resume")
"""The backend's resume point (see `events.LogReader`): opaque here, handed back as it came."""


class Analytics:
    """The analytics projection of one log: its shared file (`path`), or a database in memory (no path)."""

    def __init__(self, path: Path | None, *, readonly: bool = False, file_access: bool = False) -> None:
        """`readonly`: never write the file (a reader of the log). `file_access` lets the connection
        write files (only for `export_parquet`)."""
        # The directory's real path: DuckDB tells two attachments of one file apart by its name.
        self._path = None if path is None else Path(path).parent.resolve() / Path(path).name
        self._readonly = readonly
        self._file_access = file_access
        self._scratch = tempfile.TemporaryDirectory(prefix="tract-analytics-")
        self._lock = threading.Lock()
        """One catch-up or query at a time on the connection; commits never take it."""
        self._timer: QueryTimer | None = None
        self._closed = False
        self._con: duckdb.DuckDBPyConnection | None = None
        self._private = path is None
        """The projection is in the connection's own memory (an in-memory tract's, a reader's copy)."""
        self._cursor: bytes | None = None
        """The cursor of the database being caught up."""
        self._answered_to = 0
        """The end (byte offset) of the latest log reader the projection was caught up with: the private
        database holds that much, and so does the writer's file."""
        try:
            with self._storage_failures():
                self._connect()
        except BaseException:
            self._scratch.cleanup()
            raise

    # -- the connection ------------------------------------------------------

    def _connect(self) -> None:
        files = [] if self._path is None else database_files(self._path)
        self._con = connect(Path(self._scratch.name), files, file_access=self._file_access)

    def _disconnect(self) -> None:
        """Close the connection (which discards whatever it had not committed); the next use reconnects.
        A private projection goes with it: an in-memory one starts empty again, a reader looks at the file again."""
        if self._con is not None:
            con, self._con = self._con, None
            con.close()
        self._private = self._path is None
        self._cursor = None
        if self._private or self._readonly:
            self._answered_to = 0

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        assert self._con is not None, "used while disconnected"
        return self._con

    @contextmanager
    def _storage_failures(self) -> Iterator[None]:
        """DuckDB's reports of a disk that failed, or of a file someone else holds, become
        `AnalyticsStorageError`. DuckDB may have given up on the database after such a failure,
        so the connection is dropped and made anew on next use (the file keeps what was committed)."""
        try:
            yield
        except Exception as error:
            if not is_storage_failure(error):
                raise
            self._disconnect()
            held = "held by another process or projection: " if is_held(error) else ""
            raise AnalyticsStorageError(f"{self._path or 'analytics'}: {held}{first_line(error)}") from error

    @contextmanager
    def _attached(self, *, writable: bool) -> Iterator[None]:
        """The file as the current database for the block; detached after, whatever happens."""
        assert self._path is not None
        attach(self._db, self._path, writable=writable, closed=lambda: self._closed)
        try:
            yield
        except BaseException:
            self._detach_quietly()
            raise
        detach(self._db)

    def _detach_quietly(self) -> None:
        """Detach after a failure that is what the caller must hear about; a detach that fails too
        leaves a connection not worth keeping."""
        if self._con is None:  # the failure dropped the connection, and the file with it
            return
        try:
            detach(self._con)
        except Exception:  # noqa: BLE001 (whatever it is, the connection goes)
            self._disconnect()

    # -- answering -----------------------------------------------------------

    def _answer(self, log: LogReader[Resume], action: Callable[[], T]) -> T:
        """Catch up with `log` and run `action` under the projection's own lock; DuckDB errors that mean
        the database or its disk failed come out as AnalyticsStorageError, never raw."""
        with self._lock, duckdb_errors(), self._storage_failures():
            if self._closed:
                raise AnalyticsClosedError("the analytics projection is closed")
            if self._con is None:
                self._connect()
            if not self._private and self._readonly:
                return self._answer_as_reader(log, action)
            if not self._private:
                return self._answer_as_writer(log, action)
            return self._answer_privately(log, action)

    def _answer_privately(self, log: LogReader[Resume], action: Callable[[], T]) -> T:
        if log.until.end >= self._answered_to:
            # (Else a query with a later reader got here first: the projection holds all this one asks for.)
            self._catch_up(log)
            self._answered_to = log.until.end
        return action()

    def _answer_as_writer(self, log: LogReader[Resume], action: Callable[[], T]) -> T:
        """Answer from the file, caught up first; a damaged file is rebuilt from the log, once."""
        assert self._path is not None  # (a projection without a file is private)
        try:
            return self._writer_turn(log, action)
        except Exception as error:
            if not self._is_damage(error):
                raise
            self._warn(error, "rebuilding it from the log")
            self._disconnect()
            discard_files(self._path)
            self._connect()
            self._answered_to = 0  # the file holds nothing now
        return self._writer_turn(log, action)

    def _writer_turn(self, log: LogReader[Resume], action: Callable[[], T]) -> T:
        """Read-only while the file is current; read-write only for the catch-up."""
        assert self._path is not None
        older = log.until.end < self._answered_to  # a query with a later reader caught the file up already
        grown = 0 < self._answered_to < log.until.end  # this writer's file is behind its log: straight to the catch-up
        if not grown and any(file.exists() for file in database_files(self._path)):
            with self._attached(writable=False):
                if older or load_state(self._db) == log.cursor:
                    if not older:
                        self._answered_to = log.until.end
                    return action()
        with self._attached(writable=True):
            self._cursor = load_state(self._db)
            self._catch_up(log)
        self._answered_to = log.until.end
        with self._attached(writable=False):
            return action()

    def _answer_as_reader(self, log: LogReader[Resume], action: Callable[[], T]) -> T:
        """Answer from the file while it is current; else from a private copy (see the module's docstring)."""
        if self._use_file(log):
            try:
                answer = action()
            except Exception as error:
                self._detach_quietly()
                if not self._is_damage(error):
                    raise
                self._warn(error, "answering from the log in memory")
                self._go_private(copied=None)
            else:
                self._detach_quietly()
                return answer
        return self._answer_privately(log, action)

    def _use_file(self, log: LogReader[Resume]) -> bool:
        """Attach the file if it is current for `log` (True), or copy it into memory if it is behind,
        or give it up (False: the projection is private from now on)."""
        assert self._path is not None
        if not any(file.exists() for file in database_files(self._path)):
            self._go_private(copied=None)
            return False
        try:
            attach(self._db, self._path, writable=False, closed=lambda: self._closed)
        except AnalyticsClosedError:
            raise
        except Exception as error:  # noqa: BLE001 (a reader can always answer from the log)
            if not is_held(error):  # held for long: the writer is catching up a long tail; not worth a word
                self._warn(error, "answering from the log in memory")
            self._go_private(copied=None)
            return False
        copied = None
        try:
            cursor = load_state(self._db)
            if cursor is not None and cursor == log.cursor:
                return True
            if cursor is not None and log.resume_point(cursor) is not None:
                self._db.execute(f"COPY FROM DATABASE {FILE_CATALOG} TO {PRIVATE_CATALOG}")
                copied = cursor
            # Else: of another schema or log, or ahead of this reader's log (a writer caught it up since).
        except Exception as error:  # noqa: BLE001 (a reader can always answer from the log)
            self._warn(error, "answering from the log in memory")
            copied = None
        self._detach_quietly()
        self._go_private(copied=copied)
        return False

    def _go_private(self, copied: bytes | None) -> None:
        """From now on the projection is the connection's own, holding the file's `copied` state (None:
        nothing, or a failed copy's leftovers, which the catch-up replaces)."""
        if self._con is None:  # the connection went with the file: start afresh
            self._connect()
            copied = None
        self._private = True
        self._cursor = copied
        self._answered_to = 0

    def _is_damage(self, error: BaseException) -> bool:
        return self._path is not None and is_damage(error)

    def _warn(self, error: BaseException, remedy: str) -> None:
        warnings.warn(
            f"{self._path}: damaged or unusable analytics database ({first_line(error)}); {remedy}",
            RuntimeWarning,
            stacklevel=6,
        )

    # -- catching up ---------------------------------------------------------

    def catch_up(self, log: LogReader[Resume]) -> None:
        """Apply every record the reader has beyond the projection's cursor, as one transaction."""
        self._answer(log, lambda: None)

    def _catch_up(self, log: LogReader[Resume]) -> None:
        """Bring the current database (its cursor in `_cursor`) up to `log`, as one transaction."""
        previous = self._cursor
        if previous is not None and previous == log.cursor:
            return
        after = log.resume_point(previous)
        if after is None and previous is not None and log.resume_point(log.cursor) is not None:
            warnings.warn("analytics database does not match the log; rebuilding it", RuntimeWarning, stacklevel=5)
        con = self._db
        con.execute("BEGIN TRANSACTION")
        try:
            if after is None:
                reset(con)
            with paused_gc():
                load_rows(con, Path(self._scratch.name), log.read(after) if after is not None else log.read())
            save_state(con, log.cursor)
        except BaseException:
            self._abandon_transaction()
            raise
        con.execute("COMMIT")  # a COMMIT that fails (a full disk) ends the transaction itself
        self._cursor = log.cursor

    def _abandon_transaction(self) -> None:
        """Roll back; when the failure already ended the transaction or broke the database, drop the
        connection instead (closing it discards what it had not committed)."""
        import duckdb

        try:
            self._db.execute("ROLLBACK")
        except duckdb.Error:
            self._disconnect()

    # -- querying ------------------------------------------------------------

    def commits_where_config(
        self, log: LogReader[Resume], tract_id: str, field: str, operator: str, value: Any
    ) -> list[str]:
        """Hashes of the tract's commits whose effective config matches, in creation order."""
        predicate, params = config_predicate("generation_config", field, operator, value)
        query = f"SELECT commit_hash FROM commits WHERE tract_id = ? AND {predicate} ORDER BY position"
        rows = self._answer(log, lambda: self._db.execute(query, [tract_id, *params]).fetchall())
        return [row[0] for row in rows]

    def sql(
        self, log: LogReader[Resume], query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float
    ) -> QueryResult:
        """Catch up with `log` (a snapshot that no writer extends) and run a user's query,
        interrupted after `timeout` seconds."""
        return self._answer(log, lambda: self._read(query, params, timeout))

    def _read(self, query: str, params: list[Any] | dict[str, Any] | None, timeout: float) -> QueryResult:
        """Run a checked read-only query, within its time limit, in a transaction that is always rolled back."""
        con = self._db
        self._check_read_only(query)
        con.execute("BEGIN TRANSACTION")
        timer = self._timer = QueryTimer(con, timeout)
        try:
            if self._closed:  # close() came between the lock and the timer: it may have missed the timer
                timer.stop(closing=True)
            with timer:
                relation = con.sql(query, params=params)
                return QueryResult(relation.columns, relation.fetchall(), [str(kind) for kind in relation.types])
        except Exception as error:
            if timer.stopped is not None:
                raise timer.stopped from None
            if is_failure(error):
                raise
            raise AnalyticsError(first_line(error)) from None
        finally:
            self._timer = None
            con.execute("ROLLBACK")

    def relation(
        self, log: LogReader[Resume], query: str, params: list[Any] | dict[str, Any] | None = None, *, timeout: float
    ) -> duckdb.DuckDBPyRelation:
        """The query's result as a relation on a throwaway in-memory database of its own,
        so nothing done with the relation can reach the projection."""
        return as_relation(self.sql(log, query, params, timeout=timeout))

    def _check_read_only(self, query: str) -> None:
        try:
            check_read_only(self._db, query, RELATIONS)
        except NotReadOnly as error:
            raise AnalyticsError(str(error)) from None

    def export_parquet(self, log: LogReader[Resume], directory: Path) -> list[Path]:
        """Catch up with `log` and write each table as `<table>.parquet` in `directory`. The files are
        written in a hidden directory beside them and moved into place once all are complete, so a
        failure (a full disk) leaves no partial file."""
        if not self._file_access:
            raise AnalyticsError("this analytics connection was opened without file access")
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tract-export-", dir=directory))
        try:
            self._answer(log, lambda: self._export(staging))
            written = []
            for table in EXPORTED:
                target = directory / f"{table}.parquet"
                os.replace(staging / target.name, target)
                written.append(target)
            return written
        finally:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()

    def _export(self, staging: Path) -> None:
        import duckdb

        try:
            for table in EXPORTED:
                quoted = str(staging / f"{table}.parquet").replace("'", "''")
                self._db.execute(f"COPY (SELECT * FROM {table} ORDER BY position) TO '{quoted}' (FORMAT parquet)")
        except duckdb.Error as error:  # a file that cannot be written: a storage failure, not a damaged projection
            raise AnalyticsStorageError(f"{staging.parent}: {first_line(error)}") from error

    def close(self) -> None:
        """Stop the query that is running, if any (it raises AnalyticsClosedError), and close."""
        self._closed = True
        timer = self._timer
        if timer is not None:
            timer.stop(closing=True)
        with self._lock:
            self._disconnect()
            self._scratch.cleanup()

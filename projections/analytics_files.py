"""The DuckDB side of the analytics projection: one in-memory connection, the shared file attached to it
only while it is used, and what DuckDB's errors mean.

DuckDB lets one process open a database file read-write or several open it read-only, never both,
and says so at once rather than waiting. So nobody keeps `analytics.duckdb` open: the projection
attaches it (read-only to read, read-write only to write) for one catch-up or query and detaches
it after, which checkpoints what was written into the file. A file held by another process (or by
another projection in this one) is tried again for `LOCK_WAIT` seconds; then the caller decides
(a writer reports it, a reader answers from the log in memory).

The connection itself is an in-memory database that lives as long as the projection: its catalog
`memory` holds the projection when it is private (an in-memory tract, a reader's own copy), and
the file is attached beside it as `analytics`. User SQL runs with file access and extension
loading disabled; only the private scratch directory and the projection's own files stay reachable.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from events.files import check_regular
from projections.query_limits import AnalyticsClosedError, AnalyticsError, AnalyticsStorageError
from projections.readonly_sql import first_line

if TYPE_CHECKING:
    import duckdb

ANALYTICS_FILE = "analytics.duckdb"
FILE_CATALOG = "analytics"
"""What the file is attached as."""
PRIVATE_CATALOG = "memory"
"""The connection's own in-memory database."""
LOCK_WAIT = 2.0
"""Seconds to keep trying a file another process (or projection) holds: more than a catch-up of
the usual tail or an ordinary query takes, less than a caller should wait without being told."""
_DUCKDB_FILES = ("", ".wal", ".wal.checkpoint", ".wal.recovery")
"""The database file and the write-ahead logs DuckDB keeps beside it."""
_DAMAGE = ("IOException", "SerializationException", "InternalException", "FatalException", "CorruptionException")
"""DuckDB errors that mean the database file itself cannot be trusted (unless they are `_STORAGE_FAILURES`)."""
_HELD = ("Could not set lock on file", "Unique file handle conflict")
"""What DuckDB says when another process, or another database in this one, has the file open."""
_STORAGE_FAILURES = (
    *(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES)),
    *_HELD,
)
"""What DuckDB says when the disk, not the file, is at fault (its messages carry the OS's own words),
or when someone else holds the database."""
_FAILURES = (*_DAMAGE, "ConnectionException", "TransactionException")
"""DuckDB errors that mean the database or its disk failed, not the query."""


def connect(scratch: Path, files: list[Path], *, file_access: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that may reach only `scratch` and `files` (unless `file_access`),
    with its settings frozen."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "python_enable_replacements": False,
        "temp_directory": str(scratch / "spill"),
    }
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not file_access:
            # Our private scratch directory (bulk loads) and the projection's own files stay reachable.
            con.execute("SET allowed_directories = ?", [[str(scratch) + "/"]])
            con.execute("SET allowed_paths = ?", [[str(path) for path in files]])
            con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def database_files(path: Path) -> list[Path]:
    """The database file and its write-ahead logs, in the order they are created."""
    return [Path(str(path) + suffix) for suffix in _DUCKDB_FILES]


def discard_files(path: Path) -> None:
    """Remove the database, its write-ahead logs first: a crash in between leaves an older state, never a log
    without its database."""
    for file in reversed(database_files(path)):
        file.unlink(missing_ok=True)


def attach(con: duckdb.DuckDBPyConnection, path: Path, *, writable: bool, closed: Callable[[], bool]) -> None:
    """Attach the file as the connection's current database (read-only unless `writable`). While
    someone else holds it, try again for `LOCK_WAIT` seconds; then raise DuckDB's lock error."""
    for file in database_files(path):
        check_regular(file)  # DuckDB would block on a FIFO, or write into a device
    quoted = str(path).replace("'", "''")
    statement = f"ATTACH '{quoted}' AS {FILE_CATALOG}" + ("" if writable else " (READ_ONLY)")
    deadline = time.monotonic() + LOCK_WAIT
    pause = 0.005
    while True:
        try:
            con.execute(statement)
            break
        except Exception as error:
            if not is_held(error) or time.monotonic() > deadline:
                raise
        if closed():
            raise AnalyticsClosedError("the analytics projection was closed")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    try:
        con.execute(f"USE {FILE_CATALOG}")
    except BaseException:
        con.execute(f"DETACH {FILE_CATALOG}")
        raise


def detach(con: duckdb.DuckDBPyConnection) -> None:
    """Detach the file (which checkpoints what was written into it) and release it."""
    try:
        con.execute(f"USE {PRIVATE_CATALOG}")
    finally:
        con.execute(f"DETACH {FILE_CATALOG}")


@contextmanager
def duckdb_errors() -> Iterator[None]:
    """DuckDB's errors as AnalyticsStorageError when the database or its disk failed, else as
    AnalyticsError: never raw."""
    import duckdb

    try:
        yield
    except duckdb.Error as error:
        failed = AnalyticsStorageError if is_failure(error) else AnalyticsError
        raise failed(first_line(error)) from error


def is_held(error: BaseException) -> bool:
    """Does another process, or another projection in this one, have the file open?"""
    return any(words in str(error) for words in _HELD)


def is_damage(error: BaseException) -> bool:
    """Does the error say the database file cannot be trusted (rather than its disk, or someone holding it)?"""
    return type(error).__name__ in _DAMAGE and not is_storage_failure(error)


def is_storage_failure(error: BaseException) -> bool:
    import duckdb

    return isinstance(error, duckdb.Error) and any(words in str(error) for words in _STORAGE_FAILURES)


def is_failure(error: BaseException) -> bool:
    """Did the database or its disk fail (rather than the query)?"""
    return type(error).__name__ in _FAILURES or is_storage_failure(error)

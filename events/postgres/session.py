"""One connection to the store, made when first needed and made again after it broke.

A connection that fails (server restart, network, timeout) is dropped and the failure raised as
`StoreUnavailableError`; the next statement connects anew. Statements run one at a time (a lock),
so a log and the threads that share it never interleave on the wire. Outside `transaction()` each
statement is its own transaction (autocommit): an append is one statement, so one round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from events.errors import StorageError
from events.postgres.settings import StoreSettings, StoreUnavailableError, driver, unavailable

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow


class Session:
    def __init__(self, settings: StoreSettings, *, readonly: bool) -> None:
        self.settings = settings
        self.readonly = readonly
        self._connection: psycopg.Connection[TupleRow] | None = None
        self._lock = threading.RLock()
        self._in_transaction = False
        self._closed = False

    @property
    def connection(self) -> psycopg.Connection[TupleRow]:
        """The live connection (connecting if there is none); call under `lock`."""
        if self._closed:
            raise StorageError("this log is closed")
        if self._connection is None or self._connection.closed:
            self._connection = self.settings.connect(readonly=self.readonly)
        return self._connection

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement (in binary: bodies arrive as they are stored, not hex-encoded)."""
        with self._lock, self.failures():
            return self.connection.cursor(binary=True).execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        with self._lock, self.failures():
            return int(self.connection.execute(sql, params).rowcount)

    @contextmanager
    def failures(self) -> Iterator[None]:
        """A broken connection is dropped (and reported); the next statement reconnects."""
        try:
            with unavailable(self.settings):
                yield
        except StoreUnavailableError:
            self._drop()
            raise
        except driver().Error as error:
            if self._connection is not None and self._connection.closed:
                self._drop()
                raise StoreUnavailableError(f"PostgreSQL store {self.settings.where}: {error}") from error
            if isinstance(error, (driver().IntegrityError, driver().errors.LockNotAvailable)):
                raise  # an append's race with another writer: it names the tract
            detail = " ".join(str(error).split()) or type(error).__name__
            raise StorageError(f"PostgreSQL store {self.settings.where}: {detail}") from error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything run in the block (by this thread) commits together, or not at all."""
        with self._lock:
            if self._in_transaction:
                raise StorageError("a store transaction is already open on this log")
            with self.failures():
                transaction = self.connection.transaction()
                transaction.__enter__()
            self._in_transaction = True
            try:
                yield
            except BaseException as error:
                self._in_transaction = False
                with self.failures():
                    transaction.__exit__(type(error), error, error.__traceback__)
                raise
            self._in_transaction = False
            with self.failures():
                transaction.__exit__(None, None, None)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Any failure: it is broken already, and there is nothing more to learn from it.
            with suppress(Exception):
                connection.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
            self._closed = True

"""Where a PostgreSQL store is and how to talk to it: the URL, the schema, timeouts, errors.

psycopg (the `[postgres]` extra) is imported only here and only when a store is opened, so the
file backend never needs it. Every connection gets the same defaults (documented in the README,
each overridable in the URL); any failure to reach or keep the server becomes `StoreUnavailableError`
naming the server, never a hang: connecting, a statement and a wait for a tract's row lock all time out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from events.errors import StorageError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_SCHEMA = "tract"
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server to accept a connection."""
STATEMENT_TIMEOUT_MS = 60_000
"""Longest a single statement may run (an append, a page of reads)."""
LOCK_TIMEOUT_MS = 10_000
"""Longest an append waits for another writer of the same tract to finish."""
IDLE_IN_TRANSACTION_MS = 60_000
"""A session left inside a transaction this long (a stuck process) is ended by the server."""
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class StoreUnavailableError(StorageError):
    """The PostgreSQL server could not be reached, or the connection broke (a restart, a timeout).
    Nothing was acknowledged by the call that raised it; the next call connects again."""


def is_store_url(location: object) -> bool:
    """Does `location` name a PostgreSQL store (rather than a log directory)?"""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


@dataclass(frozen=True)
class StoreSettings:
    """A store: the libpq URL to connect with and the schema that holds its tables."""

    url: str
    schema: str

    @classmethod
    def parse(cls, location: str) -> StoreSettings:
        """Split our own `schema=` parameter off the URL; libpq reads the rest (and its defaults are added)."""
        try:
            parts = urlsplit(location)
            parts.port  # noqa: B018 - read now: a port that is no number is the URL's fault, named here
        except ValueError as error:
            raise StorageError(f"not a valid PostgreSQL URL: {error}") from None
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = DEFAULT_SCHEMA
        kept: list[tuple[str, str]] = []
        for name, value in query:
            if name == "schema":
                schema = value
            else:
                kept.append((name, value))
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StorageError(f"schema={schema!r}: a store's schema is a lower-case SQL name (letters, digits, _)")
        names = {name for name, _ in kept}
        if "connect_timeout" not in names:
            kept.append(("connect_timeout", str(CONNECT_TIMEOUT)))
        if "keepalives_idle" not in names:
            kept += [
                ("keepalives", "1"),
                ("keepalives_idle", "10"),
                ("keepalives_interval", "5"),
                ("keepalives_count", "3"),
            ]
        if "application_name" not in names:
            kept.append(("application_name", "tract"))
        return cls(urlunsplit(parts._replace(query=urlencode(kept))), schema)

    @property
    def where(self) -> str:
        """The server, database and schema, without user or password: for messages and cache keys."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        database = parts.path.lstrip("/") or (parts.username or "")
        return f"{host}:{port}/{database}/{self.schema}"

    @property
    def cache_key(self) -> str:
        """A directory name for this store's local caches: readable, and unique per server, database and schema."""
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.where).strip("-")
        return f"{readable}-{hashlib.sha256(self.where.encode()).hexdigest()[:12]}"

    def connect(self, *, readonly: bool) -> psycopg.Connection[TupleRow]:
        """A new autocommit connection with the store's timeouts (read-only sessions for readers)."""
        driver()  # a missing psycopg is named before anything else
        import psycopg

        options = [
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            f"-c lock_timeout={LOCK_TIMEOUT_MS}",
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
        ]
        if readonly:
            options.append("-c default_transaction_read_only=on")
        given = dict(parse_qsl(urlsplit(self.url).query)).get("options")
        with unavailable(self):
            return psycopg.connect(self.url, autocommit=True, options=" ".join([*options, given or ""]).strip())


def driver() -> ModuleType:
    """The psycopg module, or a clear error naming the extra that brings it."""
    try:
        import psycopg
    except ImportError:
        raise StorageError("a PostgreSQL store needs psycopg 3: pip install 'tract-context[postgres]'") from None
    return psycopg


@contextmanager
def unavailable(settings: StoreSettings) -> Iterator[None]:
    """psycopg's connection failures (refused, reset, restarted server, timeouts) as StoreUnavailableError."""
    psycopg = driver()
    try:
        yield
    except psycopg.errors.LockNotAvailable:
        raise  # another writer holds the row: the connection is fine, and the append names the tract
    except (psycopg.OperationalError, psycopg.errors.QueryCanceled) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise StoreUnavailableError(f"PostgreSQL store {settings.where}: {detail}") from error

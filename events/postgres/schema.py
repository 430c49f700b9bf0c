"""The store's tables, created on first use by a role that may, and their version.

- `store`: one row: the schema version and the store's identity (a random UUID, which global
  cursors carry so one store's cursor is never taken for another's).
- `tracts`: one row per tract: its length and chain head, updated in the same transaction as
  the records appended to it (`WHERE length = expected`: the second of two writers of one tract
  updates nothing and is refused), and `created`, the order tracts are listed in.
- `records`: each record's exact MessagePack body, the bytes the file log frames and hashes
  (so hashes and chain heads are the same on both backends), its tract and number (the primary
  key: no two records can take one place), whether it ends its batch, and the id of the
  transaction that wrote it (for diagnosis; readers do not order by it).
"""

from __future__ import annotations

from typing import Any

from events.errors import LogFormatError
from events.postgres.settings import StoreSettings

SCHEMA_VERSION = 1

_CREATE = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {schema}.store (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version integer NOT NULL,
    store_id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {schema}.tracts (
    tract_id text PRIMARY KEY,
    created bigint GENERATED ALWAYS AS IDENTITY,
    length bigint NOT NULL CHECK (length > 0),
    head bytea NOT NULL
);
CREATE TABLE {schema}.records (
    tract_id text NOT NULL,
    number bigint NOT NULL CHECK (number > 0),
    batch_end boolean NOT NULL,
    body bytea NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (tract_id, number)
);
INSERT INTO {schema}.store (schema_version) VALUES ({version});
"""


def prepare(connection: Any, settings: StoreSettings, *, readonly: bool) -> str:
    """Check (a writer: create, if missing) the store's tables; returns the store's id.

    Creation runs in one transaction under an advisory lock, so two first writers do not race."""
    schema = settings.schema
    found = _store_row(connection, schema)
    if found is None and not readonly:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tract store {schema}",))
            if _store_row(connection, schema) is None:
                connection.execute(_CREATE.format(schema=_quoted(schema), version=SCHEMA_VERSION))
        found = _store_row(connection, schema)
    if found is None:
        raise LogFormatError(
            f"PostgreSQL store {settings.where}: no tract store here (schema {schema!r} has no store table)"
        )
    version, store_id = found
    if version > SCHEMA_VERSION:
        raise LogFormatError(
            f"PostgreSQL store {settings.where}: schema version {version} is newer than this library "
            f"supports ({SCHEMA_VERSION}); upgrade tract-context to use it"
        )
    return str(store_id)


def _store_row(connection: Any, schema: str) -> tuple[int, Any] | None:
    exists = connection.execute("SELECT to_regclass(%s)", (f"{_quoted(schema)}.store",)).fetchone()[0]
    if exists is None:
        return None
    row = connection.execute(f"SELECT schema_version, store_id FROM {_quoted(schema)}.store").fetchone()
    return None if row is None else (int(row[0]), row[1])


def _quoted(schema: str) -> str:
    """The schema's name as SQL (validated as a plain lower-case name when the URL was parsed)."""
    return f'"{schema}"'


def tables(schema: str) -> tuple[str, str]:
    """The qualified names of the tracts and records tables."""
    return f"{_quoted(schema)}.tracts", f"{_quoted(schema)}.records"

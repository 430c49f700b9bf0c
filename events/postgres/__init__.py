"""The event log in PostgreSQL: one store shared by writers on many machines (the `[postgres]` extra).

`settings` (URL, schema, timeouts, errors), `session` (one connection, reconnecting), `schema`
(tables, version), `store` (`PostgresLog`, the storage interface), `reads` (checked reads of a
tract), `global_reader` (catching up without gaps), `audit` (verify).
"""

from events.postgres.settings import StoreSettings, StoreUnavailableError, is_store_url
from events.postgres.store import PostgresLog

__all__ = ["PostgresLog", "StoreSettings", "StoreUnavailableError", "is_store_url"]

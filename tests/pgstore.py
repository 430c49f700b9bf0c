"""Helpers for tests against a real PostgreSQL server: a fresh schema per test, SQL as the test's role."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg


def server_url() -> str:
    return os.environ["TRACT_TEST_POSTGRES_URL"]


def store_url(schema: str, url: str | None = None) -> str:
    base = url or server_url()
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A schema name no other test uses, dropped (with what it holds) afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        with admin() as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def admin() -> Iterator[Any]:
    """An autocommit connection as the test role (which may alter any row: the tests' vandal)."""
    with psycopg.connect(server_url(), autocommit=True) as connection:
        yield connection


def url_as(user: str, password: str, schema: str) -> str:
    """The store URL for another role of the same server."""
    parts = urlsplit(server_url())
    host = parts.hostname or "localhost"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return store_url(schema, urlunsplit(parts._replace(netloc=netloc)))

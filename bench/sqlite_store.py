"""The obvious alternative the benchmark compares tract with: stdlib sqlite3, one row per commit."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from tract.tokens import load_encoding

from workload import ENCODING, Step

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    operation TEXT NOT NULL DEFAULT 'append',
    response_to INTEGER,
    token_count INTEGER NOT NULL,
    priority TEXT NOT NULL DEFAULT 'normal',
    generation_config TEXT,
    created_at TEXT NOT NULL
)"""
SQLITE_INSERT = (
    "INSERT INTO commits (id, parent_id, role, content, operation, response_to, token_count, "
    "generation_config, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQLITE_COMPARISONS = {"=": "=", "!=": "<>", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


class SqliteContext(NamedTuple):
    messages: list[dict[str, str]]
    configs: list[str]
    token_count: int


class SqliteHistory:
    """The same history kept the way most people would: one row per commit in stdlib sqlite3.

    WAL mode; `synchronous=FULL` matches tract's sync="always" (the WAL is
    fsynced at every COMMIT), `NORMAL` matches sync="batch" (no fsync per
    COMMIT). Token counts are computed with the same tiktoken encoding, the
    config is a JSON text column, a SKIP is an UPDATE, an edit is a row
    pointing at its target, and compile() re-reads the whole history.
    """

    def __init__(self, path: Path, *, synchronous: str, count_tokens: Callable[[str], int]) -> None:
        self._con = sqlite3.connect(path)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"PRAGMA synchronous={synchronous}")
        self._con.execute(SQLITE_SCHEMA)
        self._con.commit()
        self._count = count_tokens
        self._head: int | None = self._con.execute("SELECT max(id) FROM commits").fetchone()[0]
        self._role_tokens: dict[str, int] = {}
        self.ids: list[int] = []

    def apply(self, steps: Iterable[Step]) -> None:
        for step in steps:
            if step.kind == "skip":
                self._con.execute("UPDATE commits SET priority = 'skip' WHERE id = ?", (self.ids[step.target],))
                self._con.commit()
            else:
                self.commit(step)

    def commit(self, step: Step) -> None:
        edit = step.kind == "edit"
        cursor = self._con.execute(
            SQLITE_INSERT,
            (
                None,
                self._head,
                step.role,
                step.text,
                "edit" if edit else "append",
                self.ids[step.target] if edit else None,
                self._count(step.text),
                None if step.config is None else json.dumps(step.config),
                datetime.now(timezone.utc).isoformat(),
            ),
        )
        self._con.commit()
        assert cursor.lastrowid is not None
        self._head = cursor.lastrowid
        self.ids.append(cursor.lastrowid)

    def bulk_load(self, steps: Iterable[Step], start: datetime) -> None:
        """The same rows in one transaction (executemany): the fastest way to fill the table."""
        skipped: list[tuple[int]] = []

        def rows() -> Iterator[tuple[Any, ...]]:
            ordinal = 0
            for tick, step in enumerate(steps, 1):
                if step.kind == "skip":
                    skipped.append((step.target + 1,))
                    continue
                edit = step.kind == "edit"
                created_at = (start + timedelta(microseconds=tick)).isoformat()
                yield (ordinal + 1, ordinal or None, step.role, step.text, "edit" if edit else "append",
                       step.target + 1 if edit else None, self._count(step.text),
                       json.dumps(step.config), created_at)  # fmt: skip
                ordinal += 1

        with self._con:
            self._con.executemany(SQLITE_INSERT, rows())
            self._con.executemany("UPDATE commits SET priority = 'skip' WHERE id = ?", skipped)

    def compile(self) -> SqliteContext:
        """Messages with edits applied and skips left out, from a full re-read (there is no cache to keep)."""
        rows = self._con.execute(
            "SELECT id, role, content, operation, response_to, token_count, priority, generation_config "
            "FROM commits ORDER BY id"
        ).fetchall()
        slots: dict[int, int] = {}
        messages: list[dict[str, str]] = []
        tokens: list[int] = []
        configs: list[str] = []
        for row_id, role, content, operation, response_to, count, priority, config in rows:
            message_tokens = 3 + self._role(role) + count
            if operation == "edit":
                slot = slots.get(response_to)
                if slot is not None:
                    messages[slot] = {"role": role, "content": content}
                    tokens[slot] = message_tokens
                    configs[slot] = config or configs[slot]
            elif priority != "skip":
                slots[row_id] = len(messages)
                messages.append({"role": role, "content": content})
                tokens.append(message_tokens)
                configs.append(config or "{}")
        return SqliteContext(messages, configs, sum(tokens) + 3 if messages else 0)

    def query_by_config(self, field: str, operator: str, value: float) -> list[tuple[Any, ...]]:
        return self._con.execute(
            f"SELECT * FROM commits WHERE json_extract(generation_config, ?) {SQLITE_COMPARISONS[operator]} ? "
            "ORDER BY id",
            (f"$.{field}", value),
        ).fetchall()

    def size_bytes(self) -> int:
        """Database plus WAL, after checkpointing the WAL into the database."""
        self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(self._con.execute("PRAGMA database_list").fetchone()[2])
        wal = Path(str(path) + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def _role(self, role: str) -> int:
        count = self._role_tokens.get(role)
        if count is None:
            count = self._role_tokens[role] = self._count(role)
        return count

    def close(self) -> None:
        self._con.close()


def count_tokens_raw() -> Callable[[str], int]:
    """tiktoken's own count of a text (what sqlite3 stores per row), without tract's message formula."""
    encoding = load_encoding(ENCODING)
    return lambda text: len(encoding.encode(text, disallowed_special=()))

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tract import Tract

from properties import PROFILE


def pytest_report_header() -> str:
    """Which hypothesis profile the property tests run with (tests/properties.py)."""
    return f"hypothesis profile: {PROFILE} (TRACT_HYPOTHESIS_PROFILE)"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def tract(log_dir: Path) -> Iterator[Tract]:
    with Tract.open(log_dir) as opened:
        yield opened


@pytest.fixture
def memory_tract() -> Iterator[Tract]:
    with Tract.open() as opened:
        yield opened


# -- PostgreSQL ------------------------------------------------------------------------------------
# Tests marked `postgres` need a server: its URL in TRACT_TEST_POSTGRES_URL (a role that may create
# schemas and roles; each test gets a schema of its own). `postgres_restart` tests also restart it,
# with the command in TRACT_TEST_POSTGRES_RESTART. Without them these tests are deselected and the
# run says so in its summary; in CI (CI set) a missing server is an error, never a skip.

POSTGRES_URL = "TRACT_TEST_POSTGRES_URL"
POSTGRES_RESTART = "TRACT_TEST_POSTGRES_RESTART"
_not_run: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"postgres: needs a PostgreSQL server (${POSTGRES_URL})")
    config.addinivalue_line("markers", f"postgres_restart: restarts that server (${POSTGRES_RESTART})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {
        "postgres": POSTGRES_URL if not os.environ.get(POSTGRES_URL) else None,
        "postgres_restart": POSTGRES_RESTART if not os.environ.get(POSTGRES_RESTART) else None,
    }
    kept, dropped = [], []
    for item in items:
        needs = [missing[name] for name in missing if missing[name] and item.get_closest_marker(name)]
        if needs:
            dropped.append(item)
            for variable in needs:
                _not_run[variable] = _not_run.get(variable, 0) + 1
        else:
            kept.append(item)
    if dropped and os.environ.get("CI"):
        raise pytest.UsageError(
            f"CI: {len(dropped)} PostgreSQL tests cannot run: set {', '.join(sorted(_not_run))} (.ci/run does)"
        )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for variable, count in sorted(_not_run.items()):
        terminalreporter.write_line(
            f"NOT RUN: {count} PostgreSQL test(s): ${variable} is not set (see README, 'Running the PostgreSQL tests')",
            yellow=True,
        )

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from properties import PROFILE

from tract import Tract


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
# Tests marked `postgres` (README blocks with `# needs: postgres`) need a server: its URL in
# TRACT_TEST_POSTGRES_URL. Without it they are deselected and the run says so in its summary;
# in CI (CI set) a missing server is an error, never a skip.

POSTGRES_URL = "TRACT_TEST_POSTGRES_URL"
_not_run: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"postgres: needs a PostgreSQL server (${POSTGRES_URL})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(POSTGRES_URL):
        return
    dropped = [item for item in items if item.get_closest_marker("postgres")]
    if dropped and os.environ.get("CI"):
        raise pytest.UsageError(f"CI: {len(dropped)} PostgreSQL tests cannot run: set {POSTGRES_URL}")
    if dropped:
        _not_run.extend(item.nodeid for item in dropped)
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _not_run:
        terminalreporter.write_line(
            f"NOT RUN: {len(_not_run)} PostgreSQL test(s): ${POSTGRES_URL} is not set", yellow=True
        )
        for nodeid in _not_run:
            terminalreporter.write_line(f"  {nodeid}", yellow=True)

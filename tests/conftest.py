from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

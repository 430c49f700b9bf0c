from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tract import Tract


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

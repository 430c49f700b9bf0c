"""The README's quickstart runs as written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(quickstart, "README quickstart", "exec"), {})
    assert (tmp_path / "chat-log" / "events.log").exists()
    assert os.listdir(tmp_path / "chat-log")

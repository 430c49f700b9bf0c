"""The layers import downwards only: `events` <- `projections` <- `tract`.

`events` (the log) knows nothing of the views built from it, and `projections`
nothing of the SDK facade, so each can be read, tested and replaced alone. The
rule is checked on the source: every import statement of every module,
including those under `if TYPE_CHECKING:` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("events", "projections", "tract")
"""Lowest first: a package may import those before it, never those after it."""


def imported_packages(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the module at `path`, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else (node.module or "").split(".")[0]))
    return sorted(found)


def breaches(package: str) -> list[str]:
    forbidden = set(LAYERS[LAYERS.index(package) + 1 :])
    return [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, imported in imported_packages(path, package)
        if imported in forbidden
    ]


@pytest.mark.parametrize("package", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(package: str) -> None:
    assert breaches(package) == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import tract.models\n"
        "from projections.commit_view import CommitView\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tract import Tract\n"
        "def later():\n    import projections\n"
        "from . import sibling\n"
    )
    assert imported_packages(module, "events") == [
        (1, "tract"), (2, "projections"), (3, "typing"), (5, "tract"), (7, "projections"), (8, "events"),
    ]  # fmt: skip

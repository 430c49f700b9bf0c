"""The README's code blocks, collected from the README itself, and how one of them runs.

Every fenced block whose info string is `python` (or `py`, `python3`) is collected, in order,
named by its nearest heading and its place under that heading (`agents-with-tools-2`). A block
declares what it needs beyond the library with a comment line `# needs: NAME[, NAME]`:
`postgres` (a PostgreSQL server: the block's `postgresql://` URL literals are replaced by
$TRACT_TEST_POSTGRES_URL with a schema of its own; tests/pgstore.py). Every block runs beside a local provider
server (tests/provider_server.py) that the SDKs reach through their usual environment variables.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType

README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_INFO_STRINGS = frozenset({"python", "py", "python3"})
KNOWN_NEEDS = frozenset({"postgres"})

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_NEEDS = re.compile(r"^\s*#\s*needs:\s*(?P<names>.+?)\s*$", re.MULTILINE)
_POSTGRES_LITERAL = re.compile(r"""(["'])postgresql://[^"']*\1""")


class ReadmeFormatError(ValueError):
    """The README cannot be split into blocks as written (an unclosed fence, an unknown need)."""


@dataclass(frozen=True)
class Block:
    heading: str
    number: int  # 1, 2, ... among the Python blocks under its heading
    line: int  # the README line of the block's first line of code
    code: str = field(repr=False)

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-{self.number}"

    @property
    def needs(self) -> frozenset[str]:
        names = {name.strip() for found in _NEEDS.finditer(self.code) for name in found["names"].split(",")}
        unknown = names - KNOWN_NEEDS
        if unknown:
            raise ReadmeFormatError(
                f"README line {self.line}: unknown `# needs:` {sorted(unknown)}; known: {sorted(KNOWN_NEEDS)}"
            )
        return frozenset(names)


def python_blocks(text: str) -> list[Block]:
    """Every fenced Python block of a Markdown text, in order, with the heading it stands under."""
    blocks: list[Block] = []
    heading, numbers = "top", Counter[str]()
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            title = _HEADING.match(lines[index])
            if title is not None:
                heading = title["title"].strip("`*_ ")
            index += 1
            continue
        fence, start = opening["fence"], index + 1
        end = next((i for i in range(start, len(lines)) if _closes(lines[i], fence)), None)
        if end is None:
            raise ReadmeFormatError(f"README line {index + 1}: a {fence} block that is never closed")
        if opening["info"].lower() in PYTHON_INFO_STRINGS:
            numbers[heading] += 1
            blocks.append(Block(heading, numbers[heading], start + 1, "\n".join(lines[start:end]) + "\n"))
        index = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening's character, at least as many times, and nothing else."""
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip(fence[0])


def with_postgres(code: str, store_url: str) -> str:
    """The block with its `postgresql://` URL literals replaced by the test server's store URL."""
    return _POSTGRES_LITERAL.sub(lambda _: repr(store_url), code)


def run(block: Block, code: str) -> None:
    """Execute the block's code in a namespace of its own. Its code objects carry the block's README
    lines, so a traceback (and pytest's report, which starts at the block) names README.md's lines."""
    compiled = _moved(compile(code, str(README), "exec"), block.line - 1)
    exec(compiled, {"__name__": f"readme_{block.id.replace('-', '_')}"})  # running it is the test


def _moved(code: CodeType, lines: int) -> CodeType:
    """The code object `lines` further down its file (line numbers count from `co_firstlineno`)."""
    constants = tuple(
        _moved(constant, lines) if isinstance(constant, CodeType) else constant for constant in code.co_consts
    )
    return code.replace(co_firstlineno=code.co_firstlineno + lines, co_consts=constants)

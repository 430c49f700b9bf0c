"""A FIFO, socket, device or directory where a file of the log directory belongs is refused at once
with a `StorageError` naming the path and what it is; nothing ever blocks on it.

Every attempt runs in a subprocess with a timeout, so a regression that blocks (opening a FIFO
waits for a writer) fails the test instead of hanging the suite; the probe prints each step
before it starts, so a timeout names the step that blocked. Symbolic links are followed: a link
to /dev/null is refused as the character device it leads to, a link to a real log works.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tract import DialogueContent, Tract

TIMEOUT = 120
KINDS = {
    "fifo": "a FIFO",
    "socket": "a socket",
    "character device": "a character device",
    "directory": "a directory",
    "symlink to /dev/null": "a character device",
}

TRACT_ID = "pristine"
TRACT_INDEX = f"index/{hashlib.sha256(TRACT_ID.encode()).hexdigest()[:32]}.idx"
"""Where the index keeps the offsets of the pristine log's one tract."""

# For each file of a log directory, where it must be refused: the writer's step (open, commit, sql,
# close), the reader's (open), verify's, and which CLI commands fail. None or "": that path never
# opens the file, and must simply work. Opening a tract reads its index (the catalogue, then the
# tract's offsets); a writer's close saves it (the catalogue through catalogue.tmp).
EXPECTED: dict[str, dict[str, str | None]] = {
    "events.log": {"writer": "open", "reader": "open", "verify": "refused", "cli": "verify log compile"},
    "LOCK": {"writer": "open", "reader": None, "verify": None, "cli": ""},
    "index/catalogue": {"writer": "open", "reader": "open", "verify": None, "cli": "log compile"},
    TRACT_INDEX: {"writer": "open", "reader": "open", "verify": None, "cli": "log compile"},
    "index/catalogue.tmp": {"writer": "close", "reader": None, "verify": None, "cli": ""},
    "analytics.duckdb": {"writer": "sql", "reader": None, "verify": None, "cli": ""},
    "analytics.duckdb.wal": {"writer": "sql", "reader": None, "verify": None, "cli": ""},
}

PROBE = r"""
import contextlib, io, json, sys
import events
from tract import DialogueContent, Tract, TractError
from tract.cli import main

def say(**fields):
    print(json.dumps(fields), flush=True)

for directory in sys.argv[1:]:
    def step(who, name, call):
        say(start=f"{who} {name}", directory=directory)
        try:
            call()
        except BaseException as error:
            kind = type(error).__name__
            say(directory=directory, who=who, step=name, error=kind, tract_error=isinstance(error, TractError),
                message=str(error))
            return False
        return True

    holder = {}
    for name, call in (
        ("open", lambda: holder.update(t=Tract.open(directory))),
        ("commit", lambda: holder["t"].commit(DialogueContent(role="user", text="still writable"))),
        ("sql", lambda: holder["t"].sql("SELECT count(*) FROM commits")),
        ("close", lambda: holder["t"].close()),
    ):
        if not step("writer", name, call):
            if "t" in holder:
                holder["t"].close()
            break
    else:
        say(directory=directory, who="writer", step=None)

    def read():
        with Tract.open(directory, readonly=True) as t:
            t.compile(), t.sql("SELECT count(*) FROM commits")
    if step("reader", "open", read):
        say(directory=directory, who="reader", step=None)
    if step("verify", "refused", lambda: events.verify(directory)):
        say(directory=directory, who="verify", step=None)
    for command in ("verify", "log", "compile"):
        err, out = io.StringIO(), io.StringIO()
        say(start=f"cli {command}", directory=directory)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([command, directory])
        say(directory=directory, who="cli", command=command, code=code, stderr=err.getvalue())
"""


def make(path: Path, kind: str) -> None:
    """Put a `kind` where the file `path` belongs (removing the file there, if any)."""
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        os.chdir(path.parent)  # a relative name: socket paths are limited to ~100 bytes
        try:
            server.bind(path.name)
        finally:
            os.chdir(cwd)
            server.close()  # the socket file stays
    elif kind == "character device":
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/null")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pristine") / "log"
    with Tract.open(directory, tract_id=TRACT_ID) as t:
        t.commit(DialogueContent(role="user", text="hello"))
        t.sql("SELECT 1")
    assert sorted(os.listdir(directory)) == ["LOCK", "analytics.duckdb", "events.log", "index"]
    assert sorted(f"index/{name}" for name in os.listdir(directory / "index")) == sorted(
        ["index/catalogue", TRACT_INDEX]
    )
    return directory


def probe(directories: list[Path]) -> list[dict[str, object]]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *map(str, directories)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        printed = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else expired.stdout or ""
        started = [json.loads(line) for line in printed.splitlines() if '"start"' in line]
        raise AssertionError(f"blocked in {started[-1] if started else 'start-up'}") from None
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if '"start"' not in line]


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_file_that_is_not_regular_is_refused_at_once_and_never_blocks(
    tmp_path: Path, pristine: Path, kind: str
) -> None:
    directories = {}
    for name in EXPECTED:
        directory = tmp_path / name.replace("/", "-") / "log"
        shutil.copytree(pristine, directory)
        make(directory / name, kind)
        directories[name] = directory
    outcomes = probe(list(directories.values()))
    for name, expected in EXPECTED.items():
        where = directories[name] / name
        mine = [o for o in outcomes if o["directory"] == str(directories[name])]
        for who in ("writer", "reader", "verify"):
            (outcome,) = [o for o in mine if o["who"] == who]
            assert outcome["step"] == expected[who], f"{name} as {kind}: {who} {outcome}"
            if outcome["step"] is not None:
                assert outcome["error"] == "NotRegularFileError" and outcome["tract_error"], outcome
                assert str(where) in outcome["message"] and KINDS[kind] in outcome["message"], outcome
        for command in ("verify", "log", "compile"):
            (outcome,) = [o for o in mine if o["who"] == "cli" and o["command"] == command]
            if command in str(expected["cli"]).split():
                lines = str(outcome["stderr"]).strip().splitlines()
                assert outcome["code"] == 1 and len(lines) == 1, f"{name} as {kind}: tract {command} {outcome}"
                assert str(where) in lines[0] and KINDS[kind] in lines[0], lines[0]
            else:
                assert outcome["code"] == 0, f"{name} as {kind}: tract {command} {outcome}"
    for name, directory in directories.items():  # what was refused is left as it was, not removed or replaced
        assert not stat.S_ISREG(os.stat(directory / name).st_mode)


def test_the_installed_cli_refuses_a_fifo_log_quickly(tmp_path: Path, pristine: Path) -> None:
    """The real `tract` command, each run at once: a FIFO as events.log or the index's catalogue."""
    runs = {}
    for name, command in (("events.log", "verify"), ("events.log", "log"), ("index/catalogue", "compile")):
        directory = tmp_path / name.replace("/", "-") / "log"
        if not directory.exists():
            shutil.copytree(pristine, directory)
            make(directory / name, "fifo")
        runs[name, command] = subprocess.Popen(
            [sys.executable, "-m", "tract.cli", command, str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for (name, command), process in runs.items():
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in runs.values():
                other.kill()
            raise AssertionError(f"tract {command} blocked on a FIFO {name}") from None
        assert process.returncode == 1, stderr
        assert len(stderr.strip().splitlines()) == 1 and f"{name} is a FIFO (named pipe)" in stderr, stderr


def test_a_symlink_to_a_regular_log_is_followed(tmp_path: Path, pristine: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(pristine, elsewhere)
    directory = tmp_path / "log"
    directory.mkdir()
    (directory / "events.log").symlink_to(elsewhere / "events.log")
    with Tract.open(directory) as t:
        assert [m.content for m in t.compile().messages] == ["hello"]
        t.commit(DialogueContent(role="user", text="through the link"))
    with Tract.open(elsewhere, readonly=True) as t:
        assert [m.content for m in t.compile().messages] == ["hello", "through the link"]


def test_something_else_where_the_index_directory_belongs_is_refused_and_never_blocks(
    tmp_path: Path, pristine: Path
) -> None:
    """`index` is the one directory of a log directory: a FIFO, socket, device or link to one there
    is refused by whatever reads the index (opening a tract); verify, which reads the log alone, works."""
    directories = {}
    for kind in KINDS:
        if kind == "directory":
            continue
        directory = directories[kind] = tmp_path / kind.replace(" ", "-").replace("/", "-") / "log"
        shutil.copytree(pristine, directory)
        shutil.rmtree(directory / "index")
        make(directory / "index", kind)
    outcomes = probe(list(directories.values()))
    for kind, directory in directories.items():
        mine = [o for o in outcomes if o["directory"] == str(directory)]
        for who, step in (("writer", "open"), ("reader", "open"), ("verify", None)):
            (outcome,) = [o for o in mine if o["who"] == who]
            assert outcome["step"] == step, f"index as {kind}: {who} {outcome}"
            if step is not None:
                assert outcome["error"] == "StorageError" and outcome["tract_error"], outcome
                assert str(directory / "index") in str(outcome["message"]), outcome
        for command, code in (("verify", 0), ("log", 1), ("compile", 1)):
            (outcome,) = [o for o in mine if o["who"] == "cli" and o["command"] == command]
            assert outcome["code"] == code, f"index as {kind}: tract {command} {outcome}"
        assert not stat.S_ISDIR(os.stat(directory / "index").st_mode)  # left as it was

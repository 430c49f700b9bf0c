"""Readers and the writer share analytics.duckdb, across processes.

The writer keeps the file caught up and holds it only while it catches up or answers; a reader
queries the file while it is current, copies it and applies only the tail when it is behind, and
builds its own copy from the log when the file cannot serve (missing, damaged, of another
schema, ahead of the reader, held too long). A reader never writes the file, and every answer is
the one a full rebuild from the log gives.

Where the answer came from is shown by a row only the file holds, put there with DuckDB itself
(`mark`): a reader that rebuilt from the log cannot show it; one that used the file must.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pytest

import projections.analytics_files
from tract import DialogueContent, Tract

MARKER = "a row only the file holds"


def answers(t: Tract) -> dict[str, Any]:
    """What a user asks of the projection; also run in the readers' processes (with its source)."""
    hot = [c.commit_hash for c in t.query_by_config("temperature", ">", 0.5)]
    late = [c.commit_hash for c in t.query_by_config("model", "=", "late")]
    counts = t.sql(
        "SELECT (SELECT count(*) FROM commits), (SELECT count(*) FROM config_records), "
        "(SELECT count(*) FROM usage), (SELECT count(*) FROM ref_moves)"
    ).rows
    configs = t.sql("SELECT commit_hash, model, temperature FROM commits ORDER BY position").rows
    marker = t.sql("SELECT reason FROM annotations WHERE tract_id = 'marker'").rows
    return {
        "hot": hot,
        "late": late,
        "counts": [list(row) for row in counts],
        "configs": [list(row) for row in configs],
        "marker": [row[0] for row in marker],
    }


READER = (
    "from __future__ import annotations\nfrom typing import Any\nfrom tract import Tract\n"
    + inspect.getsource(answers)
    + """
import json, sys, warnings
warnings.simplefilter("error")  # a reader of a sound file warns about nothing
with Tract.open(sys.argv[1], readonly=True) as t:
    print(json.dumps(answers(t)))
"""
)


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def fill(t: Tract, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        t.commit(user(f"q{i}"), generation_config={"model": "ab"[i % 2], "temperature": (i * 37 % 100) / 100})


def build(directory: Path, count: int = 20) -> None:
    """A log of `count` commits whose analytics.duckdb is current."""
    with Tract.open(directory) as t:
        fill(t, count)
        t.record_usage({"prompt_tokens": 5, "completion_tokens": 2})
        t.sql("SELECT 1")


def mark(directory: Path) -> None:
    """Add to the file a row no rebuild from the log would make."""
    con = duckdb.connect(str(directory / "analytics.duckdb"))
    try:
        con.execute("INSERT INTO annotations VALUES ('marker', 'none', 'normal', ?, NULL, now(), 0)", [MARKER])
    finally:
        con.close()


def file_state(directory: Path) -> dict[str, Any]:
    """The analytics files beside the log: which exist, and the database's bytes and mtime."""
    database = directory / "analytics.duckdb"
    present = sorted(p.name for p in directory.iterdir() if p.name.startswith("analytics"))
    if not database.is_file():
        return {"files": present}
    return {"files": present, "sha256": hashlib.sha256(database.read_bytes()).hexdigest(),
            "mtime": database.stat().st_mtime_ns}  # fmt: skip


def rebuilt(directory: Path, scratch: Path) -> dict[str, Any]:
    """What a reader of the same log without any analytics file answers: a full rebuild from the log."""
    copy = scratch / f"rebuilt-{time.monotonic_ns()}"
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("analytics.duckdb*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Tract.open(copy, readonly=True) as t:
            return answers(t)


def read_elsewhere(directory: Path) -> dict[str, Any]:
    """A reader's answers, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", READER, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def without_marker(got: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in got.items() if key != "marker"}


def test_a_reader_of_a_current_file_queries_it_and_never_writes_it(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    build(directory)
    mark(directory)
    before = file_state(directory)
    got = read_elsewhere(directory)
    assert got["marker"] == [MARKER], "the reader rebuilt from the log instead of using the current file"
    assert without_marker(got) == without_marker(rebuilt(directory, tmp_path))
    assert file_state(directory) == before


def test_a_reader_of_a_stale_file_applies_only_the_tail_in_memory(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    build(directory)
    mark(directory)
    with Tract.open(directory) as t:  # the writer appends and never queries: the file falls behind
        t.record_usage({"prompt_tokens": 9, "completion_tokens": 1}, generation_config={"model": "late"})
        fill(t, 7, start=100)
    before = file_state(directory)
    got = read_elsewhere(directory)
    assert got["marker"] == [MARKER], "the reader rebuilt from the log instead of starting from the file"
    expected = rebuilt(directory, tmp_path)
    assert without_marker(got) == without_marker(expected)
    assert got["counts"][0][0] == 27 and len(got["late"]) == 1  # the tail, and a config it gave a commit of the file
    assert file_state(directory) == before


def test_a_reader_older_than_the_file_answers_for_its_own_log_then_catches_up(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    build(directory, 10)
    at_ten = rebuilt(directory, tmp_path)
    with Tract.open(directory, readonly=True) as reader:
        with Tract.open(directory) as writer:
            fill(writer, 5, start=10)
            writer.sql("SELECT 1")  # the file is now ahead of the reader's log
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert answers(reader) == at_ten
            reader.refresh()
            assert answers(reader) == rebuilt(directory, tmp_path)


def _garbage(directory: Path) -> None:
    (directory / "analytics.duckdb").write_bytes(b"not a duckdb database " * 500)


def _truncated(directory: Path) -> None:
    path = directory / "analytics.duckdb"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _older_schema(directory: Path) -> None:
    con = duckdb.connect(str(directory / "analytics.duckdb"))
    con.execute("UPDATE projection_state SET schema_version = schema_version - 1")
    con.close()


def _of_another_log(directory: Path) -> None:
    other = directory.parent / "other"
    build(other, 3)
    shutil.copy(other / "analytics.duckdb", directory / "analytics.duckdb")


def _fifo(directory: Path) -> None:
    (directory / "analytics.duckdb").unlink()
    os.mkfifo(directory / "analytics.duckdb")


CANNOT_SERVE = {
    "missing": (lambda d: (d / "analytics.duckdb").unlink(), False),
    "garbage": (_garbage, True),
    "cut short": (_truncated, True),
    "of an older schema": (_older_schema, False),
    "of another log": (_of_another_log, False),
    "a FIFO": (_fifo, True),
}


@pytest.mark.parametrize("case", list(CANNOT_SERVE))
def test_a_reader_answers_from_the_log_when_the_file_cannot_serve(tmp_path: Path, case: str) -> None:
    directory = tmp_path / "log"
    build(directory)
    spoil, warns = CANNOT_SERVE[case]
    spoil(directory)
    before = file_state(directory) if case != "a FIFO" else None
    expected = rebuilt(directory, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Tract.open(directory, readonly=True) as t:
            assert answers(t) == expected
            assert answers(t) == expected  # again: from the reader's own copy
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert bool(said) == warns, said
    if before is not None:
        assert file_state(directory) == before, "a reader wrote the analytics file"


def hold(path: Path, *, read_only: bool, seconds: float | None) -> subprocess.Popen[str]:
    """Another process with the file open (until its stdin closes, or for `seconds`), once it says so."""
    script = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[3])) if sys.argv[3] != 'stdin' else sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path), "ro" if read_only else "rw",
         "stdin" if seconds is None else str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_reader_waits_while_the_writer_holds_the_file_then_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "log"
    build(directory)
    mark(directory)
    monkeypatch.setattr(projections.analytics_files, "LOCK_WAIT", 60.0)
    holder = hold(directory / "analytics.duckdb", read_only=False, seconds=0.5)
    try:
        with Tract.open(directory, readonly=True) as t:
            got = answers(t)
    finally:
        holder.communicate(timeout=60)
    assert got["marker"] == [MARKER]
    assert without_marker(got) == without_marker(rebuilt(directory, tmp_path))


def test_a_reader_answers_from_the_log_when_the_file_stays_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "log"
    build(directory)
    mark(directory)
    expected = rebuilt(directory, tmp_path)
    monkeypatch.setattr(projections.analytics_files, "LOCK_WAIT", 0.3)
    holder = hold(directory / "analytics.duckdb", read_only=False, seconds=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a held file is not damage
            with Tract.open(directory, readonly=True) as t:
                got = answers(t)
    finally:
        holder.communicate(timeout=60)
    assert got["marker"] == [] and without_marker(got) == without_marker(expected)


def test_the_writer_releases_the_file_between_queries_and_waits_for_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "log"
    path = directory / "analytics.duckdb"
    monkeypatch.setattr(projections.analytics_files, "LOCK_WAIT", 60.0)
    with Tract.open(directory) as t:
        fill(t, 3)
        assert t.sql("SELECT count(*) FROM commits").rows == [(3,)]
        for read_only in (True, False):  # the open writer holds nothing between queries
            hold(path, read_only=read_only, seconds=0).communicate(timeout=60)
        holder = hold(path, read_only=True, seconds=0.5)  # a reader's query, under way
        try:
            fill(t, 2, start=3)
            assert t.sql("SELECT count(*) FROM commits").rows == [(5,)]  # waited for it, then caught up
        finally:
            holder.communicate(timeout=60)


WRITER = r"""
import sys, warnings
from tract import DialogueContent, Tract
warnings.simplefilter("error")
with Tract.open(sys.argv[1]) as t:
    for i in range(int(sys.argv[2])):
        for j in range(3):
            n = 3 * i + j
            config = {"temperature": (n * 37 % 100) / 100}
            t.commit(DialogueContent(role="user", text=f"c{n}"), generation_config=config)
        assert t.sql("SELECT count(*) FROM commits").rows == [(3 * i + 4,)]
        assert len(t.query_by_config("temperature", ">", -1)) == 3 * i + 4
"""

CONCURRENT_READER = r"""
import json, sys, warnings
from pathlib import Path
from tract import Tract
warnings.simplefilter("error")
directory, done = sys.argv[1], Path(sys.argv[2])
checked = from_file = 0

def check(t):
    global from_file
    from_file += t.sql("SELECT count(*) FROM annotations WHERE tract_id = 'marker'").rows[0][0]
    commits = t.log(limit=None)[::-1]
    hot = [c.commit_hash for c in commits if c.generation_config["temperature"] > 0.5]
    assert [c.commit_hash for c in t.query_by_config("temperature", ">", 0.5)] == hot
    rows = t.sql("SELECT count(*), max(position) FROM commits").rows
    assert rows == [(len(commits), t.chain_head.position)], (rows, len(commits), t.chain_head.position)

while not done.exists() or checked == 0:
    with Tract.open(directory, readonly=True) as t:
        check(t)
        t.refresh()
        check(t)
        checked += 2
print(json.dumps([checked, from_file]))
"""


def test_a_writer_and_readers_in_other_processes_share_the_file(tmp_path: Path) -> None:
    directory, done = tmp_path / "log", tmp_path / "writer-done"
    with Tract.open(directory) as t:
        t.commit(user("first"), generation_config={"temperature": 0.9})
        t.sql("SELECT 1")
    mark(directory)  # kept by the writer's catch-ups: seen by each answer that came from the file
    readers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_READER, str(directory), str(done)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    try:
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, str(directory), "40"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        done.touch()
        results = [reader.communicate(timeout=300) for reader in readers]
    assert writer.returncode == 0, writer.stderr
    counts = []
    for reader, (out, err) in zip(readers, results, strict=True):
        assert reader.returncode == 0, err
        counts.append(json.loads(out))
    assert all(checked > 0 for checked, _ in counts)
    assert sum(from_file for _, from_file in counts) > 0, "no reader ever used the shared file"
    assert without_marker(read_elsewhere(directory)) == without_marker(rebuilt(directory, tmp_path))

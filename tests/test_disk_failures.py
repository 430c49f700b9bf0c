"""When the disk fails, tract says so: failed or interrupted fsyncs, and a full disk.

fsync failures are injected by replacing the OS call itself (`os.fdatasync`, `os.fsync`), so
these tests also prove the log really makes that call. A full disk is a real one: a small tmpfs
mounted for the test and filled with a filler file until the kernel says ENOSPC.

What must hold: a failure reaches the caller as a `StorageError` (never lost in a background
thread, never a raw `OSError` or DuckDB exception); writes are refused until the log is
reopened; no temporary file is left behind; and nothing persisted (the index beside the log,
the analytics database) claims more than the log durably holds, so a reopen shows exactly a
replay of the log.

In these logs of one tract, the tract's record numbers are the log's positions, so the chain
head a user reads (`Tract.chain_head`) names the log's last record.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

import events.log
from events import Checkpoint
from tract import DialogueContent, StorageError, Tract

EIO = OSError(errno.EIO, "Input/output error")


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


def answers(t: Tract) -> dict[str, Any]:
    """What a user reads, from the commit view and from the analytics database."""
    return {
        "chain_head": t.chain_head,
        "log": [info.model_dump() for info in t.log(limit=None)],
        "compile": t.compile().model_dump(),
        "commits": t.sql(
            "SELECT commit_hash, position, CAST(generation_config AS VARCHAR) FROM commits ORDER BY position"
        ).rows,
        "usage": t.sql("SELECT head_hash, prompt_tokens, position FROM usage ORDER BY position").rows,
    }


def assert_reopen_matches_a_replay(directory: Path) -> None:
    """A writer's reopen (resuming the saved index, catching analytics.duckdb up) shows exactly what
    a read-only replay of the log alone shows (no index, analytics rebuilt in memory)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a projection the reopen had to throw away would warn
        with Tract.open(directory) as t:
            reopened = answers(t)
        shutil.rmtree(directory / "index", ignore_errors=True)
        for name in ("analytics.duckdb", "analytics.duckdb.wal"):
            (directory / name).unlink(missing_ok=True)
        with Tract.open(directory, readonly=True) as t:
            replayed = answers(t)
    assert reopened == replayed


Head = tuple[int, str]
"""A log's last record as (position, hex hash)."""


def head(t: Tract) -> Head:
    return t.chain_head.position, t.chain_head.hash


def analytics_head(directory: Path) -> Head | None:
    """The last record analytics.duckdb says it has applied (None if it never recorded one)."""
    if not (directory / "analytics.duckdb").exists():
        return None
    con = duckdb.connect(str(directory / "analytics.duckdb"), read_only=True)
    try:
        tables = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        rows = con.execute("SELECT cursor FROM projection_state").fetchall() if "projection_state" in tables else []
    finally:
        con.close()
    if not rows or rows[0][0] is None:
        return None
    checkpoint = msgspec.msgpack.decode(rows[0][0], type=Checkpoint)
    return checkpoint.position, checkpoint.record_hash.hex()


def index_head(directory: Path) -> Head | None:
    """The last record the saved index (index/catalogue) says it covers (None if there is none)."""
    path = directory / "index" / "catalogue"
    if not path.exists():
        return None
    data = path.read_bytes()
    covered, _ = msgspec.msgpack.decode(data[data.index(b"\n") + 1 + 4 :])
    return covered["position"], covered["record_hash"].hex()


def files(directory: Path) -> list[str]:
    """Every file under `directory`, as sorted relative paths."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def index_files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in files(directory) if name.startswith("index/")}


class Fdatasync:
    """`os.fdatasync` that records which files it was called on, and fails when told to."""

    def __init__(self) -> None:
        self.real = os.fdatasync
        self.calls: list[int] = []
        self.failures: list[BaseException] = []
        self.failed = threading.Event()

    def fail(self, error: BaseException, times: int = 1) -> None:
        """The next `times` calls raise `error`; later calls work again, as on Linux, where a
        writeback error is reported once and a retried fsync then "succeeds"."""
        self.failures = [error] * times

    def __call__(self, fd: int) -> None:
        self.calls.append(os.fstat(fd).st_ino)
        if self.failures:
            self.failed.set()
            raise self.failures.pop()
        self.real(fd)


@pytest.fixture
def fdatasync(monkeypatch: pytest.MonkeyPatch) -> Fdatasync:
    fake = Fdatasync()
    monkeypatch.setattr(os, "fdatasync", fake)
    return fake


# ---------------------------------------------------------------------------------------------
# fsync
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["always", "batch"])
def test_the_log_really_calls_fdatasync_on_its_file(log_dir: Path, fdatasync: Fdatasync, sync: str) -> None:
    with Tract.open(log_dir, sync=sync) as t:  # type: ignore[arg-type]
        log_file = (log_dir / "events.log").stat().st_ino
        before = len(fdatasync.calls)
        t.commit(user("made durable"))
        if sync == "always":
            assert fdatasync.calls[before:] == [log_file], "commit() returned without fdatasync on events.log"
    assert log_file in fdatasync.calls[before:], "the appended records were never fdatasynced"


@pytest.mark.parametrize("failure", [EIO, KeyboardInterrupt()], ids=["EIO", "KeyboardInterrupt"])
def test_after_a_failed_fsync_writes_are_refused_and_close_persists_nothing_beyond_it(
    log_dir: Path, fdatasync: Fdatasync, failure: BaseException
) -> None:
    with Tract.open(log_dir) as t:
        t.commit(user("one"))
    saved = index_head(log_dir)
    assert saved is not None
    t = Tract.open(log_dir)
    t.commit(user("two"), generation_config={"model": "m"})
    t.sql("SELECT count(*) FROM commits")
    durable = head(t)
    fdatasync.fail(failure)  # once: the retried fsync at close() would "succeed"
    with pytest.raises(StorageError if isinstance(failure, OSError) else KeyboardInterrupt):
        t.commit(user("written, never known durable"))
    with pytest.raises(StorageError, match="reopen"):
        t.commit(user("refused"))
    with pytest.raises(StorageError, match="reopen"):
        t.sql("SELECT count(*) FROM commits")  # catching up would record a position that is not durable
    assert t.compile().messages[-1].content == "two"  # reading what was acknowledged still works
    t.close()  # the failure was reported already; close releases the log
    assert index_head(log_dir) in (saved, durable), "close saved an index naming a record never known durable"
    assert analytics_head(log_dir) == durable
    assert_reopen_matches_a_replay(log_dir)


def test_a_failed_background_fsync_is_raised_by_the_next_write(log_dir: Path, fdatasync: Fdatasync) -> None:
    t = Tract.open(log_dir, sync="batch")
    t.commit(user("one"))
    t.sql("SELECT count(*) FROM commits")  # syncs the log, then records its position
    durable = head(t)
    fdatasync.fail(EIO)
    t.commit(user("two"))  # written; the background timer's fsync fails
    assert fdatasync.failed.wait(10), "the background sync never ran"
    with pytest.raises(StorageError, match="Input/output error"):
        t.commit(user("three"))
    with pytest.raises(StorageError, match="reopen"):
        t.commit(user("four"))
    t.close()
    assert index_head(log_dir) in (None, durable)
    assert analytics_head(log_dir) == durable
    assert_reopen_matches_a_replay(log_dir)


def test_a_failed_background_fsync_is_raised_by_close(log_dir: Path, fdatasync: Fdatasync) -> None:
    t = Tract.open(log_dir, sync="batch")
    t.commit(user("one"))
    fdatasync.fail(EIO)
    t.commit(user("two"))
    assert fdatasync.failed.wait(10), "the background sync never ran"
    with pytest.raises(StorageError, match="Input/output error"):
        t.close()
    assert t.closed
    assert index_head(log_dir) is None  # after a failed sync, close saves no index
    assert_reopen_matches_a_replay(log_dir)  # the lock was released


def test_analytics_never_record_a_position_the_log_does_not_durably_hold(log_dir: Path, fdatasync: Fdatasync) -> None:
    t = Tract.open(log_dir, sync="batch")
    durable = head(t)  # the new log's first record, fsynced when it was created
    fdatasync.fail(EIO, times=100)
    t.commit(user("never durable"))
    with pytest.raises(StorageError):
        t.sql("SELECT count(*) FROM commits")
    t.close()
    assert analytics_head(log_dir) in (None, durable)
    assert index_head(log_dir) in (None, durable)
    assert_reopen_matches_a_replay(log_dir)


def test_an_interrupted_fsync_in_close_saves_no_index_naming_unsynced_records(
    log_dir: Path, fdatasync: Fdatasync, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events.log, "BATCH_SYNC_INTERVAL", 3600.0)  # close(), not the timer, makes the fsync
    with Tract.open(log_dir, sync="batch") as t:
        t.commit(user("one"))
        durable = head(t)
    saved = index_files(log_dir)
    assert index_head(log_dir) == durable
    t = Tract.open(log_dir, sync="batch")
    t.commit(user("two"))
    fdatasync.fail(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        t.close()
    assert t.closed
    assert index_head(log_dir) == durable
    assert index_files(log_dir) == saved
    assert_reopen_matches_a_replay(log_dir)


def test_an_interrupted_index_save_leaves_no_temporary_file(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue is written to catalogue.tmp and renamed over the old one: interrupted at the
    rename, the temporary file goes and the old catalogue stays."""
    with Tract.open(log_dir) as t:
        t.commit(user("one"))
    before = files(log_dir)
    catalogue = (log_dir / "index" / "catalogue").read_bytes()
    t = Tract.open(log_dir)
    t.commit(user("two"))

    def interrupted(source: object, target: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        t.close()
    monkeypatch.undo()
    assert t.closed
    assert files(log_dir) == before, "close left a file behind"
    assert (log_dir / "index" / "catalogue").read_bytes() == catalogue
    assert_reopen_matches_a_replay(log_dir)


# ---------------------------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------------------------


class Disk:
    """A tmpfs of its own, to fill up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write the filler until the kernel refuses another byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (1 << 20, 4096, 1):
                try:
                    while True:
                        os.write(fd, bytes(chunk))
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
        finally:
            os.close(fd)
        with pytest.raises(OSError) as full:
            (self.path / "probe").write_bytes(b"x")
        assert full.value.errno == errno.ENOSPC
        (self.path / "probe").unlink()

    def free(self) -> None:
        self.filler.unlink()

    def files(self) -> list[str]:
        """Every file on the disk but the filler, as paths relative to it."""
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file() and p != self.filler)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex}"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], check=True)
    try:
        yield Disk(mount_point)
    finally:
        done = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:  # a file there is still open: detach the mount anyway, and say so
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
            raise AssertionError(f"{mount_point} was still in use after the test: {done.stderr.strip()}")


def test_a_commit_on_a_full_disk_raises_storage_error_and_writes_nothing(disk: Disk) -> None:
    directory = disk.path / "log"
    t = Tract.open(directory)
    t.commit(user("one"))
    log = (directory / "events.log").read_bytes()
    disk.fill()
    with pytest.raises(StorageError, match="No space left on device"):
        t.commit(user("too big for what is left " * 1000))
    assert (directory / "events.log").read_bytes() == log
    assert [m.content for m in t.compile().messages] == ["one"]
    disk.free()
    t.commit(user("two"))  # nothing is refused once there is room: the log was never in doubt
    t.close()
    assert_reopen_matches_a_replay(directory)


def test_close_on_a_full_disk_raises_storage_error_and_leaves_no_temporary_file(disk: Disk) -> None:
    directory = disk.path / "log"
    with Tract.open(directory) as t:
        t.commit(user("one"))
    before = disk.files()
    catalogue = (directory / "index" / "catalogue").read_bytes()
    t = Tract.open(directory)
    for n in range(20):
        t.commit(user(f"more {n} " * 20))
    disk.fill()
    with pytest.raises(StorageError, match="No space left on device"):
        t.close()
    assert t.closed
    assert disk.files() == before, "close left a file behind"
    assert (directory / "index" / "catalogue").read_bytes() == catalogue
    disk.free()
    assert_reopen_matches_a_replay(directory)


def test_sql_on_a_full_disk_raises_storage_error_keeps_the_database_and_recovers(disk: Disk) -> None:
    directory = disk.path / "log"
    with Tract.open(directory) as t:
        t.commit(user("one"), generation_config={"model": "a"})
        assert t.sql("SELECT count(*) FROM commits").rows == [(1,)]
    t = Tract.open(directory)
    t.commit(user("two"), generation_config={"model": "b"})
    t.record_usage({"prompt_tokens": 5, "completion_tokens": 1})
    disk.fill()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a full disk is not a damaged database: nothing is rebuilt
        with pytest.raises(StorageError, match="No space left on device"):
            t.sql("SELECT count(*) FROM commits")
        with pytest.raises(StorageError, match="No space left on device"):
            t.query_by_config("model", "=", "b")
        assert (directory / "analytics.duckdb").exists()
        disk.free()
        assert t.sql("SELECT count(*) FROM commits").rows == [(2,)]
        assert [c.message for c in t.query_by_config("model", "=", "b")] == [None]
    t.close()
    assert_reopen_matches_a_replay(directory)


def test_a_full_temporary_directory_during_catch_up_is_a_storage_error_and_leaves_nothing(
    disk: Disk, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(disk.path))  # where the catch-up writes its JSON-lines files
    t = Tract.open(log_dir)
    for n in range(50):
        t.commit(user(f"commit {n} " * 50))
    disk.fill()
    with pytest.raises(StorageError, match="No space left on device"):
        t.sql("SELECT count(*) FROM commits")
    assert disk.files() == []
    disk.free()
    assert t.sql("SELECT count(*) FROM commits").rows == [(50,)]
    t.close()
    assert disk.files() == []


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tract.cli", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_exports_to_a_full_disk_raise_storage_error_and_leave_no_partial_file(disk: Disk, log_dir: Path) -> None:
    with Tract.open(log_dir) as t:
        for n in range(50):
            t.commit(user(f"commit {n} " * 50), generation_config={"model": "m", "n": n})
    out = disk.path / "out"
    out.mkdir()
    disk.fill()
    for command in (["export", log_dir, out / "log.jsonl"], ["export", log_dir, "--as", "parquet", out / "tables"]):
        done = run_cli(*command)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "No space left on device" in done.stderr, done.stderr
        assert disk.files() == [], f"tract {' '.join(map(str, command))} left a partial file"
    with Tract.open(log_dir, readonly=True) as t:
        with pytest.raises(StorageError, match="No space left on device"):
            t.export_parquet(out / "api-tables")
        assert disk.files() == []
        with open(out / "api.jsonl", "wb", buffering=0) as stream, pytest.raises(StorageError, match="No space"):
            t.export_jsonl(stream)
    (out / "api.jsonl").unlink()  # the caller's own stream: the caller's to remove
    disk.free()
    done = run_cli("export", log_dir, out / "log.jsonl")
    assert done.returncode == 0, done.stderr
    assert disk.files() == ["out/log.jsonl"]


def test_an_analytics_database_held_by_another_process_is_a_storage_error_not_damage(log_dir: Path) -> None:
    """Someone inspecting analytics.duckdb with DuckDB holds its lock: the query says so, and the file
    is neither called damaged nor thrown away."""
    with Tract.open(log_dir) as t:
        t.commit(user("one"))
        t.sql("SELECT 1")
        caught_up = head(t)
    database = (log_dir / "analytics.duckdb").stat().st_ino
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
         str(log_dir / "analytics.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with warnings.catch_warnings(), Tract.open(log_dir) as t:
            warnings.simplefilter("error")
            t.commit(user("two"))
            with pytest.raises(StorageError, match="lock"):
                t.sql("SELECT count(*) FROM commits")
            assert (log_dir / "analytics.duckdb").stat().st_ino == database
    finally:
        holder.communicate(timeout=60)
    assert analytics_head(log_dir) == caught_up  # what it held before, kept
    assert_reopen_matches_a_replay(log_dir)

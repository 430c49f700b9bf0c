"""The storage interface's contract, run against every backend: log file, memory, PostgreSQL store.

What Tract, replay, verify, export and the analytics projection rely on, asserted the same way
whatever holds the records: numbering and chains, `expected`, checked reads, the global reader's
cursor, prefixes, verify with anchors, and identical chain heads for identical appends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import GENESIS_HASH, ConcurrentWriteError, Event, EventLog, ReadOnlyError, StorageError, UsageRecorded
from events.opening import AnyLog, open_log
from tract import Tract
from tract.content import DialogueContent

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def usage(n: int, tract: str) -> UsageRecorded:
    return UsageRecorded(
        tract_id=tract, created_at=NOW, head_hash=f"h{n}", prompt_tokens=n, completion_tokens=1, total_tokens=n + 1
    )


def conversation(tract: str, commits: int) -> list[Event]:
    """A tract's real events (its creation, then commits), as a Tract writes them."""
    with Tract.open(tract_id=tract) as source:
        for n in range(commits):
            source.commit(DialogueContent(role="user", text=f"message {n}"))
        return [logged.event for logged in source.events()]


class Backend:
    """Opens writers and readers of one storage place."""

    def __init__(self, kind: str, location: str | Path | None) -> None:
        self.kind = kind
        self.location = location
        self._memory: EventLog | None = EventLog.memory() if kind == "memory" else None
        self._opened: list[AnyLog] = []
        self._writer: AnyLog | None = self._memory

    def writer(self) -> AnyLog:
        """The one writer (a log directory has one at a time)."""
        if self._writer is None:
            self._writer = open_log(self.location)  # type: ignore[arg-type]
            self._opened.append(self._writer)
        return self._writer

    def reader(self) -> AnyLog:
        if self._memory is not None:
            return self._memory
        log = open_log(self.location, readonly=True)  # type: ignore[arg-type]
        self._opened.append(log)
        return log

    def close(self) -> None:
        for log in self._opened:
            log.close()


@pytest.fixture(params=["file", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        from tests.pgstore import fresh_schema, store_url

        with fresh_schema() as schema:
            opened = Backend("postgres", store_url(schema))
            yield opened
            opened.close()
        return
    opened = Backend(request.param, tmp_path / "log" if request.param == "file" else None)
    yield opened
    opened.close()


def chain_ok(log: AnyLog, tract: str) -> list[bytes]:
    """The tract's hashes as read back, each record naming the one before."""
    hashes, prev = [], GENESIS_HASH
    for record, digest in log.read_hashed(tract):
        assert record.prev_hash == prev
        hashes.append(digest)
        prev = digest
    return hashes


def test_appends_are_numbered_and_chained_per_tract(backend: Backend) -> None:
    log = backend.writer()
    assert log.append("a", [usage(1, "a"), usage(2, "a")], expected=0) == 2
    assert log.append("b", [usage(1, "b")], expected=0) == 1
    assert log.append("a", [usage(3, "a")], expected=2) == 3
    assert log.tract_ids() == ["a", "b"]
    assert (log.tract_length("a"), log.tract_length("b"), log.tract_length("none")) == (3, 1, 0)
    assert [r.event.prompt_tokens for r in log.read_tract("a")] == [1, 2, 3]
    assert [r.number for r in log.read_tract("a", 2)] == [2, 3]
    hashes = chain_ok(log, "a")
    assert log.tract_head("a") == hashes[-1] and log.tract_head("none") == GENESIS_HASH
    reader = backend.reader()
    reader.refresh()
    assert [r.event.prompt_tokens for r in reader.read_tract("a")] == [1, 2, 3]
    assert reader.tract_head("a") == hashes[-1]


def test_a_stale_expected_is_refused_naming_the_tract_and_writes_nothing(backend: Backend) -> None:
    log = backend.writer()
    log.append("a", [usage(1, "a")], expected=0)
    with pytest.raises(ConcurrentWriteError, match="'a'"):
        log.append("a", [usage(2, "a")], expected=0)
    with pytest.raises(ValueError, match="one tract"):
        log.append("a", [usage(2, "a"), usage(3, "b")], expected=1)
    assert log.tract_length("a") == 1 and log.tract_length("b") == 0
    assert [r.event.prompt_tokens for r in log.read_tract("a")] == [1]


def test_a_reader_cannot_append(backend: Backend) -> None:
    if backend.kind == "memory":
        return  # a memory log has no reader of its own: nothing else holds its records
    backend.writer().append("a", [usage(1, "a")], expected=0)
    with pytest.raises(ReadOnlyError):
        backend.reader().append("a", [usage(2, "a")], expected=1)


def test_known_reads_and_single_records_are_checked_against_their_hashes(backend: Backend) -> None:
    log = backend.writer()
    log.append("a", [usage(n, "a") for n in range(1, 6)], expected=0)
    hashes = [digest for _, digest in log.read_hashed("a")]
    known = list(log.read_known("a", {2: hashes[1], 4: hashes[3]}))
    assert [r.number for r in known] == [2, 4]
    assert log.read_record("a", 3).event.prompt_tokens == 3
    assert log.read_record("a", 5, expected_hash=hashes[4]).number == 5
    with pytest.raises(StorageError):
        list(log.read_known("a", {2: hashes[0]}))
    with pytest.raises(StorageError):
        log.read_record("a", 6)
    assert log.record_length("a", 1) > 0


def test_the_global_reader_resumes_from_its_cursor(backend: Backend) -> None:
    log = backend.writer()
    log.append("a", [usage(1, "a"), usage(2, "a")], expected=0)
    log.append("b", [usage(1, "b")], expected=0)
    first = log.global_reader()
    seen = [(r.event.tract_id, r.number) for r in first.read()]
    assert sorted(seen) == [("a", 1), ("a", 2), ("b", 1)]
    cursor = first.cursor
    first.close()
    log.append("b", [usage(2, "b")], expected=1)
    log.append("a", [usage(3, "a")], expected=2)
    log.refresh()
    second = log.global_reader()
    after = second.resume_point(cursor)
    assert after is not None
    assert sorted((r.event.tract_id, r.number) for r in second.read(after)) == [("a", 3), ("b", 2)]
    assert second.until.end > first.until.end
    assert second.resume_point(b"not a cursor") is None
    second.close()


def test_a_prefix_holds_the_tract_up_to_a_record(backend: Backend) -> None:
    log = backend.writer()
    for n in range(1, 5):  # one batch each: a file prefix's global reader ends at a batch's end
        log.append("a", [usage(n, "a")], expected=n - 1)
    hashes = [digest for _, digest in log.read_hashed("a")]
    view = log.prefix("a", 2)
    try:
        assert view.readonly and view.tract_length("a") == 2
        assert [r.number for r in view.read_tract("a")] == [1, 2]
        assert view.tract_head("a") == hashes[1]
        reader = view.global_reader()
        assert [(r.event.tract_id, r.number) for r in reader.read()] == [("a", 1), ("a", 2)]
        reader.close()
    finally:
        view.close()


def test_verify_reports_heads_and_checks_anchors(backend: Backend) -> None:
    log = backend.writer()
    log.append("a", conversation("a", 2), expected=0)
    log.append("b", conversation("b", 0), expected=0)
    head = log.tract_head("a").hex()
    report = log.verify()
    assert report.ok and report.records_checked == 4
    assert (report.heads["a"].number, report.heads["a"].hash) == (3, head)
    assert log.verify(anchor=("a", 3, head)).ok
    wrong = log.verify(anchor=("a", 2, head))
    assert not wrong.ok and wrong.problem is not None and wrong.problem.kind == "anchor mismatch"
    missing = log.verify(anchor=("a", 9, head))
    assert missing.problem is not None and missing.problem.kind == "anchor missing"


def test_the_same_appends_give_the_same_chain_heads_on_every_backend(backend: Backend) -> None:
    log, reference = backend.writer(), EventLog.memory()
    for target in (log, reference):
        target.append("a", [usage(1, "a"), usage(2, "a")], expected=0)
        target.append("a", [usage(3, "a")], expected=2)
    assert log.tract_head("a") == reference.tract_head("a")
    assert [d for _, d in log.read_hashed("a")] == [d for _, d in reference.read_hashed("a")]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3), st.booleans()), min_size=1, max_size=12))
def test_catching_up_in_global_order_delivers_every_record_once_in_order(
    backend: Backend, operations: list[tuple[int, int, bool]]
) -> None:
    """Random appends to a few tracts, a reader catching up between some of them: what the reader
    delivered, per tract, is exactly what was appended, in order, each record once."""
    log = backend.writer()
    run = uuid.uuid4().hex[:8]
    tracts = [f"{run}-{i}" for i in range(3)]
    appended: dict[str, list[int]] = {t: [] for t in tracts}
    delivered: dict[str, list[int]] = {t: [] for t in tracts}
    cursor: bytes | None = None
    counter = 0

    def catch_up() -> bytes:
        log.refresh()
        reader: Any = log.global_reader()
        try:
            after = reader.resume_point(cursor)
            records = reader.read(after) if after is not None else reader.read()
            if after is None:
                for values in delivered.values():
                    values.clear()
            for record in records:
                if record.event.tract_id in delivered:
                    assert record.number == len(delivered[record.event.tract_id]) + 1
                    delivered[record.event.tract_id].append(record.event.prompt_tokens)
            return reader.cursor
        finally:
            reader.close()

    for which, size, look in operations:
        tract = tracts[which]
        events = [usage(counter + i, tract) for i in range(size)]
        counter += size
        log.append(tract, events, expected=len(appended[tract]))
        appended[tract] += [e.prompt_tokens for e in events]
        if look:
            cursor = catch_up()
    catch_up()
    assert delivered == appended
    for tract in tracts:
        assert [r.event.prompt_tokens for r in log.read_tract(tract)] == appended[tract]

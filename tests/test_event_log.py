"""The append-only log on its own: the storage interface (per-tract numbers and chains,
`expected`, one tract per batch), framing, batches, torn tails, corruption, locking, and
the index beside the log (resumed when it names this log's records, rejected when not)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import typing
import zlib
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from events import (
    GENESIS_HASH,
    LOG_FILE,
    ConcurrentWriteError,
    CorruptLogError,
    EventLog,
    LogFormatError,
    LogLockedError,
    ReadOnlyError,
    UsageRecorded,
)
from events.framing import FILE_HEADER, FORMAT_VERSION, MAGIC
from events.types import EVENT_CLASSES, AnyEvent, Event

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
CATALOGUE = Path("index") / "catalogue"


def usage(n: int, tract: str = "t") -> UsageRecorded:
    return UsageRecorded(
        tract_id=tract, created_at=NOW, head_hash=f"h{n}", prompt_tokens=n, completion_tokens=1, total_tokens=n + 1
    )


def write_batches(directory: Path, batches: list[int], *, tract: str = "t", first: int = 0) -> list[int]:
    """Append batches of the given sizes to `tract` (a clean close saves the index); returns the
    byte size of the file after each batch."""
    sizes = []
    log = EventLog.open(directory)
    n = first
    for size in batches:
        log.append(tract, [usage(n + i, tract) for i in range(size)])
        n += size
        sizes.append((directory / LOG_FILE).stat().st_size)
    log.close()
    return sizes


def tokens(log: EventLog, tract: str = "t", first: int = 1) -> list[int]:
    return [record.event.prompt_tokens for record in log.read_tract(tract, first)]


def from_the_log_alone(directory: Path) -> dict[str, list[int]]:
    """Each tract's events as a reader without the index finds them (a scan that refuses numbers
    that are not dense, then reads that check every record's number and chain link)."""
    shutil.rmtree(directory / "index", ignore_errors=True)
    log = EventLog.open(directory, readonly=True)
    try:
        return {tract: tokens(log, tract) for tract in log.tract_ids()}
    finally:
        log.close()


def chain_hashes(log: EventLog) -> dict[tuple[str, int], bytes]:
    """(tract, number) -> the record's chain hash, computed here from the framed bytes
    (SHA-256 of the record body after the flags byte), not by the log."""
    hashes = {}
    for frame in log.frames():
        body = bytes(frame.record[1:])
        number, _, event = msgspec.msgpack.decode(body)
        hashes[event["tract_id"], number] = hashlib.sha256(body).digest()
    return hashes


# -- the storage interface ------------------------------------------------------------


def test_numbers_are_dense_and_events_round_trip(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    assert log.tract_ids() == [] and log.tract_length("t") == 0 and log.tract_head("t") == GENESIS_HASH
    assert log.append("t", [usage(1), usage(2)]) == 2
    assert log.append("t", [usage(3)]) == 3
    records = list(log.read_tract("t"))
    assert [r.number for r in records] == [1, 2, 3]
    assert [r.event for r in records] == [usage(1), usage(2), usage(3)]
    assert [r.number for r in log.read_tract("t", 2)] == [2, 3]
    assert [r.number for r in log.read_tract("t", 1, 2)] == [1, 2]
    assert log.tract_ids() == ["t"] and log.tract_length("t") == 3
    log.close()


def test_records_are_hash_chained(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    log.append("t", [usage(1)])
    first_head = log.tract_head("t")
    log.append("t", [usage(2)])
    records = list(log.read_tract("t"))
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == first_head
    assert log.tract_head("t") != first_head
    hashes = chain_hashes(log)
    assert first_head == hashes["t", 1] and log.tract_head("t") == hashes["t", 2]
    log.close()


def test_reopen_restores_head_and_chain(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    log.append("t", [usage(1), usage(2)])
    head = (log.tract_length("t"), log.tract_head("t"))
    log.close()
    again = EventLog.open(log_dir)
    assert (again.tract_length("t"), again.tract_head("t")) == head
    again.append("t", [usage(3)])
    assert [(r.number, r.prev_hash) for r in again.read_tract("t", 3)] == [(3, head[1])]
    again.close()


def test_a_stale_expected_count_is_a_concurrent_write_and_writes_nothing(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    assert log.append("t", [usage(1)], expected=0) == 1
    assert log.append("t", [usage(2)], expected=1) == 2
    before = (log_dir / LOG_FILE).read_bytes()
    head = log.tract_head("t")
    for stale in (0, 1, 3):
        with pytest.raises(ConcurrentWriteError, match="another writer"):
            log.append("t", [usage(9)], expected=stale)
    assert (log_dir / LOG_FILE).read_bytes() == before
    assert (log.tract_length("t"), log.tract_head("t")) == (2, head)
    assert log.append("u", [usage(1, "u")], expected=0) == 1  # `expected` is per tract
    assert log.append("t", [usage(3)], expected=2) == 3
    assert tokens(log) == [1, 2, 3]
    log.close()
    assert from_the_log_alone(log_dir) == {"t": [1, 2, 3], "u": [1]}


@pytest.mark.parametrize("stray_at", [0, 1, 2])
def test_a_batch_holding_events_of_two_tracts_is_refused_and_writes_nothing(log_dir: Path, stray_at: int) -> None:
    log = EventLog.open(log_dir)
    log.append("t", [usage(1)])
    log.append("u", [usage(1, "u")])
    before = (log_dir / LOG_FILE).read_bytes()
    batch = [usage(2), usage(3), usage(4)]
    batch[stray_at] = usage(2, "u")
    with pytest.raises(ValueError, match="one tract"):
        log.append("t", batch)
    assert (log_dir / LOG_FILE).read_bytes() == before
    assert (log.tract_length("t"), log.tract_length("u")) == (1, 1)
    assert log.append("t", [usage(2)]) == 2 and log.append("u", [usage(2, "u")]) == 2
    log.close()
    assert from_the_log_alone(log_dir) == {"t": [1, 2], "u": [1, 2]}


def interleave(log: EventLog) -> dict[str, list[int]]:
    """Batches of three tracts in an interleaved order; returns each tract's events' tokens."""
    written: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    plan = [("a", 2), ("b", 1), ("a", 1), ("c", 3), ("b", 2), ("a", 3), ("c", 1), ("b", 1)]
    for n, (tract, size) in enumerate(plan):
        events = [usage(100 * n + i, tract) for i in range(size)]
        count = len(written[tract])
        assert log.append(tract, events, expected=count) == count + size
        written[tract] += [e.prompt_tokens for e in events]
    return written


@pytest.mark.parametrize("reopen", ["same log", "index resumed", "index rebuilt", "memory"])
def test_each_tract_is_numbered_densely_whatever_the_interleaving(log_dir: Path, reopen: str) -> None:
    log = EventLog.memory() if reopen == "memory" else EventLog.open(log_dir)
    written = interleave(log)
    if reopen in ("index resumed", "index rebuilt"):
        log.close()
        if reopen == "index rebuilt":
            shutil.rmtree(log_dir / "index")
        log = EventLog.open(log_dir, readonly=True)
    assert log.tract_ids() == ["a", "b", "c"]
    for tract, expected in written.items():
        records = list(log.read_tract(tract))
        assert [r.number for r in records] == list(range(1, len(expected) + 1))
        assert [r.event.prompt_tokens for r in records] == expected
        assert {r.event.tract_id for r in records} == {tract}
        assert log.tract_length(tract) == len(expected)
        assert [r.number for r in log.read_tract(tract, 2, 3)] == [2, 3]
    reader = log.global_reader()
    in_order = [(r.event.tract_id, r.number) for r in reader.read()]
    reader.close()
    assert len(in_order) == sum(map(len, written.values()))
    assert [n for tract, n in in_order if tract == "a"] == [1, 2, 3, 4, 5, 6]
    assert in_order[:4] == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]
    log.close()


def test_each_tract_chain_links_only_its_own_records(log_dir: Path, tmp_path: Path) -> None:
    log = EventLog.open(log_dir)
    written = interleave(log)
    hashes = chain_hashes(log)
    for tract in written:
        records = list(log.read_tract(tract))
        links = [record.prev_hash for record in records]
        assert links == [GENESIS_HASH] + [hashes[tract, n] for n in range(1, len(records))]
        assert log.tract_head(tract) == hashes[tract, len(records)]
    # A tract's chain is the same with or without other tracts' records between its own.
    alone = EventLog.open(tmp_path / "alone")
    for tract in written:
        for record in log.read_tract(tract):
            alone.append(tract, [record.event])
        assert alone.tract_head(tract) == log.tract_head(tract)
        assert list(alone.read_tract(tract)) == list(log.read_tract(tract))
    alone.close()
    log.close()


@pytest.mark.parametrize("backend", ["file", "memory"])
def test_records_read_by_their_known_hashes_are_those_records_and_no_others(log_dir: Path, backend: str) -> None:
    log = EventLog.memory() if backend == "memory" else EventLog.open(log_dir)
    written = interleave(log)
    hashes = chain_hashes(log)
    wanted = {1: hashes["a", 1], 4: hashes["a", 4], 6: hashes["a", 6]}
    records = list(log.read_known("a", wanted))
    assert [(r.number, r.event.prompt_tokens) for r in records] == [(n, written["a"][n - 1]) for n in (1, 4, 6)]
    with pytest.raises(CorruptLogError) as raised:  # a hash that is not the record's: never served
        list(log.read_known("a", {2: hashes["a", 2], 5: hashes["a", 3]}))
    assert (raised.value.tract_id, raised.value.position) == ("a", 5)
    with pytest.raises(CorruptLogError) as raised:  # a record the tract does not hold
        list(log.read_known("b", {9: hashes["b", 1]}))
    assert (raised.value.tract_id, raised.value.position) == ("b", 9)
    log.close()


def test_memory_log_has_the_same_behaviour() -> None:
    log = EventLog.memory()
    log.append("t", [usage(1), usage(2)])
    log.append("t", [usage(3)])
    assert [r.number for r in log.read_tract("t", 2)] == [2, 3]
    assert next(log.read_tract("t", 3)).prev_hash == chain_hashes(log)["t", 2]
    with pytest.raises(ConcurrentWriteError):
        log.append("t", [usage(4)], expected=2)
    assert log.tract_length("t") == 3 and tokens(log) == [1, 2, 3]


# -- torn tails and damage ------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 5, 12, 13, 30])
def test_torn_tail_is_cut_back_to_the_last_whole_batch(log_dir: Path, cut: int) -> None:
    sizes = write_batches(log_dir, [1, 2, 1])
    path = log_dir / LOG_FILE
    with open(path, "r+b") as handle:
        handle.truncate(sizes[-1] - cut)
    with pytest.warns(RuntimeWarning, match="torn tail"):
        log = EventLog.open(log_dir)
    assert log.tract_length("t") == 3
    assert tokens(log) == [0, 1, 2]
    assert path.stat().st_size == sizes[1]
    assert log.append("t", [usage(9)]) == 4
    log.close()
    assert from_the_log_alone(log_dir) == {"t": [0, 1, 2, 9]}


def test_half_written_batch_is_dropped_whole(log_dir: Path) -> None:
    sizes = write_batches(log_dir, [1, 3])
    # Keep the first two records of the 3-record batch intact, tear the third.
    with open(log_dir / LOG_FILE, "r+b") as handle:
        handle.truncate(sizes[1] - 3)
    with pytest.warns(RuntimeWarning, match="torn tail"):
        log = EventLog.open(log_dir)
    assert log.tract_length("t") == 1 and tokens(log) == [0]
    log.close()


def test_zero_filled_tail_counts_as_torn(log_dir: Path) -> None:
    write_batches(log_dir, [1, 1])
    with open(log_dir / LOG_FILE, "ab") as handle:
        handle.write(bytes(100))
    with pytest.warns(RuntimeWarning):
        log = EventLog.open(log_dir)
    assert log.tract_length("t") == 2
    log.close()


def damaged_read(log_dir: Path, *, with_index: bool) -> CorruptLogError:
    """The error that opening the log, then reading its tract, raises."""
    if not with_index:
        shutil.rmtree(log_dir / "index")
    with pytest.raises(CorruptLogError) as caught:
        log = EventLog.open(log_dir)  # without an index, the scan at open finds it
        try:
            list(log.read_tract("t"))  # with one, open reads only the last record; the read finds it
        finally:
            log.close()
    return caught.value


@pytest.mark.parametrize("with_index", [True, False], ids=["index", "no index"])
def test_corrupt_middle_record_names_its_position(log_dir: Path, with_index: bool) -> None:
    sizes = write_batches(log_dir, [1, 1, 1])
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[sizes[0] + 20] ^= 0xFF  # inside record 2's body
    path.write_bytes(bytes(data))
    error = damaged_read(log_dir, with_index=with_index)
    assert error.position == 2
    assert error.kind == "bad checksum"
    assert "position 2" in str(error)
    assert path.read_bytes() == bytes(data), "a corrupt log must not be modified"


@pytest.mark.parametrize("with_index", [True, False], ids=["index", "no index"])
def test_damaged_length_field_is_corruption_not_a_torn_tail(log_dir: Path, with_index: bool) -> None:
    sizes = write_batches(log_dir, [1, 1, 1])
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[sizes[0] + 2] ^= 0x40  # record 2's length now points far past the end
    path.write_bytes(bytes(data))
    error = damaged_read(log_dir, with_index=with_index)
    assert error.position == 2 and error.kind == "bad header"
    assert path.read_bytes() == bytes(data), "a corrupt log must not be modified"


# -- opening ----------------------------------------------------------------------------


def test_second_writer_is_refused_and_reader_is_not(log_dir: Path) -> None:
    writer = EventLog.open(log_dir)
    writer.append("t", [usage(1)])
    with pytest.raises(LogLockedError, match="already open for writing"):
        EventLog.open(log_dir)
    reader = EventLog.open(log_dir, readonly=True)
    assert reader.tract_length("t") == 1
    writer.append("t", [usage(2)])
    assert reader.tract_length("t") == 1
    reader.refresh()
    assert reader.tract_length("t") == 2 and tokens(reader) == [1, 2]
    assert reader.tract_head("t") == writer.tract_head("t")
    with pytest.raises(ReadOnlyError):
        reader.append("t", [usage(3)])
    reader.close()
    writer.close()
    EventLog.open(log_dir).close()  # the lock is released on close


def test_newer_format_version_is_a_clear_error(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / LOG_FILE).write_bytes(FILE_HEADER.pack(MAGIC, FORMAT_VERSION + 1))
    with pytest.raises(LogFormatError, match="newer"):
        EventLog.open(log_dir)


def test_not_a_log_is_a_clear_error(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / LOG_FILE).write_bytes(b"hello, this is not a log at all")
    with pytest.raises(LogFormatError, match="not a tract log"):
        EventLog.open(log_dir)


def test_readonly_open_of_missing_log_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError):
        EventLog.open(tmp_path / "absent", readonly=True)
    assert not (tmp_path / "absent").exists()


# -- the index beside the log -----------------------------------------------------------


def damage_record(log_dir: Path, number: int) -> None:
    """Flip a byte inside the body of the log's record `number` (whatever its tract)."""
    log = EventLog.open(log_dir, readonly=True)
    frame = list(log.frames())[number - 1]
    log.close()
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[frame.end - 3] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_saved_index_is_resumed_and_only_the_tail_is_scanned(log_dir: Path, tmp_path: Path) -> None:
    write_batches(log_dir, [2, 2])
    older = tmp_path / "older-index"
    shutil.copytree(log_dir / "index", older)  # the index as saved when the log held 4 records
    write_batches(log_dir, [1], first=4)
    shutil.rmtree(log_dir / "index")
    shutil.copytree(older, log_dir / "index")
    # Record 1 is damaged: a scan of the log would stop there. The index covers it, so open
    # checks the index's last record, scans record 5 alone, and succeeds.
    damage_record(log_dir, 1)
    for readonly in (True, False):
        log = EventLog.open(log_dir, readonly=readonly)
        assert log.tract_length("t") == 5
        assert tokens(log, first=3) == [2, 3, 4]
        for first in (1, 2):  # the index is not believed: reads check the log (from 2: record 1's hash)
            with pytest.raises(CorruptLogError) as caught:
                list(log.read_tract("t", first))
            assert caught.value.position == 1 and caught.value.kind == "bad checksum"
        log.close()


def test_a_writer_never_appends_after_a_damaged_chain_head(log_dir: Path) -> None:
    """Tract a's last record is damaged but the log's last record (u's) is whole, so open resumes
    the index; appending to a reads a's head back first, finds the damage and writes nothing."""
    log = EventLog.open(log_dir)
    for tract, n in (("a", 1), ("u", 1), ("a", 2), ("u", 2)):
        log.append(tract, [usage(n, tract)])
    log.close()
    damage_record(log_dir, 3)  # a's record 2
    before = (log_dir / LOG_FILE).read_bytes()
    log = EventLog.open(log_dir)
    assert tokens(log, "u") == [1, 2]
    for attempt in (lambda: log.append("a", [usage(3, "a")]), lambda: log.tract_head("a")):
        with pytest.raises(CorruptLogError) as caught:
            attempt()
        where = (caught.value.tract_id, caught.value.position)
        assert where in ((None, 3), ("a", 2)) and caught.value.kind == "bad checksum"
    log.close()
    assert (log_dir / LOG_FILE).read_bytes() == before


def rewrite_catalogue(log_dir: Path, change: str) -> None:
    """Rewrite index/catalogue with its checksum recomputed around a body changed as `change` says."""
    path = log_dir / CATALOGUE
    data = path.read_bytes()
    magic = data[: data.index(b"\n") + 1]
    covered, tracts = msgspec.msgpack.decode(data[len(magic) + 4 :])
    if change == "record hash":  # names a record this log does not hold
        covered["record_hash"] = hashlib.sha256(b"not a record of this log").digest()
    elif change == "place":  # names a place in the log where no record starts
        covered["offset"] += 1
    elif change == "end":  # claims the log is longer than it is
        covered["end"] += 1000
    else:  # "counts": names the log's real last record, but more records (and a tract) than it holds
        tracts = [["ghost", 3]] + [[tract, count + 5] for tract, count in tracts]
    body = msgspec.msgpack.encode([covered, tracts])
    path.write_bytes(magic + struct.pack("<I", zlib.crc32(body)) + body)


def assert_as_written(log_dir: Path) -> None:
    """Readers and a writer see exactly the log's records (4 of tract t), and the writer continues it."""
    for readonly in (True, False):
        log = EventLog.open(log_dir, readonly=readonly)
        assert tokens(log) == [0, 1, 2, 3] and log.tract_length("t") == 4
        assert list(log.read_tract("ghost")) == [] and log.tract_length("ghost") == 0
        assert log.tract_ids() == ["t"]
        if readonly:
            log.close()
            continue
        assert log.append("t", [usage(4)], expected=4) == 5
        log.close()
    assert from_the_log_alone(log_dir) == {"t": [0, 1, 2, 3, 4]}


def test_a_foreign_index_is_rejected_and_rebuilt_from_the_log(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_batches(a, [2, 2])
    write_batches(b, [1, 3], first=50)  # same tract, same sizes and offsets, other events
    shutil.rmtree(a / "index")
    shutil.copytree(b / "index", a / "index")
    assert_as_written(a)


@pytest.mark.parametrize("change", ["record hash", "place", "end"])
def test_a_forged_catalogue_that_names_no_record_of_the_log_is_rejected(log_dir: Path, change: str) -> None:
    write_batches(log_dir, [2, 2])
    rewrite_catalogue(log_dir, change)
    assert_as_written(log_dir)


def test_a_catalogue_claiming_records_the_log_lacks_costs_a_rebuild_when_read(tmp_path: Path) -> None:
    """Counts are not checked at open (that would cost reading every tract), but every read is,
    and so is an append: reading a tract, or appending to it, first rebuilds the index from the log."""
    read_first, append_first = tmp_path / "read", tmp_path / "append"
    for directory in (read_first, append_first):
        write_batches(directory, [2, 2])
        rewrite_catalogue(directory, "counts")
    assert_as_written(read_first)
    log = EventLog.open(append_first)
    assert log.append("t", [usage(4)], expected=4) == 5
    assert log.tract_ids() == ["t"] and tokens(log) == [0, 1, 2, 3, 4]
    log.close()
    assert from_the_log_alone(append_first) == {"t": [0, 1, 2, 3, 4]}


def test_a_damaged_catalogue_costs_a_rebuild(log_dir: Path) -> None:
    write_batches(log_dir, [2, 2])
    path = log_dir / CATALOGUE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert_as_written(log_dir)


INTERRUPTED_SAVES = {
    "the catalogue half written to catalogue.tmp": ("old", "new", "half"),
    "the pairs saved, not the catalogue": ("old", "new", None),
    "the catalogue saved, not the pairs": ("new", "old", None),
    "the pairs file extended, its new pairs lost": ("new", "zeros", None),
    "the catalogue renamed, its bytes lost": ("empty", "new", None),
}


@pytest.mark.parametrize("state", list(INTERRUPTED_SAVES))
def test_whatever_an_interrupted_index_save_leaves_the_next_open_serves_the_log(log_dir: Path, state: str) -> None:
    """A save writes the tract's new pairs, then catalogue.tmp, then renames it, none of it fsynced:
    a kill (or an OS crash) can leave any mix of the old and new files."""
    write_batches(log_dir, [2, 2])
    (pairs_path,) = (log_dir / "index").glob("*.idx")
    old = {"catalogue": (log_dir / CATALOGUE).read_bytes(), "pairs": pairs_path.read_bytes()}
    write_batches(log_dir, [2], first=4)
    new = {"catalogue": (log_dir / CATALOGUE).read_bytes(), "pairs": pairs_path.read_bytes()}
    catalogue, pairs, temporary = INTERRUPTED_SAVES[state]
    chosen = {"old": old, "new": new}
    (log_dir / CATALOGUE).write_bytes(b"" if catalogue == "empty" else chosen[catalogue]["catalogue"])
    if pairs == "zeros":
        pairs_path.write_bytes(old["pairs"] + bytes(len(new["pairs"]) - len(old["pairs"])))
    else:
        pairs_path.write_bytes(chosen[pairs]["pairs"])
    if temporary == "half":
        (log_dir / "index" / "catalogue.tmp").write_bytes(new["catalogue"][: len(new["catalogue"]) // 2])
    for readonly in (True, False):
        log = EventLog.open(log_dir, readonly=readonly)
        assert tokens(log) == [0, 1, 2, 3, 4, 5] and log.tract_length("t") == 6
        if not readonly:
            assert log.append("t", [usage(6)], expected=6) == 7
        log.close()
    assert not (log_dir / "index" / "catalogue.tmp").exists(), "the next save left the temporary file"
    log = EventLog.open(log_dir, readonly=True)
    assert tokens(log) == list(range(7))
    log.close()
    assert from_the_log_alone(log_dir) == {"t": list(range(7))}


# -- durability settings --------------------------------------------------------------


def test_batch_sync_mode_keeps_everything_across_a_clean_close(log_dir: Path) -> None:
    log = EventLog.open(log_dir, sync="batch")
    for n in range(50):
        log.append("t", [usage(n)])
    log.close()
    reopened = EventLog.open(log_dir, readonly=True)
    assert reopened.tract_length("t") == 50 and tokens(reopened) == list(range(50))
    reopened.close()


def test_invalid_sync_mode_is_refused(log_dir: Path) -> None:
    with pytest.raises(ValueError, match="sync"):
        EventLog.open(log_dir, sync="sometimes")  # type: ignore[arg-type]


def test_any_event_is_every_event_class_and_nothing_else() -> None:
    """`AnyEvent` is spelled out for the type checker; decoding and `EVENT_TYPES` use `EVENT_CLASSES`:
    the two name the same classes, in the same order, and every kind of Event is among them."""
    assert typing.get_args(AnyEvent) == EVENT_CLASSES
    assert set(Event.__subclasses__()) == set(EVENT_CLASSES)

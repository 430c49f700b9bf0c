"""The append-only log on its own: framing, batches, torn tails, corruption, locking."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from events import (
    GENESIS_HASH,
    LOG_FILE,
    EventLog,
    LogCorruptError,
    LogFormatError,
    LogLockedError,
    LogReadOnlyError,
    UsageRecorded,
)
from events.framing import FILE_HEADER, FORMAT_VERSION, MAGIC

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def usage(n: int) -> UsageRecorded:
    return UsageRecorded(tract_id="t", created_at=NOW, head_hash=f"h{n}", prompt_tokens=n, completion_tokens=1, total_tokens=n + 1)


def write_batches(directory: Path, batches: list[int]) -> list[int]:
    """Append batches of the given sizes; returns the byte size of the file after each batch."""
    sizes = []
    with_log = EventLog.open(directory)
    n = 0
    for size in batches:
        with_log.append([usage(n + i) for i in range(size)])
        n += size
        sizes.append((directory / LOG_FILE).stat().st_size)
    with_log.close()
    return sizes


def test_positions_are_dense_and_events_round_trip(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    assert log.head_position == 0 and log.head_hash == GENESIS_HASH
    assert log.append([usage(1), usage(2)]) == 2
    assert log.append([usage(3)]) == 3
    records = list(log.read())
    assert [r.position for r in records] == [1, 2, 3]
    assert [r.event for r in records] == [usage(1), usage(2), usage(3)]
    assert [r.position for r in log.read(2)] == [2, 3]
    assert [r.position for r in log.read(1, 2)] == [1, 2]
    log.close()


def test_records_are_hash_chained(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    log.append([usage(1)])
    first_head = log.head_hash
    log.append([usage(2)])
    records = list(log.read())
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == first_head
    assert log.head_hash != first_head
    log.close()


def test_reopen_restores_head_and_chain(log_dir: Path) -> None:
    log = EventLog.open(log_dir)
    log.append([usage(1), usage(2)])
    head = (log.head_position, log.head_hash)
    log.close()
    again = EventLog.open(log_dir)
    assert (again.head_position, again.head_hash) == head
    again.append([usage(3)])
    assert [r.prev_hash for r in again.read(3)] == [head[1]]
    again.close()


@pytest.mark.parametrize("cut", [1, 5, 12, 13, 30])
def test_torn_tail_is_cut_back_to_the_last_whole_batch(log_dir: Path, cut: int) -> None:
    sizes = write_batches(log_dir, [1, 2, 1])
    path = log_dir / LOG_FILE
    with open(path, "r+b") as handle:
        handle.truncate(sizes[-1] - cut)
    with pytest.warns(RuntimeWarning, match="torn tail"):
        log = EventLog.open(log_dir)
    assert log.head_position == 3
    assert [r.event.prompt_tokens for r in log.read()] == [0, 1, 2]
    assert path.stat().st_size == sizes[1]
    log.append([usage(9)])
    assert log.head_position == 4
    log.close()


def test_half_written_batch_is_dropped_whole(log_dir: Path) -> None:
    sizes = write_batches(log_dir, [1, 3])
    # Keep the first two records of the 3-record batch intact, tear the third.
    with open(log_dir / LOG_FILE, "r+b") as handle:
        handle.truncate(sizes[1] - 3)
    with pytest.warns(RuntimeWarning, match="torn tail"):
        log = EventLog.open(log_dir)
    assert log.head_position == 1
    log.close()


def test_zero_filled_tail_counts_as_torn(log_dir: Path) -> None:
    write_batches(log_dir, [1, 1])
    with open(log_dir / LOG_FILE, "ab") as handle:
        handle.write(bytes(100))
    with pytest.warns(RuntimeWarning):
        log = EventLog.open(log_dir)
    assert log.head_position == 2
    log.close()


def test_corrupt_middle_record_names_its_position(log_dir: Path) -> None:
    sizes = write_batches(log_dir, [1, 1, 1])
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[sizes[0] + 20] ^= 0xFF  # inside record 2's body
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorruptError) as caught:
        EventLog.open(log_dir)
    assert caught.value.position == 2
    assert caught.value.kind == "bad checksum"
    assert "position 2" in str(caught.value)
    assert path.read_bytes() == bytes(data), "a corrupt log must not be modified"


def test_damaged_length_field_is_corruption_not_a_torn_tail(log_dir: Path) -> None:
    sizes = write_batches(log_dir, [1, 1, 1])
    path = log_dir / LOG_FILE
    data = bytearray(path.read_bytes())
    data[sizes[0] + 2] ^= 0x40  # record 2's length now points far past the end
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorruptError) as caught:
        EventLog.open(log_dir)
    assert caught.value.position == 2 and caught.value.kind == "bad header"


def test_second_writer_is_refused_and_reader_is_not(log_dir: Path) -> None:
    writer = EventLog.open(log_dir)
    writer.append([usage(1)])
    with pytest.raises(LogLockedError, match="already open for writing"):
        EventLog.open(log_dir)
    reader = EventLog.open(log_dir, readonly=True)
    assert reader.head_position == 1
    writer.append([usage(2)])
    assert reader.refresh() == 2
    with pytest.raises(LogReadOnlyError):
        reader.append([usage(3)])
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


def test_resume_from_checkpoint_skips_the_scan_and_rejects_a_foreign_one(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_batches(a, [2, 2])
    write_batches(b, [1, 3])
    log = EventLog.open(a)
    checkpoint = log.checkpoint()
    log.close()
    resumed = EventLog.open(a, resume=checkpoint)
    assert resumed.resumed and resumed.head_position == 4
    assert [r.position for r in resumed.read(1)] == [1, 2, 3, 4]
    resumed.close()
    foreign = EventLog.open(b, resume=checkpoint)
    assert not foreign.resumed and foreign.head_position == 4
    foreign.close()


def test_batch_sync_mode_keeps_everything_across_a_clean_close(log_dir: Path) -> None:
    log = EventLog.open(log_dir, sync="batch")
    for n in range(50):
        log.append([usage(n)])
    log.close()
    assert EventLog.open(log_dir, readonly=True).head_position == 50


def test_invalid_sync_mode_is_refused(log_dir: Path) -> None:
    with pytest.raises(ValueError, match="sync"):
        EventLog.open(log_dir, sync="sometimes")  # type: ignore[arg-type]


def test_memory_log_has_the_same_behaviour() -> None:
    log = EventLog.memory()
    log.append([usage(1), usage(2)])
    log.append([usage(3)])
    assert [r.position for r in log.read(2)] == [2, 3]
    assert list(log.read(3))[0].prev_hash != GENESIS_HASH

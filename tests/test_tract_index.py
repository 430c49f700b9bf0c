"""One tract costs one tract: opening it reads its own records, through an index that is never believed.

The index beside the log (`index/catalogue`, `index/*.idx`) only says where a
tract's records are. These tests count the bytes read from the log, and forge
every index file consistently (checksums recomputed), to show that what is
served always comes from checked log records.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from events import LOG_FILE, EventLog
from events.records import decode_record
from events.storage import FileStorage
from tract import CorruptLogError, Tract

TRACTS = 40
COMMITS = 6


def build(directory: Path) -> None:
    """`TRACTS` tracts of `COMMITS` turns each, written one after the other like separate agents would."""
    for number in range(TRACTS):
        with Tract.open(directory, tract_id=f"agent-{number:03}", sync="batch") as tract:
            tract.system(f"You are agent {number}.")
            for turn in range(COMMITS - 1):
                tract.user(f"agent {number} turn {turn}: " + "words " * 20)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("many") / "log"
    build(directory)
    return directory


@pytest.fixture
def copy(many: Path, tmp_path: Path) -> Path:
    """A private copy of the many-tract log (with its saved index) that a test may forge."""
    target = tmp_path / "log"
    target.mkdir()
    for path in many.rglob("*"):
        if path.is_file() and path.name != "LOCK":
            destination = target / path.relative_to(many)
            destination.parent.mkdir(exist_ok=True)
            destination.write_bytes(path.read_bytes())
    return target


def tract_bytes(directory: Path, tract_id: str) -> int:
    """How many bytes of the log the tract's records take."""
    log = EventLog.open(directory, readonly=True)
    try:
        return sum(
            len(frame.record) + 8
            for frame in log.frames()
            if decode_record(frame.body, frame.position, frame.offset).event.tract_id == tract_id
        )
    finally:
        log.close()


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every read from a log file, as a byte count: the storage wrapped, the reads still done."""
    counted: list[int] = []
    real = FileStorage.read

    def counting(self: FileStorage, offset: int, length: int) -> bytes:
        data = real(self, offset, length)
        counted.append(len(data))
        return data

    monkeypatch.setattr(FileStorage, "read", counting)
    yield counted


def served(directory: Path, tract_id: str, *, readonly: bool) -> tuple[object, ...]:
    """Everything a user is shown of one tract: compiled messages, log, each commit, chain head."""
    with Tract.open(directory, tract_id=tract_id, readonly=readonly) as tract:
        log = tract.log(limit=1000)
        return (
            [message.model_dump() for message in tract.compile().messages],
            [info.model_dump() for info in log],
            [tract.get_commit(info.commit_hash) for info in log],
            tract.chain_head,
        )


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_opening_one_tract_reads_that_tract_not_the_log(copy: Path, bytes_read: list[int], readonly: bool) -> None:
    own = tract_bytes(copy, "agent-017")
    log_size = (copy / LOG_FILE).stat().st_size
    assert log_size > 30 * own
    bytes_read.clear()
    with Tract.open(copy, tract_id="agent-017", readonly=readonly) as tract:
        assert tract.compile().messages[0].content == "You are agent 17."
        opened = sum(bytes_read)
    assert opened <= 2 * own + 4096, f"read {opened} bytes for a tract of {own} in a log of {log_size}"


def test_a_tail_written_after_the_index_is_all_that_is_scanned(copy: Path, bytes_read: list[int]) -> None:
    with Tract.open(copy, tract_id="agent-003") as tract:
        tract.user("written after the index was saved")
    index_before = (copy / "index" / "catalogue").read_bytes()
    tail_start = (copy / LOG_FILE).stat().st_size
    with Tract.open(copy, tract_id="agent-009", sync="batch") as tract:
        for turn in range(5):
            tract.user(f"new turn {turn}")
        (copy / "index" / "catalogue").write_bytes(index_before)  # as if this writer had crashed before saving
    tail = (copy / LOG_FILE).stat().st_size - tail_start
    bytes_read.clear()
    with Tract.open(copy, tract_id="agent-009", readonly=True) as tract:
        assert [m.content for m in tract.compile().messages][-1] == "new turn 4"
    assert sum(bytes_read) <= 2 * (tract_bytes(copy, "agent-009") + tail) + 4096


# -- forged index files ---------------------------------------------------------------

_MAGIC = b"TRACTIDX1\n"


def read_catalogue(directory: Path) -> list[object]:
    data = (directory / "index" / "catalogue").read_bytes()
    assert data.startswith(_MAGIC)
    return msgspec.msgpack.decode(data[len(_MAGIC) + 4 :])


def write_catalogue(directory: Path, catalogue: list[object]) -> None:
    """Forge the catalogue consistently: a valid body with its checksum recomputed."""
    body = msgspec.msgpack.encode(catalogue)
    (directory / "index" / "catalogue").write_bytes(_MAGIC + struct.pack("<I", zlib.crc32(body)) + body)


def idx_path(directory: Path, tract_id: str) -> Path:
    import hashlib

    return directory / "index" / (hashlib.sha256(tract_id.encode()).hexdigest()[:32] + ".idx")


def swap_pairs(directory: Path) -> None:
    """agent-005's index points at agent-006's records."""
    idx_path(directory, "agent-005").write_bytes(idx_path(directory, "agent-006").read_bytes())


def reverse_pairs(directory: Path) -> None:
    """agent-005's records listed in reverse order."""
    data = idx_path(directory, "agent-005").read_bytes()
    pairs = [data[i : i + 16] for i in range(0, len(data), 16)]
    idx_path(directory, "agent-005").write_bytes(b"".join(reversed(pairs)))


def shift_offsets(directory: Path) -> None:
    """agent-005's offsets moved by a few bytes, into the middle of records."""
    data = bytearray(idx_path(directory, "agent-005").read_bytes())
    for at in range(0, len(data), 16):
        offset = struct.unpack_from("<Q", data, at)[0]
        struct.pack_into("<Q", data, at, offset + 3)
    idx_path(directory, "agent-005").write_bytes(bytes(data))


def claim_more(directory: Path) -> None:
    """The catalogue says agent-005 has more records than it does, its .idx padded with another tract's."""
    catalogue = read_catalogue(directory)
    tracts = catalogue[1]
    assert isinstance(tracts, list)
    for entry in tracts:
        if entry[0] == "agent-005":
            entry[1] += 2
    write_catalogue(directory, catalogue)
    extra = idx_path(directory, "agent-006").read_bytes()[-32:]
    with open(idx_path(directory, "agent-005"), "ab") as out:
        out.write(extra)


def rewind_covered(directory: Path) -> None:
    """The catalogue claims to cover the log only up to an earlier record (whose facts it copies)."""
    log = EventLog.open(directory, readonly=True)
    try:
        frames = list(log.frames())
    finally:
        log.close()
    earlier = frames[len(frames) // 2]
    catalogue = read_catalogue(directory)
    from events.framing import record_hash

    catalogue[0] = [earlier.position, earlier.offset, earlier.end, record_hash(earlier.record, 2)]
    write_catalogue(directory, catalogue)


def foreign_tract(directory: Path) -> None:
    """The catalogue lists a tract the log never held, pointing at agent-006's records."""
    catalogue = read_catalogue(directory)
    tracts = catalogue[1]
    assert isinstance(tracts, list)
    tracts.append(["agent-005-ghost", COMMITS + 1])
    write_catalogue(directory, catalogue)
    idx_path(directory, "agent-005-ghost").write_bytes(idx_path(directory, "agent-006").read_bytes())


def garbage(directory: Path) -> None:
    for path in (directory / "index").iterdir():
        path.write_bytes(b"\x00" * 37)


FORGERIES: dict[str, Callable[[Path], None]] = {
    "pairs of another tract": swap_pairs,
    "pairs reordered": reverse_pairs,
    "offsets shifted": shift_offsets,
    "more records claimed": claim_more,
    "coverage rewound": rewind_covered,
    "a tract that never was": foreign_tract,
    "garbage": garbage,
}


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_index_changes_nothing_served(copy: Path, forge: Callable[[Path], None], readonly: bool) -> None:
    truth = {tract_id: served(copy, tract_id, readonly=True) for tract_id in ("agent-005", "agent-006")}
    forge(copy)
    for tract_id, expected in truth.items():
        assert served(copy, tract_id, readonly=readonly) == expected
    with pytest.raises(Exception, match="no tract"):
        Tract.open(copy, tract_id="agent-005-ghost", readonly=True)


def test_an_index_that_hides_the_newest_records_is_caught_by_an_anchor(copy: Path) -> None:
    with Tract.open(copy, tract_id="agent-005", readonly=True) as tract:
        anchor = tract.chain_head
        full = [m.content for m in tract.compile().messages]
    catalogue = read_catalogue(copy)
    tracts = catalogue[1]
    assert isinstance(tracts, list)
    for entry in tracts:
        if entry[0] == "agent-005":
            entry[1] -= 1
    write_catalogue(copy, catalogue)
    with Tract.open(copy, tract_id="agent-005", readonly=True) as tract:
        assert [m.content for m in tract.compile().messages] == full, "counts that do not add up cost a rebuild"
    for entry in tracts:
        if entry[0] == "agent-020":
            entry[1] += 1  # balanced, so the catalogue adds up again
    write_catalogue(copy, catalogue)
    with open(idx_path(copy, "agent-020"), "ab") as out:
        out.write(idx_path(copy, "agent-005").read_bytes()[-16:])
    with Tract.open(copy, tract_id="agent-005", readonly=True) as tract:
        assert [m.content for m in tract.compile().messages] == full[:-1], "at most the newest record is hidden"
        report = tract.verify(anchor=anchor)
        assert not report.ok and report.problem is not None and report.problem.kind == "anchor missing"


def test_a_damaged_record_of_the_opened_tract_is_named_with_its_position(copy: Path) -> None:
    idx = idx_path(copy, "agent-005").read_bytes()
    offset, length = struct.unpack_from("<QQ", idx, 3 * 16)
    with open(copy / LOG_FILE, "r+b") as log:
        log.seek(offset + length - 2)
        byte = log.read(1)
        log.seek(offset + length - 2)
        log.write(bytes([byte[0] ^ 0x01]))
    for readonly in (True, False):
        with pytest.raises(CorruptLogError, match="tract 'agent-005' position 4") as raised:
            Tract.open(copy, tract_id="agent-005", readonly=readonly)
        assert (raised.value.tract_id, raised.value.position, raised.value.offset) == ("agent-005", 4, offset)
    with Tract.open(copy, tract_id="agent-006", readonly=True) as other:
        assert other.compile().messages[0].content == "You are agent 6."


def test_a_forged_catalogue_cannot_choose_the_default_tract(copy: Path) -> None:
    """A ghost listed first (its counts balanced against another tract's, so the catalogue adds
    up) is dropped when reading it rebuilds the index; the default is the log's first tract."""
    catalogue = read_catalogue(copy)
    tracts = catalogue[1]
    assert isinstance(tracts, list)
    for entry in tracts:
        if entry[0] == "agent-007":
            entry[1] -= 2
    tracts.insert(0, ["ghost", 2])
    write_catalogue(copy, catalogue)
    idx_path(copy, "ghost").write_bytes(idx_path(copy, "agent-007").read_bytes()[:32])
    for readonly in (True, False):
        with Tract.open(copy, readonly=readonly) as tract:
            assert tract.tract_id == "agent-000"
            assert tract.compile().messages[0].content == "You are agent 0."
    with Tract.open(copy, tract_id="agent-007", readonly=True) as tract:
        assert tract.chain_head.position == COMMITS + 2

"""Reading one tract's records through the index, believing nothing but the log.

The index only says where to look. Each record read is checked against the
log itself: its frame's checksums, that it decodes, that it belongs to the
tract, carries the expected number and names the hash of the tract's record
before it. So whatever the index says, what is served is a run of the
tract's records from its first on, exactly as the log holds them. When a
check fails, the index is rebuilt from the log once and the read resumes;
if the record fails again, the log itself is damaged there.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping

from events.errors import CorruptLogError
from events.framing import FILE_HEADER, FIRST_FORMAT, FRAME_HEADER, GENESIS_HASH, record_hash
from events.records import decode_record
from events.storage import FileStorage, MemoryStorage
from events.tract_index import IndexMismatch, TractIndex
from events.types import Record

RUN_BYTES = 256 * 1024
"""Adjacent records are read together up to this many bytes: enough that the reads' cost does not
count, small enough that a read's buffer is given back to the OS when freed (a larger one, freed,
stays in the process's heap: an open would keep megabytes it only needed while reading)."""
GAP_BYTES = 16 * 1024
"""Records of other tracts (or unwanted ones) up to this many bytes between two wanted records are
read over rather than read apart: one larger read costs less than two system calls."""
Expected = Callable[[int], "bytes | None"]
"""The chain hash a record of the tract (by number) must have, if the caller remembers it."""


class _Unexpected(Exception):
    """A record read through the index is not what it should be."""

    def __init__(self, number: int, kind: str, detail: str, offset: int | None) -> None:
        super().__init__(detail)
        self.number, self.kind, self.detail, self.offset = number, kind, detail, offset


class TractReader:
    """Checked reads of one log's tracts up to byte `end` (the end of its last whole batch)."""

    def __init__(
        self,
        storage: FileStorage | MemoryStorage,
        index: TractIndex,
        version: int,
        end: int,
        rebuild: Callable[[], TractIndex],
    ) -> None:
        self._storage = storage
        self._index = index
        self._version = version
        self._end = end
        self._rebuild = rebuild

    def read(self, tract_id: str, first: int, last: int) -> Iterator[Record]:
        """Records `first` to `last` of the tract, each checked, the first chained to the one before it."""
        for record, _ in self.read_hashed(tract_id, first, last):
            yield record

    def read_hashed(
        self, tract_id: str, first: int, last: int, *, linked: bool = True, expected: Expected | None = None
    ) -> Iterator[tuple[Record, bytes]]:
        """(record, its chain hash) for `first` to `last`, each checked. `linked` False skips reading back
        the record before `first` to chain it (whoever asks then knows the hashes to expect); `expected`
        gives the hash a record must have, when the caller remembers one from an earlier read."""
        number, prev, rebuilt = first, GENESIS_HASH if first == 1 else None, False
        while number <= last:
            try:
                if prev is None and linked:
                    prev = self._hash(tract_id, number - 1)
                for record, digest in self._checked(tract_id, number, last, prev, expected):
                    yield record, digest
                    number, prev, linked = number + 1, digest, True
            except _Unexpected as problem:
                self._rebuild_once(tract_id, problem, rebuilt)
                rebuilt = True
                last = min(last, self._index.count(tract_id))

    def read_known(self, tract_id: str, wanted: Mapping[int, bytes]) -> Iterator[Record]:
        """The records numbered in `wanted`, in order, each checked and found to hash to the hash given
        for it (remembered from an earlier read): the records between them are not decoded."""
        numbers, done, rebuilt = sorted(wanted), 0, False
        while done < len(numbers):
            try:
                for record in self._known(tract_id, numbers[done:], wanted):
                    yield record
                    done += 1
            except _Unexpected as problem:
                self._rebuild_once(tract_id, problem, rebuilt)
                rebuilt = True

    def head(self, tract_id: str) -> bytes:
        """The chain hash of the tract's last record (GENESIS_HASH if it has none), read back and checked."""
        rebuilt = False
        while True:
            count = self._index.count(tract_id)
            try:
                return GENESIS_HASH if count == 0 else self._hash(tract_id, count)
            except _Unexpected as problem:
                self._rebuild_once(tract_id, problem, rebuilt)
                rebuilt = True

    def _rebuild_once(self, tract_id: str, problem: _Unexpected, rebuilt: bool) -> None:
        """After a first failed check, rebuild the index from the log; after a second, the log is damaged."""
        damage = CorruptLogError(
            problem.detail, position=problem.number, kind=problem.kind, offset=problem.offset, tract_id=tract_id
        )
        if rebuilt:
            raise damage from None
        try:
            self._index = self._rebuild()
        except CorruptLogError as found:
            # The scan stopped at the very record this read found damaged: name it as the tract's.
            raise (damage if found.offset == problem.offset else found) from None
        self._end = self._index.covered.end

    def _hash(self, tract_id: str, number: int) -> bytes:
        """The chain hash of the tract's record `number`, read back and checked."""
        for _, digest in self._checked(tract_id, number, number, None):
            return digest
        raise AssertionError("unreachable: one record was asked for")

    def _known(self, tract_id: str, numbers: list[int], wanted: Mapping[int, bytes]) -> Iterator[Record]:
        """`read_known` of `numbers` (ascending), reading records close together at once."""
        pairs = self._pairs(tract_id, numbers[0], numbers[-1])
        at = 0
        while at < len(numbers):
            start = pairs[2 * numbers[at] - 2]
            stop, upto = start + pairs[2 * numbers[at] - 1], at + 1
            while upto < len(numbers):
                offset, length = pairs[2 * numbers[upto] - 2], pairs[2 * numbers[upto] - 1]
                if not stop <= offset <= stop + GAP_BYTES or offset + length - start > RUN_BYTES:
                    break
                stop, upto = offset + length, upto + 1
            data = self._span(numbers[at], start, stop)
            for number in numbers[at:upto]:
                offset, length = pairs[2 * number - 2], pairs[2 * number - 1]
                record, digest = self._check(
                    data[offset - start : offset - start + length], tract_id, number, None, offset
                )
                if digest != wanted[number]:
                    raise _Unexpected(number, "hash mismatch", "the record is not the one read before", offset)
                yield record
            at = upto

    def _pairs(self, tract_id: str, first: int, last: int) -> array[int]:
        """The index's (offset, length) pairs of the tract, to be read from record `first` to `last`."""
        try:
            pairs = self._index.pairs(tract_id)
        except IndexMismatch as error:
            raise _Unexpected(first, "index mismatch", str(error), None) from None
        if 2 * last > len(pairs):
            raise _Unexpected(last, "index mismatch", f"the index knows {len(pairs) // 2} records", None)
        return pairs

    def _span(self, number: int, start: int, stop: int) -> memoryview:
        """The log's bytes `start` to `stop`, where the index places record `number` (and those after)."""
        if start < FILE_HEADER.size or stop > self._end:
            raise _Unexpected(number, "index mismatch", "the index points outside the log's records", start)
        data = memoryview(self._storage.read(start, stop - start))
        if len(data) != stop - start:
            raise _Unexpected(number, "index mismatch", "the log ends before the record", start)
        return data

    def _checked(
        self, tract_id: str, number: int, last: int, prev: bytes | None, expected: Expected | None = None
    ) -> Iterator[tuple[Record, bytes]]:
        """(record, its hash) for `number` to `last`, reading runs of adjacent records at once;
        `prev` None skips the chain check of the first one."""
        pairs = self._pairs(tract_id, number, last)
        while number <= last:
            start = pairs[2 * number - 2]
            stop, run_last = start + pairs[2 * number - 1], number
            while run_last < last and pairs[2 * run_last] == stop and stop - start < RUN_BYTES:
                stop += pairs[2 * run_last + 1]
                run_last += 1
            data = self._span(number, start, stop)
            at = 0
            for current in range(number, run_last + 1):
                length = pairs[2 * current - 1]
                record, digest = self._check(data[at : at + length], tract_id, current, prev, start + at)
                if expected is not None and (remembered := expected(current)) is not None and digest != remembered:
                    raise _Unexpected(current, "hash mismatch", "the record is not the one read before", start + at)
                yield record, digest
                prev, at = digest, at + length
            number = run_last + 1

    def _check(
        self, frame: memoryview, tract_id: str, number: int, prev: bytes | None, offset: int
    ) -> tuple[Record, bytes]:
        if len(frame) <= FRAME_HEADER.size:
            raise _Unexpected(number, "index mismatch", "the index gives a record no room", offset)
        length, crc, _ = FRAME_HEADER.unpack_from(frame)
        raw = frame[FRAME_HEADER.size :]
        if length != len(raw):
            raise _Unexpected(number, "bad header", "the frame's length is not the record's", offset)
        if zlib.crc32(raw) != crc:
            raise _Unexpected(number, "bad checksum", "record fails its checksum", offset)
        try:
            record = decode_record(raw[1:], number, offset, tract_id)
        except CorruptLogError as error:
            raise _Unexpected(number, error.kind, error.detail, offset) from None
        if record.event.tract_id != tract_id:
            raise _Unexpected(number, "wrong tract", f"the record belongs to tract {record.event.tract_id!r}", offset)
        if self._version == FIRST_FORMAT:
            return Record(number, record.prev_hash, record.event), record_hash(raw, self._version)
        if record.number != number:
            raise _Unexpected(number, "position mismatch", f"record says position {record.number}", offset)
        if prev is not None and record.prev_hash != prev:
            raise _Unexpected(
                number, "broken chain", "previous-record hash does not match the tract's record before", offset
            )
        return record, record_hash(raw, self._version)

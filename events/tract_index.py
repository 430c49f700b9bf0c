"""Where each tract's records are in the log file, and the files that remember it.

Opening a tract reads that tract's records through these offsets, never the
whole log. The index lives in `index/` beside the log:

- `index/catalogue`: a checksummed MessagePack body naming the last record
  indexed (a `Checkpoint`) and every tract with its record count, in the
  order the tracts were created;
- `index/<key>.idx`, one per tract: its records' (offset, length) pairs as
  little-endian 64-bit integers, in number order.

Like every projection file they are caches: written without fsync, never a
copy of content, and never believed. Every record read through them is
checked against the log (checksum, tract, number, hash chain), and anything
that does not hold sends the reader back to a scan of the log. A missing,
stale or damaged index costs a rebuild; a forged one can at most hide a
tract's newest records (which an anchor catches).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib
from array import array
from pathlib import Path

import msgspec

from events.files import open_regular
from events.framing import START, Checkpoint

INDEX_DIR = "index"
CATALOGUE_FILE = "catalogue"
_MAGIC = b"TRACTIDX1\n"
_CRC = struct.Struct("<I")
_PAIR = 16
"""Bytes per record in a tract's .idx file: offset and length, 8 bytes each."""
_LITTLE_ENDIAN = sys.byteorder == "little"


class IndexMismatch(Exception):
    """The index disagrees with the log (or with itself): rebuild it from the log."""


class _Catalogue(msgspec.Struct, array_like=True):
    covered: Checkpoint
    tracts: list[tuple[str, int]]


_catalogue_decoder = msgspec.msgpack.Decoder(_Catalogue)


class TractEntries:
    """One tract's record locations: loaded from its .idx file when first needed."""

    __slots__ = ("count", "pairs", "saved")

    def __init__(self, count: int, saved: int) -> None:
        self.count = count
        """Records of the tract the index knows."""
        self.saved = saved
        """How many of them its .idx file holds."""
        self.pairs: array[int] | None = None
        """offset, length, offset, length, ... once loaded (or built by a scan)."""


class TractIndex:
    """The tracts of a log, each with where its records are, up to `covered`."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory / INDEX_DIR if directory is not None else None
        self.covered = START
        self.tracts: dict[str, TractEntries] = {}
        self.dirty = False
        """Does anything indexed since the last save live only in memory?"""

    # -- building ------------------------------------------------------------

    def add(self, tract_id: str, number: int, offset: int, length: int) -> None:
        """Index the record `number` of `tract_id`, found at `offset`; numbers must come densely."""
        entries = self.tracts.get(tract_id)
        if entries is None:
            entries = self.tracts[tract_id] = TractEntries(0, 0)
            entries.pairs = array("Q")
        if number != entries.count + 1:
            raise IndexMismatch(f"tract {tract_id!r}: record {number} follows record {entries.count}")
        pairs = self.pairs(tract_id)
        pairs.append(offset)
        pairs.append(length)
        entries.count = number
        self.dirty = True

    def pairs(self, tract_id: str) -> array[int]:
        """The tract's (offset, length) pairs, read from its file the first time (none for an unknown tract)."""
        entries = self.tracts.get(tract_id)
        if entries is None:
            return array("Q")
        if entries.pairs is None:
            entries.pairs = self._load_pairs(tract_id, entries.saved)
        return entries.pairs

    def locate(self, tract_id: str, number: int) -> tuple[int, int]:
        pairs = self.pairs(tract_id)
        return pairs[2 * number - 2], pairs[2 * number - 1]

    def agrees_with(self, tract_id: str, number: int) -> bool:
        """Does this index hold together with the last record it covers being record `number` of
        `tract_id`? (A cheap check that catches a catalogue whose counts were altered alone; the
        record checks on every read catch the rest.)"""
        total = sum(entries.count for entries in self.tracts.values())
        return self.count(tract_id) == number and total == self.covered.position

    def count(self, tract_id: str) -> int:
        entries = self.tracts.get(tract_id)
        return entries.count if entries is not None else 0

    def capped(self, tract_id: str, number: int) -> TractIndex:
        """An index in memory of the tract alone, cut back to its first `number` records."""
        index = TractIndex(None)
        index.covered = self.covered
        if tract_id in self.tracts:
            copy = index.tracts[tract_id] = TractEntries(min(number, self.tracts[tract_id].count), 0)
            copy.pairs = self.pairs(tract_id)
        return index

    # -- the files -------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> TractIndex | None:
        """The index as last saved beside the log in `directory`; None if there is none or it is damaged."""
        index = cls(directory)
        assert index._directory is not None
        try:
            with os.fdopen(open_regular(index._directory / CATALOGUE_FILE, os.O_RDONLY), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        header = len(_MAGIC) + _CRC.size
        body = memoryview(data)[header:]
        if (
            not data.startswith(_MAGIC)
            or len(data) < header
            or _CRC.unpack_from(data, len(_MAGIC))[0] != zlib.crc32(body)
        ):
            return None
        try:
            catalogue = _catalogue_decoder.decode(body)
        except msgspec.DecodeError:
            return None
        index.covered = catalogue.covered
        index.tracts = {tract_id: TractEntries(count, count) for tract_id, count in catalogue.tracts}
        return index

    def _load_pairs(self, tract_id: str, count: int) -> array[int]:
        pairs = array("Q")
        if count == 0:
            return pairs
        if self._directory is None:
            raise IndexMismatch(f"tract {tract_id!r} has no saved index")
        try:
            with os.fdopen(open_regular(self._pairs_path(tract_id), os.O_RDONLY), "rb") as handle:
                data = handle.read(count * _PAIR)
        except FileNotFoundError:
            raise IndexMismatch(f"tract {tract_id!r}: index file missing") from None
        if len(data) != count * _PAIR:
            raise IndexMismatch(f"tract {tract_id!r}: index file holds {len(data) // _PAIR} of {count} records")
        pairs.frombytes(data)
        if not _LITTLE_ENDIAN:
            pairs.byteswap()
        return pairs

    def save(self) -> None:
        """Write what was indexed since the last save: the tracts' new pairs, then the catalogue.

        Neither is fsynced: after a crash the catalogue is the old one (the log's tail is
        indexed again) or names pairs that did not reach the disk (a rebuild)."""
        if self._directory is None or not self.dirty:
            return
        self._directory.mkdir(exist_ok=True)
        for tract_id, entries in self.tracts.items():
            if entries.count > entries.saved:
                self._save_pairs(tract_id, entries)
        catalogue = _Catalogue(self.covered, [(tract_id, entries.count) for tract_id, entries in self.tracts.items()])
        body = msgspec.msgpack.encode(catalogue)
        path = self._directory / CATALOGUE_FILE
        temporary = path.with_name(CATALOGUE_FILE + ".tmp")
        fd = open_regular(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC + _CRC.pack(zlib.crc32(body)) + body)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.dirty = False

    def _save_pairs(self, tract_id: str, entries: TractEntries) -> None:
        pairs = self.pairs(tract_id)
        new = pairs[2 * entries.saved : 2 * entries.count]
        if not _LITTLE_ENDIAN:
            new.byteswap()
        fd = open_regular(self._pairs_path(tract_id), os.O_WRONLY | os.O_CREAT)
        try:
            data = new.tobytes()
            if os.pwrite(fd, data, entries.saved * _PAIR) != len(data):
                raise OSError(f"{self._pairs_path(tract_id)}: short write")
            os.ftruncate(fd, entries.count * _PAIR)
        finally:
            os.close(fd)
        entries.saved = entries.count

    def _pairs_path(self, tract_id: str) -> Path:
        assert self._directory is not None
        return self._directory / (hashlib.sha256(tract_id.encode()).hexdigest()[:32] + ".idx")

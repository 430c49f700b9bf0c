"""Floors: what the hardware and the libraries tract builds on can do at best, on the same data."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from events import AnnotationAdded, CommitCreated, Record
from tract.tokens import load_encoding

from report import collected, fmt, timed
from workload import ENCODING


class Floors:
    """The raw libraries on the same data, sampled inside the loops of the figures they bound.

    The machine is shared: measuring a floor in the same minute as the figure
    it is compared with keeps the ratio honest when the load changes.
    """

    def __init__(self, texts: Sequence[str], events: Sequence[CommitCreated | AnnotationAdded]) -> None:
        self._texts = texts
        self._encode_text = load_encoding(ENCODING).encode
        self._records = [Record(position, bytes(32), event) for position, event in enumerate(events, 1)]
        self._encoder, self._decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(Record)
        self._bodies = [self._encoder.encode(record) for record in self._records]
        self.fsync: list[float] = []  # appends/s
        self.tiktoken: list[float] = []  # texts/s
        self.msgspec_encode: list[float] = []  # events/s
        self.msgspec_decode: list[float] = []  # events/s

    def sample_tokenizer_and_encoder(self) -> None:
        """Each result is dropped at once: a floor measures the library call, not what keeping results costs."""
        collected()
        texts, encode_text = self._texts, self._encode_text
        self.tiktoken.append(
            len(texts) / timed(lambda: _each(lambda text: encode_text(text, disallowed_special=()), texts))
        )
        self.msgspec_encode.append(len(self._records) / timed(lambda: _each(self._encoder.encode, self._records)))

    def sample_decoder(self) -> float:
        """msgspec decode, each record dropped at once (so the cyclic GC never runs); returns the rate (events/s)."""
        collected()
        self.msgspec_decode.append(len(self._bodies) / timed(lambda: _each(self._decoder.decode, self._bodies)))
        return self.msgspec_decode[-1]


def _each(call: Callable[[Any], object], items: Iterable[Any]) -> None:
    for item in items:
        call(item)


def fsync_loop_rate(path: Path, records: int, size: int) -> float:
    """Appends/s of a bare write + fdatasync loop (what sync="always" does per record, and nothing else)."""
    payload = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(records):
            os.write(fd, payload)
            os.fdatasync(fd)
        return records / (time.perf_counter() - start)
    finally:
        os.close(fd)


def floors_table(floors: Floors) -> str:
    rows = [
        ("write + fdatasync loop (tract-sized records)", floors.fsync, "appends"),
        (f"tiktoken {ENCODING} encode (workload texts)", floors.tiktoken, "texts"),
        ("msgspec msgpack encode (log records of workload events)", floors.msgspec_encode, "events"),
        ("msgspec msgpack decode (same records)", floors.msgspec_decode, "events"),
    ]
    lines = ["| floor | median | runs |", "|---|---|---|"]
    for name, samples, unit in rows:
        lines.append(f"| {name} | {fmt(statistics.median(samples), 'rate', unit)} | {len(samples)} |")
    return "\n".join(lines)

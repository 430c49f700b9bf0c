"""A framed record's bytes back into a `Record`, or a `CorruptLogError` naming where it is.

The framing checksums prove the bytes are the ones written, not that they
decode: every reader of the log decodes through here, so a record that does
not decode, or decodes to something else than a record, is reported with its
position, never as a bare msgspec error.
"""

from __future__ import annotations

from typing import NoReturn

import msgspec

from events.errors import CorruptLogError
from events.types import Record


def _refuse_extension(code: int, data: memoryview) -> NoReturn:
    """Payloads are JSON: a MessagePack extension value (other than a timestamp) has no place in one."""
    raise msgspec.DecodeError(f"MessagePack extension type {code} is not a JSON value")


_decoder = msgspec.msgpack.Decoder(Record, ext_hook=_refuse_extension)


class _Owner(msgspec.Struct):
    """Just the tract an event belongs to: what indexing needs, without decoding content."""

    tract_id: str


class _OwnedRecord(msgspec.Struct, array_like=True):
    number: int
    prev_hash: bytes
    event: _Owner


_owner_decoder = msgspec.msgpack.Decoder(_OwnedRecord)


def decode_record(
    body: bytes | memoryview, position: int, offset: int | None = None, tract_id: str | None = None
) -> Record:
    """The record whose bytes (after the flags byte) are `body`; `position` (in `tract_id` when
    given, else in the whole log) and `offset` only say where it is if it does not decode."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise CorruptLogError(
            f"record does not decode: {error}",
            position=position,
            kind="undecodable record",
            offset=offset,
            tract_id=tract_id,
        ) from None


def decode_owner(body: bytes | memoryview, position: int, offset: int) -> tuple[str, int]:
    """(tract id, number) of the record whose bytes are `body`, skipping over its content."""
    try:
        owned = _owner_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise CorruptLogError(
            f"record does not decode: {error}", position=position, kind="undecodable record", offset=offset
        ) from None
    return owned.event.tract_id, owned.number

"""A framed record's bytes back into a `Record`, or a `LogCorruptError` naming its position.

The framing checksums prove the bytes are the ones written, not that they
decode: every reader of the log decodes through here, so a record that does
not decode, decodes to something else than a record, or claims another
position is reported with its position, never as a bare msgspec error.
"""

from __future__ import annotations

from typing import NoReturn

import msgspec

from events.errors import LogCorruptError
from events.types import Record


def _refuse_extension(code: int, data: memoryview) -> NoReturn:
    """Payloads are JSON: a MessagePack extension value (other than a timestamp) has no place in one."""
    raise msgspec.DecodeError(f"MessagePack extension type {code} is not a JSON value")


_decoder = msgspec.msgpack.Decoder(Record, ext_hook=_refuse_extension)


def decode_record(body: bytes | memoryview, position: int, offset: int | None = None) -> Record:
    """The record framed at `position` (its bytes after the flags byte)."""
    try:
        record = _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise LogCorruptError(
            f"record does not decode: {error}", position=position, kind="undecodable record", offset=offset
        ) from None
    if record.position != position:
        raise LogCorruptError(
            f"record says position {record.position}", position=position, kind="position mismatch", offset=offset
        )
    return record

"""The log's write boundary: an event is written only if it reads back as itself.

A record is read back with a strict decoder, and exported and re-imported as
JSON (`tract export` / `tract import`). An event with a field of the wrong
type, or holding what either encoding cannot carry (lone surrogates, integers
beyond 64 bits, NaN or infinities, bytes, dates or non-string keys inside a
JSON field, arbitrary objects), would make the log unreadable or its export
unimportable. `EventLog.append` encodes every record through `encode_record`,
so such an event is refused before a byte of it reaches the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

import msgspec

from events.errors import InvalidEventError
from events.framing import GENESIS_HASH
from events.types import EVENT_CLASSES, AnyEvent, Event, Record

_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record, strict=True)
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode
_UNENCODABLE = (msgspec.MsgspecError, TypeError, ValueError, OverflowError, RecursionError)
"""What encoding or decoding something that is not a valid event raises (UnicodeError is a ValueError)."""


def _holds_any(annotation: Any) -> bool:
    return annotation is Any or any(_holds_any(arg) for arg in get_args(annotation))


_JSON_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(field.name for field in msgspec.structs.fields(cls) if _holds_any(field.type)) for cls in EVENT_CLASSES
}
"""Each event's free JSON fields: the strict decode checks every other field's type, but takes
anything MessagePack can carry here, so these also go through JSON (as an export would)."""


def encode_record(record: Record, out: bytearray, index: int = 0) -> None:
    """Append `record`'s MessagePack to `out` once those very bytes decode (strictly) back to an
    equal record and its JSON fields survive JSON; else raise `InvalidEventError` naming the
    field, with `out` untouched. `index` is the event's place in its batch."""
    event = record.event
    try:
        body = _encoder.encode(record)
        same = _record_decoder.decode(body) == record
        for name in _JSON_FIELDS.get(type(event), ()) if same else ():
            value = getattr(event, name)
            if _json_decode(_json_encode(value)) != value:
                same = False
    except _UNENCODABLE:
        same = False
    if not same:
        raise _refusal(event, index)
    out += body


def check_events(events: Sequence[AnyEvent]) -> None:
    """The same check, for events that will be appended later (a batch being staged)."""
    scratch = bytearray()
    for index, event in enumerate(events):
        encode_record(Record(1, GENESIS_HASH, event), scratch, index)
        scratch.clear()


def _refusal(event: Any, index: int) -> InvalidEventError:
    """The error for an event that did not round-trip: which field, and why (this runs only on failure)."""
    kind = type(event).__name__
    if isinstance(event, Event):
        for field in msgspec.structs.fields(event):
            problem = _field_problem(getattr(event, field.name), field.type)
            if problem is not None:
                return InvalidEventError(
                    f"{kind}.{field.name}: {problem}", event_type=kind, field=field.name, index=index
                )
    return InvalidEventError(f"{kind} is not an event this log can store", event_type=kind, field=None, index=index)


def _field_problem(value: Any, annotation: Any) -> str | None:
    try:
        if msgspec.msgpack.decode(_encoder.encode(value), type=annotation, strict=True) != value:
            return f"{_brief(value)} does not read back as the same value"
        if msgspec.json.decode(_json_encode(value), type=annotation, strict=True) != value:
            return (
                f"{_brief(value)} is not plain JSON (NaN, infinities, bytes, dates, tuples, sets "
                "and non-string keys do not survive an export)"
            )
    except msgspec.ValidationError as error:
        return str(error)
    except _UNENCODABLE as error:
        return f"{_brief(value)} cannot be encoded: {error}"
    return None


def _brief(value: Any) -> str:
    """A short description of a value that may be huge or have a hostile repr."""
    if isinstance(value, (str, bytes, bytearray, dict, list, tuple, set, frozenset)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, (bool, float)) or value is None:
        return repr(value)
    if isinstance(value, int):
        return f"an int of {value.bit_length()} bits"
    return f"a {type(value).__name__}"

"""Strict JSON for configs, metadata and payloads: what goes in is what an auditor reads back."""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import ConfigDict, JsonValue, TypeAdapter, ValidationError

from events import MAX_RECORD_BYTES
from tract.errors import InvalidJSONError, RecordTooLargeError

_object_adapter: TypeAdapter[dict[str, JsonValue]] = TypeAdapter(
    dict[str, JsonValue], config=ConfigDict(allow_inf_nan=False)
)


def json_object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object (finite numbers, no sets, tuples or objects), else InvalidJSONError."""
    try:
        checked = _object_adapter.validate_python(value, strict=True)
    except ValidationError as error:
        raise InvalidJSONError(f"{what} is not plain JSON: {_first_problem(error)}") from None
    ensure_encodable(checked, what)
    return checked


def ensure_encodable(value: Any, what: str) -> None:
    """Refuse, before any costly work, what one log record cannot hold: lone
    surrogates, integers beyond 64 bits, more than `MAX_RECORD_BYTES`."""
    try:
        size = len(msgspec.msgpack.encode(value))
    except (UnicodeEncodeError, OverflowError, TypeError, msgspec.EncodeError) as error:
        raise InvalidJSONError(f"{what} cannot be stored: {error}") from None
    if size > MAX_RECORD_BYTES:
        raise RecordTooLargeError(f"{what} encodes to {size} bytes; one log record holds at most {MAX_RECORD_BYTES}")


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']} (got {type(first.get('input')).__name__})"


def fresh(value: Any) -> Any:
    """A deep copy of stored JSON, so callers can never mutate what the view holds."""
    return None if value is None else _decode(msgspec.msgpack.encode(value))


_decode = msgspec.msgpack.Decoder().decode

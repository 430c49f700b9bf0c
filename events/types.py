"""The facts the log records.

Events are frozen msgspec structs in one tagged union, so a record decodes
straight into the right type and can never be mutated after it is written.
Priorities and operations are plain strings here: this layer knows nothing
of the SDK's enums or content models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Union

import msgspec

Operation = Literal["append", "edit"]
PriorityName = Literal["skip", "normal", "pinned"]
JsonObject = dict[str, Any]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every event: which tract it belongs to and when it happened."""

    tract_id: str
    created_at: datetime


class TractCreated(Event, frozen=True, kw_only=True, tag=True):
    """A tract came into being in this log (the first one is the log's default)."""


class CommitCreated(Event, frozen=True, kw_only=True, tag=True):
    commit_hash: str
    parent_hash: str | None
    content_hash: str
    content: JsonObject
    content_type: str
    operation: Operation
    response_to: str | None = None
    message: str | None = None
    token_count: int
    tokenizer: str
    metadata: JsonObject | None = None
    generation_config: JsonObject | None = None


class AnnotationAdded(Event, frozen=True, kw_only=True, tag=True):
    target_hash: str
    priority: PriorityName
    reason: str | None = None


class GenerationConfigRecorded(Event, frozen=True, kw_only=True, tag=True):
    commit_hash: str
    generation_config: JsonObject


class UsageRecorded(Event, frozen=True, kw_only=True, tag=True):
    head_hash: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


AnyEvent = Union[
    TractCreated, CommitCreated, AnnotationAdded, GenerationConfigRecorded, UsageRecorded
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (TractCreated, CommitCreated, AnnotationAdded, GenerationConfigRecorded, UsageRecorded)
}


class Record(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event as stored: its dense position and the hash of the record before it."""

    position: int
    prev_hash: bytes
    event: AnyEvent

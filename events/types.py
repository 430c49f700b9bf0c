"""The facts the log records.

Events are frozen msgspec structs in one tagged union, so a record decodes
straight into the right type and can never be mutated after it is written.
Priorities and operations are plain strings here: this layer knows nothing
of the SDK's enums or content models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

Operation = Literal["append", "edit", "merge", "compress"]
PriorityName = Literal["skip", "normal", "pinned"]
JsonObject = dict[str, Any]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
"""Every time in the log is timezone-aware (UTC when written): a naive one does not decode."""
DEFAULT_BRANCH = "main"
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Token counts: what a signed 64-bit column (and the usage the SDK accepts) holds."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, gc=False):
    """Base of every event: which tract it belongs to and when it happened.

    Events never take part in reference cycles, so the garbage collector need
    not track them (`gc=False`): folding millions of them stays cheap.
    """

    tract_id: str
    created_at: Timestamp


class TractCreated(Event, frozen=True, kw_only=True, tag=True):
    """A tract came into being in this log (the first one is the log's default),
    with an empty `main` branch checked out."""


class Compression(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a compress commit stands for: its summary replaces the messages of `replaces` in the
    compiled context (standing where the first of them stood), and `preserves` (commits of the
    range kept verbatim) follow it. The compiled context's tokens before and after it are facts
    of the moment it was made."""

    replaces: list[str]
    preserves: list[str] = []
    tokens_before: Count
    tokens_after: Count


class CommitCreated(Event, frozen=True, kw_only=True, tag=True):
    commit_hash: str
    parent_hash: str | None
    content_hash: str
    content: JsonObject
    content_type: str
    operation: Operation
    response_to: str | None = None
    message: str | None = None
    token_count: Count
    tokenizer: str
    metadata: JsonObject | None = None
    generation_config: JsonObject | None = None
    branch: str = DEFAULT_BRANCH
    """The branch the commit was made on (it moves that branch's head)."""
    merge_parent: str | None = None
    """A merge's second parent: the head of the branch merged in."""
    compression: Compression | msgspec.UnsetType = msgspec.UNSET
    """A compress commit's record of what it replaces. Unset (and then not encoded at all) on every
    other commit, so records written before compressions existed read and hash as they did."""


class AnnotationAdded(Event, frozen=True, kw_only=True, tag=True):
    target_hash: str
    priority: PriorityName
    reason: str | None = None
    anchor: str | None = None
    """HEAD when the annotation was made: it applies to histories that contain that commit."""


class BranchCreated(Event, frozen=True, kw_only=True, tag=True):
    name: str
    head: str | None


class BranchDeleted(Event, frozen=True, kw_only=True, tag=True):
    name: str


class RefMoved(Event, frozen=True, kw_only=True, tag=True):
    """A branch head moved other than by committing on it (reset, fast-forward merge)."""

    branch: str
    old_head: str | None
    new_head: str | None
    reason: str


class HeadChanged(Event, frozen=True, kw_only=True, tag=True):
    """HEAD now follows `branch`, or (branch None) is detached at `commit_hash`."""

    branch: str | None
    commit_hash: str | None = None


class GenerationConfigRecorded(Event, frozen=True, kw_only=True, tag=True):
    commit_hash: str
    generation_config: JsonObject


class UsageRecorded(Event, frozen=True, kw_only=True, tag=True):
    head_hash: str
    """HEAD when the usage was recorded (usually the reply)."""
    prompt_tokens: Count
    """The prompt figure, cached input included (Anthropic's input + cache read + cache write)."""
    completion_tokens: Count
    total_tokens: Count
    context_hash: str | None = None
    """The head of the context that was sent: the figures describe its compiled messages.
    None in logs written before it was recorded."""
    cache_read_tokens: Count | None = None
    cache_write_tokens: Count | None = None
    reasoning_tokens: Count | None = None
    """Raw, as the provider reported them; None when it reported none."""
    provider: str | None = None
    """The usage shape the figures came in: openai.chat, openai.responses, anthropic, gemini."""


EVENT_CLASSES = (
    TractCreated,
    CommitCreated,
    AnnotationAdded,
    GenerationConfigRecorded,
    UsageRecorded,
    BranchCreated,
    BranchDeleted,
    RefMoved,
    HeadChanged,
)
AnyEvent = (
    TractCreated
    | CommitCreated
    | AnnotationAdded
    | GenerationConfigRecorded
    | UsageRecorded
    | BranchCreated
    | BranchDeleted
    | RefMoved
    | HeadChanged
)
"""Any one event, spelled out so the checker sees each one's fields (tests pin it to EVENT_CLASSES)."""
EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in EVENT_CLASSES}


class Record(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event as stored: its number in its tract (1, 2, 3, ...) and the hash of the
    tract's record before it (each tract is its own hash chain).

    Logs of format 1 stored the record's place in the whole log and the hash of the
    log's record before it (one chain for the whole log) in the same two fields.
    """

    number: int
    prev_hash: bytes
    event: AnyEvent

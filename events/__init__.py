"""The append-only event log: event types, their encoding, durable append,
ordered reads and integrity checks. Knows nothing of the layers above it."""

from events.errors import (
    InvalidEventError,
    LogCorruptError,
    LogError,
    LogFormatError,
    LogLockedError,
    LogReadOnlyError,
    NotRegularFileError,
    RecordTooLargeError,
)
from events.framing import GENESIS_HASH, LOG_FILE, MAX_RECORD_BYTES, TornTail
from events.hashing import (
    canonical_json,
    commit_hash,
    content_hash,
    expected_hashes,
    sealed_commit,
)
from events.log import Checkpoint, EventLog, SyncMode
from events.roundtrip import check_events
from events.types import (
    EVENT_TYPES,
    AnnotationAdded,
    AnyEvent,
    BranchCreated,
    BranchDeleted,
    CommitCreated,
    Event,
    GenerationConfigRecorded,
    HeadChanged,
    Record,
    RefMoved,
    TractCreated,
    UsageRecorded,
)
from events.verify import Problem, VerifyReport, verify

__all__ = [
    "EVENT_TYPES",
    "GENESIS_HASH",
    "LOG_FILE",
    "MAX_RECORD_BYTES",
    "Problem",
    "VerifyReport",
    "verify",
    "AnnotationAdded",
    "AnyEvent",
    "BranchCreated",
    "BranchDeleted",
    "Checkpoint",
    "CommitCreated",
    "Event",
    "EventLog",
    "GenerationConfigRecorded",
    "HeadChanged",
    "InvalidEventError",
    "LogCorruptError",
    "LogError",
    "LogFormatError",
    "LogLockedError",
    "LogReadOnlyError",
    "NotRegularFileError",
    "Record",
    "RecordTooLargeError",
    "RefMoved",
    "SyncMode",
    "TornTail",
    "TractCreated",
    "UsageRecorded",
    "canonical_json",
    "check_events",
    "commit_hash",
    "content_hash",
    "expected_hashes",
    "sealed_commit",
]

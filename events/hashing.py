"""Content and commit hashes, derived only from an event's own fields.

Both the writer and an auditor call these, so a commit's identity can be
re-derived from the log alone. Canonical JSON is msgspec's JSON with keys
sorted and no whitespace.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from events.types import CommitCreated, Compression, Operation

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    return _encoder.encode(value)


def content_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def commit_hash(
    *,
    content_hash: str,
    parent_hash: str | None,
    content_type: str,
    operation: str,
    created_at: datetime,
    response_to: str | None,
    merge_parent: str | None = None,
    compression: Compression | None = None,
) -> str:
    """The commit's identity; config, metadata and branch are deliberately left out.

    A merge's second parent is part of it, and so are the commits a compression
    replaces and preserves (its token figures are not); each key is present only
    on those commits, so every other commit hashes exactly as the design says.
    """
    identity: dict[str, object] = {
        "content_hash": content_hash,
        "parent_hash": parent_hash,
        "content_type": content_type,
        "operation": operation,
        "timestamp": created_at.isoformat(),
        "response_to": response_to,
    }
    if merge_parent is not None:
        identity["merge_parent"] = merge_parent
    if compression is not None:
        identity["replaces"] = compression.replaces
        identity["preserves"] = compression.preserves
    return hashlib.sha256(canonical_json(identity)).hexdigest()


def _derived_hashes(
    content: dict[str, Any],
    content_type: str,
    operation: str,
    parent_hash: str | None,
    created_at: datetime,
    response_to: str | None,
    merge_parent: str | None,
    compression: Compression | msgspec.UnsetType,
) -> tuple[str, str]:
    """(content_hash, commit_hash) from the fields they cover: the one derivation writer and verifier share."""
    digest = content_hash(content)
    identity = commit_hash(
        content_hash=digest,
        parent_hash=parent_hash,
        content_type=content_type,
        operation=operation,
        created_at=created_at,
        response_to=response_to,
        merge_parent=merge_parent,
        compression=None if compression is msgspec.UNSET else compression,
    )
    return digest, identity


def sealed_commit(
    *,
    content: dict[str, Any],
    content_type: str,
    operation: Operation,
    parent_hash: str | None,
    created_at: datetime,
    response_to: str | None = None,
    merge_parent: str | None = None,
    compression: Compression | msgspec.UnsetType = msgspec.UNSET,
    **fields: Any,
) -> CommitCreated:
    """A CommitCreated whose two hashes are derived from its own fields, as `verify` re-derives them."""
    digest, identity = _derived_hashes(
        content, content_type, operation, parent_hash, created_at, response_to, merge_parent, compression
    )
    return CommitCreated(
        commit_hash=identity,
        content_hash=digest,
        content=content,
        content_type=content_type,
        operation=operation,
        parent_hash=parent_hash,
        created_at=created_at,
        response_to=response_to,
        merge_parent=merge_parent,
        compression=compression,
        **fields,
    )


def expected_hashes(event: CommitCreated) -> tuple[str, str]:
    """(content_hash, commit_hash) as they should be for this event's fields."""
    return _derived_hashes(
        event.content,
        event.content_type,
        event.operation,
        event.parent_hash,
        event.created_at,
        event.response_to,
        event.merge_parent,
        event.compression,
    )

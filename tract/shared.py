"""Helpers more than one part of `Tract` uses, kept in one place."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tract.models import Annotation, Priority


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def annotation_model(entry: Any) -> Annotation:
    return Annotation(
        priority=Priority(entry.priority), reason=entry.reason, created_at=entry.created_at, position=entry.position
    )

"""The benchmark's workload: dialogue commits with configs, edits and skips, through the API or written fast.

`iter_steps` yields the calls an application would make; `apply_to_tract`
makes them through the public API. `EventFactory` builds the same events
without the per-call work, so logs of a million commits (or of a thousand
tracts) can be written in seconds with `EventLog.append`; `check_factory`
refuses to benchmark a log `Tract` could not have written.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from events import (
    AnnotationAdded,
    CommitCreated,
    Event,
    EventLog,
    TractCreated,
    commit_hash,
    content_hash,
    expected_hashes,
)
from tract import DialogueContent, Priority, Tract
from tract.content import ContentRegistry
from tract.tokens import TiktokenCounter

import logapi

ENCODING = "o200k_base"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)

WORDS = tuple(
    [
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "it",
        "for",
        "on",
        "with",
        "as",
        "this",
        "be",
        "are",
        "from",
        "by",
        "at",
        "or",
        "was",
        "an",
        "not",
        "can",
        "but",
        "model",
        "context",
        "token",
        "window",
        "commit",
        "history",
        "message",
        "prompt",
        "reply",
        "agent",
        "tool",
        "call",
        "result",
        "config",
        "temperature",
        "sample",
        "answer",
        "question",
        "explain",
        "summarise",
        "function",
        "return",
        "value",
        "error",
        "retry",
        "budget",
        "because",
        "which",
        "when",
        "where",
        "there",
        "their",
        "about",
        "would",
        "could",
        "should",
        "into",
        "over",
        "after",
        "before",
        "only",
        "also",
        "first",
        "second",
        "next",
        "last",
        "every",
        "each",
        "more",
        "most",
        "less",
        "some",
        "many",
        "few",
        "other",
        "same",
        "different",
        "simple",
        "data",
        "file",
        "user",
        "system",
        "assistant",
        "request",
        "response",
        "stream",
        "batch",
        "cache",
        "event",
        "log",
        "snapshot",
        "replay",
        "query",
        "index",
        "table",
        "column",
        "row",
        "value",
        "number",
        "string",
        "list",
        "object",
        "field",
        "key",
        "path",
        "time",
        "date",
        "hour",
        "code",
        "test",
        "build",
        "deploy",
        "review",
        "change",
        "update",
        "fix",
        "bug",
        "issue",
        "feature",
        "design",
        "plan",
        "step",
        "goal",
        "task",
        "good",
        "better",
        "best",
        "fast",
        "slow",
        "small",
        "large",
        "new",
        "old",
        "right",
        "wrong",
        "clear",
        "short",
        "long",
        "final",
        "early",
        "late",
        "42",
        "7",
        "100",
        "2024",
        "3.5",
        "0.8",
        "v2",
        "API",
        "JSON",
        "SQL",
        "HTTP",
        "URL",
        "ID",
    ]
)
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "o3", "gemini-2.5-pro")
EFFORTS = ("low", "medium", "high")
WORDS_PER_TEXT = 50
EDIT_EVERY = 10  # every 10th commit edits a recent original
SKIP_EVERY = 25  # after every 25th commit, a recent original is annotated SKIP
RECENT = 50  # edits and skips pick their target among the last 50 originals
TEXT_POOL = 4096  # distinct texts in generated logs (so their token counts can be cached)

StepKind = Literal["commit", "edit", "skip"]
Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Step:
    """One call of the workload: a commit, an edit of an earlier original, or a SKIP annotation.

    `target` is the ordinal (among commit and edit steps) of the original an
    edit replaces or a skip hides, so every store can map it to its own ids.
    """

    kind: StepKind
    role: Role
    text: str
    config: dict[str, Any] | None
    target: int = -1


def dialogue_text(rng: random.Random) -> str:
    """About 50 words of plain English-like prose: realistic for the BPE tokenizer."""
    return " ".join(rng.choices(WORDS, k=WORDS_PER_TEXT)).capitalize() + "."


def generation_config(rng: random.Random) -> dict[str, Any]:
    return {
        "model": rng.choice(MODELS),
        "temperature": round(rng.random(), 2),
        "top_p": round(rng.uniform(0.5, 1.0), 2),
        "extra": {"reasoning": {"effort": rng.choice(EFFORTS)}, "seed": rng.randrange(1 << 31)},
    }


def role_of(ordinal: int) -> Role:
    return "user" if ordinal % 2 == 0 else "assistant"


def iter_steps(commits: int, seed: int, pool: Sequence[str] | None = None) -> Iterator[Step]:
    """`commits` commit/edit steps (alternating user/assistant) with SKIP steps interleaved.

    A generator, so a big log never holds a million steps in memory; the
    same seed always yields the same steps, so every store gets the same data.
    """
    rng = random.Random(seed)
    originals: list[int] = []
    for ordinal in range(commits):
        text = rng.choice(pool) if pool else dialogue_text(rng)
        config = generation_config(rng)
        if ordinal % EDIT_EVERY == EDIT_EVERY - 1 and originals:
            target = rng.choice(originals[-RECENT:])
            yield Step("edit", role_of(target), text, config, target)
        else:
            originals.append(ordinal)
            yield Step("commit", role_of(ordinal), text, config)
        if ordinal % SKIP_EVERY == SKIP_EVERY - 1:
            yield Step("skip", "user", "", None, rng.choice(originals[-RECENT:]))


def make_steps(commits: int, seed: int) -> list[Step]:
    return list(iter_steps(commits, seed))


def text_pool(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [dialogue_text(rng) for _ in range(TEXT_POOL)]


def apply_to_tract(t: Tract, steps: Iterable[Step]) -> None:
    """The workload through the public API, exactly as an application would call it."""
    hashes: list[str] = []
    for step in steps:
        if step.kind == "skip":
            t.annotate(hashes[step.target], Priority.SKIP)
            continue
        edit = step.kind == "edit"
        info = t.commit(
            DialogueContent(role=step.role, text=step.text),
            operation="edit" if edit else "append",
            response_to=hashes[step.target] if edit else None,
            generation_config=step.config,
        )
        hashes.append(info.commit_hash)


# -- writing logs fast ---------------------------------------------------------------------------


class ContentCache:
    """(payload, content hash, token count) per distinct dialogue turn, as `Tract.commit` computes them.

    Shared by the factories of many tracts, so a text is validated and tokenized once."""

    def __init__(self) -> None:
        self._registry = ContentRegistry()
        self.counter = TiktokenCounter(ENCODING)
        self._contents: dict[tuple[Role, str], tuple[dict[str, Any], str, int]] = {}

    def get(self, role: Role, text: str) -> tuple[dict[str, Any], str, int]:
        key = (role, text)
        cached = self._contents.get(key)
        if cached is None:
            content_type, payload = self._registry.validate(DialogueContent(role=role, text=text))
            tokens = self.counter.count_text(self._registry.render(content_type, payload).text)
            cached = self._contents[key] = (payload, content_hash(payload), tokens)
        return cached


class EventFactory:
    """The workload's events exactly as Tract.commit / Tract.annotate build them, minus the per-call work.

    Payloads come from `ContentRegistry.validate` and token counts from
    `TiktokenCounter` (cached per distinct text), hashes from `events.hashing`,
    timestamps one microsecond apart from `start`. So every event is one
    `Tract.commit` could have written; what is skipped is the per-call
    validation and one log append per commit. Commit hashes do not name the
    tract: give each tract of a log its own `start` so its commits are its own.
    """

    def __init__(self, tract_id: str, start: datetime = START, contents: ContentCache | None = None) -> None:
        self.tract_id = tract_id
        self._start = start
        self._tick = 0
        self._contents = contents if contents is not None else ContentCache()
        self.hashes: list[str] = []
        self._head: str | None = None

    def content(self, role: Role, text: str) -> tuple[dict[str, Any], str, int]:
        return self._contents.get(role, text)

    def _anchor(self) -> dict[str, str | None]:
        """Checkouts with branches anchor an annotation at the HEAD it was made on; older ones have no anchor."""
        return {"anchor": self._head} if "anchor" in AnnotationAdded.__struct_fields__ else {}

    def created(self) -> TractCreated:
        return TractCreated(tract_id=self.tract_id, created_at=self._start)

    def event(self, step: Step) -> CommitCreated | AnnotationAdded:
        self._tick += 1
        created_at = self._start + timedelta(microseconds=self._tick)
        if step.kind == "skip":
            return AnnotationAdded(
                tract_id=self.tract_id,
                created_at=created_at,
                target_hash=self.hashes[step.target],
                priority="skip",
                **self._anchor(),
            )
        payload, digest, tokens = self.content(step.role, step.text)
        operation: Literal["append", "edit"] = "edit" if step.kind == "edit" else "append"
        response_to = self.hashes[step.target] if step.kind == "edit" else None
        identity = commit_hash(
            content_hash=digest,
            parent_hash=self._head,
            content_type="dialogue",
            operation=operation,
            created_at=created_at,
            response_to=response_to,
        )
        event = CommitCreated(
            tract_id=self.tract_id,
            created_at=created_at,
            commit_hash=identity,
            parent_hash=self._head,
            content_hash=digest,
            content=payload,
            content_type="dialogue",
            operation=operation,
            response_to=response_to,
            token_count=tokens,
            tokenizer=self._contents.counter.name,
            generation_config=step.config,
        )
        self.hashes.append(identity)
        self._head = identity
        return event

    def events(self, steps: Iterable[Step]) -> Iterator[Event]:
        """TractCreated, then one event per step."""
        yield self.created()
        for step in steps:
            yield self.event(step)


def write_events(log: EventLog, tract_id: str, events: Iterable[Event], batch: int = 10_000) -> int:
    """Append one tract's events with EventLog.append, `batch` events per atomic append; returns the count."""
    written = 0
    pending: list[Event] = []
    for event in events:
        pending.append(event)
        if len(pending) >= batch:
            logapi.append(log, tract_id, pending)
            written, pending = written + len(pending), []
    if pending:
        logapi.append(log, tract_id, pending)
        written += len(pending)
    return written


def write_tract(directory: Path, factory: EventFactory, steps: Iterable[Step], batch: int = 10_000) -> int:
    """A tract of the workload's events in the log in `directory` (created if missing); returns the event count."""
    log = EventLog.open(directory, sync="batch")
    try:
        written = write_events(log, factory.tract_id, factory.events(steps), batch)
        log.flush()
        return written
    finally:
        log.close()


# -- checks --------------------------------------------------------------------------------------


def event_shape(event: Event) -> tuple[str, tuple[str, ...], str | None]:
    """What must match between the factory and Tract: event type, the fields it sets, the content hash."""
    fields = tuple(name for name in event.__struct_fields__ if getattr(event, name) is not None)
    return type(event).__name__, fields, getattr(event, "content_hash", None)


def check_factory(root: Path) -> None:
    """Refuse to benchmark a log Tract could not have written.

    The same steps go through a real Tract and through EventFactory; the
    events must have the same types, set the same fields and carry the same
    content hashes. This catches the library growing a new event or field
    (it is being edited concurrently) before a million stale events are written.
    """
    steps = make_steps(SKIP_EVERY, seed=10)
    directory = root / "factory-check"
    with Tract.open(directory, sync="batch") as t:
        apply_to_tract(t, steps)
        tract_id = t.tract_id
    log = EventLog.open(directory, readonly=True)
    try:
        real = [event_shape(record.event) for record in logapi.read_tract(log, tract_id)]
    finally:
        log.close()
    built = [event_shape(event) for event in EventFactory(tract_id).events(steps)]
    for position, (want, got) in enumerate(zip(real, built, strict=False), 1):
        if want != got:
            raise RuntimeError(f"EventFactory is out of date at event {position}: Tract wrote {want}, factory {got}")
    if len(real) != len(built):
        raise RuntimeError(f"Tract wrote {len(real)} events for the check steps, EventFactory {len(built)}")


def check_written(directory: Path, tract_id: str, sample: int = 2_000) -> None:
    """Every commit hash among the tract's first records re-derives from its event, as an auditor would check."""
    log = EventLog.open(directory, readonly=True)
    try:
        for record in logapi.read_tract(log, tract_id, 1, sample):
            event: Event = record.event
            if isinstance(event, CommitCreated) and expected_hashes(event) != (event.content_hash, event.commit_hash):
                raise RuntimeError(f"{directory}: wrong hashes at record {logapi.record_number(record)}")
    finally:
        log.close()

"""The `Tract` facade: commit typed context, compile it, record what the API reported.

Every write becomes events appended to the log; every read is answered by
the commit view folded from that log (or by the compiler's cache over it).
A lock serialises all calls, so one `Tract` may be shared by threads;
`events()` and the analytics queries fix their log range under it, then read
outside it (queries take turns on the analytics projection's own lock), so a
long read never holds up a commit.

The methods come from one mixin per job: `Writing`, `Compressing`, `Branching`,
`Reading`, `Auditing`, `Querying` and `Conversation`. This module holds what they all
share: opening and closing, the state they use, and the open/writable checks.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from events import AnyEvent, EventLog, SyncMode, TractCreated
from events.opening import AnyLog, open_log
from events.postgres import PostgresLog, is_store_url
from projections import CommitView
from projections.analytics import Analytics
from projections.bulk import paused_gc
from tract.arguments import MEMORY, flag, log_directory, one_of, optional_text
from tract.auditing import Auditing
from tract.branching import Branching
from tract.compiler import Compiler
from tract.compressing import Compressing
from tract.content import ContentRegistry
from tract.conversation import Conversation
from tract.errors import InvalidArgumentError, ReadOnlyError, TractClosedError, TractError, storage_errors
from tract.event_cache import EventCache
from tract.models import TractConfig, revalidated
from tract.querying import Querying
from tract.reading import Reading
from tract.shared import utc_now
from tract.tokens import TiktokenCounter, TokenCounter
from tract.writing import Writing


class Tract(Writing, Compressing, Branching, Reading, Auditing, Querying, Conversation):
    """One tract (a line of context history) in a log. Use `Tract.open(...)`."""

    def __init__(
        self,
        *,
        log: AnyLog,
        view: CommitView,
        directory: Path | None,
        analytics_dir: Path | None = None,
        tract_id: str,
        config: TractConfig,
        counter: TokenCounter,
        registry: ContentRegistry | None = None,
    ) -> None:
        self._log = log
        self._view = view
        self._directory = directory
        self._analytics_dir = analytics_dir
        """Where the analytics database lives when not in the log directory (a store's local cache)."""
        self._tract_id = tract_id
        self._config = config
        self._counter = counter
        self._registry = registry if registry is not None else ContentRegistry()
        self._events = EventCache(log, tract_id)
        """Commit content read back from the log on demand (the view keeps none)."""
        view.source = self._events
        self._compiler = Compiler(view, self._registry, counter)
        self._lock = threading.RLock()
        self._staged: list[AnyEvent] | None = None
        self._analytics: Analytics | None = None
        self._closed = False
        self._last_compiled: str | None = None
        """HEAD of the last `compile()`: the context API usage recorded next is taken to describe."""

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        tract_id: str | None = None,
        config: TractConfig | None = None,
        tokenizer: TokenCounter | None = None,
        sync: SyncMode = "always",
        readonly: bool = False,
        analytics_dir: str | Path | None = None,
    ) -> Tract:
        """Open the tract in log directory `path` (created if missing), in the PostgreSQL store a
        postgresql:// URL names, or in memory.

        Without `tract_id`, opens the tract the log was created with; with one,
        opens that tract, creating it in the same log if it is new. `analytics_dir` is where the
        analytics database lives: by default the log directory, or for a store a per-user cache
        directory for that server, database and schema.
        """
        store = is_store_url(path)
        directory = None if store else log_directory(path)
        chosen_analytics = None if analytics_dir is None else log_directory(analytics_dir)
        tract_id = optional_text(tract_id, "tract_id")
        readonly = flag(readonly, "readonly")
        one_of(sync, ("always", "batch"), "sync")
        config = _checked_config(config)
        counter = tokenizer if tokenizer is not None else TiktokenCounter(config.tokenizer_encoding)
        if not isinstance(counter, TokenCounter):
            raise InvalidArgumentError(f"tokenizer must be a TokenCounter, not {type(counter).__name__}")
        if store and sync != "always":
            raise InvalidArgumentError(
                "sync='batch' belongs to log directories: every append to a store is a committed transaction"
            )
        location = path if store else directory  # None: in memory
        log: AnyLog
        if location is None:
            if readonly:
                raise TractError("an in-memory tract cannot be opened read-only: there is nothing to read")
            log = EventLog.memory()
        else:
            with storage_errors():
                log = open_log(location, readonly=readonly, sync=sync)
        if isinstance(log, PostgresLog) and chosen_analytics is None:
            chosen_analytics = _store_cache(log)
        try:
            chosen, view = _read_tract(log, tract_id)
            if chosen is None or view.state.position == 0:  # (no tract chosen: none in the log yet)
                if readonly:
                    missing = f"no tract {chosen!r} in this log" if chosen else "the log holds no tract"
                    raise TractError(f"{directory or getattr(log, 'where', '')}: {missing}")
                chosen = chosen or uuid.uuid4().hex
                created = TractCreated(tract_id=chosen, created_at=utc_now())
                with storage_errors():
                    position = log.append(chosen, [created], expected=0)
                view.apply(position, created)
        except BaseException:
            log.close()
            raise
        return cls(
            log=log,
            view=view,
            directory=directory,
            analytics_dir=chosen_analytics,
            tract_id=chosen,
            config=config,
            counter=counter,
        )

    def close(self) -> None:
        """Make what was written durable and release the log (and its lock). Idempotent.

        The log saves its index once it is durable up to it; the log and its lock are
        released even when this raises."""
        with self._lock:
            if self._closed:
                return
            if self._staged is not None:
                raise TractError("close() inside batch(): leave the batch first (its commits are not written yet)")
            self._closed = True
            try:
                if self._analytics is not None:
                    self._analytics.close()
            finally:
                with storage_errors():
                    self._log.close()

    def __enter__(self) -> Tract:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.location
        head = self.head if not self._closed else None
        return f"Tract(path={where!r}, tract_id={self._tract_id!r}, head={head!r}, closed={self._closed})"

    # -- properties ----------------------------------------------------------

    @property
    def location(self) -> str:
        """The log directory, the store (server:port/database/schema, no credentials), or ":memory:"."""
        if self._directory is not None:
            return str(self._directory)
        return self._log.where if isinstance(self._log, PostgresLog) else MEMORY

    @property
    def tract_id(self) -> str:
        return self._tract_id

    @property
    def config(self) -> TractConfig:
        return self._config

    @property
    def head(self) -> str | None:
        return self._view.head(self._tract_id)

    @property
    def current_branch(self) -> str | None:
        """The branch HEAD follows; None when detached by `checkout(commit)`."""
        tract = self._view.tract(self._tract_id)
        return tract.current if tract is not None else None

    @property
    def readonly(self) -> bool:
        return self._log.readonly

    @property
    def closed(self) -> bool:
        return self._closed

    def register_content_type(self, name: str, model: type[BaseModel]) -> None:
        self._registry.register(name, model)

    # -- shared checks -------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TractClosedError("this tract is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._log.readonly:
            raise ReadOnlyError("this tract was opened read-only")


def _checked_config(config: Any) -> TractConfig:
    if config is None:
        return TractConfig()
    if not isinstance(config, TractConfig):
        raise InvalidArgumentError(f"config must be a TractConfig, not {type(config).__name__}")
    try:
        return revalidated(config)
    except ValidationError as error:
        raise InvalidArgumentError(f"config is not a valid TractConfig: {error}") from None


def _store_cache(log: PostgresLog) -> Path:
    """A store's analytics database: in the user's cache directory, one per server, database and schema."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tract" / "analytics" / log.cache_key


def _read_tract(log: AnyLog, tract_id: str | None) -> tuple[str | None, CommitView]:
    """The tract asked for (else the log's first) folded into a view (empty if the log holds none).

    The index's list of tracts is believed only as far as reading checks it: a tract it names that
    the log does not hold reads as nothing (the index is rebuilt), and the default is chosen again."""
    while True:
        chosen = tract_id or next(iter(log.tract_ids()), None)
        view = CommitView(capacity=log.tract_length(chosen) if chosen is not None else 0)
        if chosen is None:
            return None, view
        with storage_errors(), paused_gc():
            view.apply_hashed(log.read_hashed(chosen))
        if view.state.position or tract_id is not None or chosen == next(iter(log.tract_ids()), None):
            return chosen, view

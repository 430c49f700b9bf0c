"""The state every part of `Tract` shares, declared once.

`Tract` is assembled from mixins with one job each (writing, branching,
reading, auditing, querying). Each works on the same few attributes, which
`Tract.__init__` sets; this base declares them for the type checker, so a
mixin read alone says what it relies on by naming this class.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events import AnyEvent
    from events.opening import AnyLog
    from projections import CommitView
    from projections.analytics import Analytics
    from tract.compiler import Compiler
    from tract.content import ContentRegistry
    from tract.event_cache import EventCache
    from tract.models import TractConfig
    from tract.tokens import TokenCounter


class TractParts:
    """What `Tract` holds (set in its `__init__`) and the checks every public method starts with."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _log: AnyLog
        _view: CommitView
        _directory: Path | None
        _analytics_dir: Path | None
        _tract_id: str
        _config: TractConfig
        _counter: TokenCounter
        _registry: ContentRegistry
        _compiler: Compiler
        _events: EventCache
        _analytics: Analytics | None
        _staged: list[AnyEvent] | None
        _last_compiled: str | None

        @property
        def head(self) -> str | None: ...
        @property
        def current_branch(self) -> str | None: ...
        def _check_open(self) -> None: ...
        def _check_writable(self) -> None: ...

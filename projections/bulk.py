"""Folding many events at once without the cyclic garbage collector rescanning them.

Building a view of a long log allocates millions of long-lived objects and
no cycles; left on, the collector would repeatedly traverse everything
allocated so far, which costs more than the folding itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause automatic collection for the block (restoring whatever was in force)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

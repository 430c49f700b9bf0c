"""One compiled context as the compiler keeps it: parallel lists, one slot per message.

Kept apart from the compiler (which decides what goes in a slot) because these are
the only ways a compiled context changes shape: a slot appended, a slot rewritten
(an edit), or a run of slots replaced by a summary (a compression). Results are
windows onto the lists, so a rewrite copies them first and a splice builds new ones.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.commit_table import NO_ROW
from projections.view_state import Visibility
from tract.models import Message


class Slot(NamedTuple):
    """What one message of a compiled context is made of."""

    message: Message
    tokens: int
    config: bytes
    """The effective generation config, encoded."""
    content_type: str


@dataclass
class CompileState:
    head: str | None = None
    head_row: int = NO_ROW
    head_position: int = 0
    originals: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    configs: list[bytes] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    edit_of: dict[str, str] = field(default_factory=dict)
    edit_target: dict[str, str] = field(default_factory=dict)
    total: int = 0
    has_tool_calls: bool = False
    """Some message holds tool calls (dicts): results copy those messages when handed out."""
    skip_changes_seen: int = 0
    config_changes_seen: int = 0
    visible: Visibility = field(default_factory=Visibility)
    shared: bool = False
    """A result has a window onto these lists: copy before rewriting a slot."""
    registry: object = None
    """The content registry's renderers when this was built: its messages can be reused while they hold."""

    def own_slots(self) -> None:
        """Copy the lists results can see before a slot is rewritten (appends need no copy)."""
        if self.shared:
            self.messages, self.configs, self.types = self.messages.copy(), self.configs.copy(), self.types.copy()
            self.shared = False

    def scratch(self) -> CompileState:
        """A copy to try changes on (the lists and maps copied, what is only read shared)."""
        twin = copy.copy(self)
        twin.originals, twin.messages, twin.tokens = self.originals.copy(), self.messages.copy(), self.tokens.copy()
        twin.configs, twin.types, twin.index = self.configs.copy(), self.types.copy(), self.index.copy()
        twin.edit_of, twin.edit_target = self.edit_of.copy(), self.edit_target.copy()
        twin.shared = False
        return twin

    def append(self, commit_hash: str, slot: Slot) -> None:
        self.index[commit_hash] = len(self.originals)
        self.has_tool_calls = self.has_tool_calls or slot.message.tool_calls is not None
        self.originals.append(commit_hash)
        self.messages.append(slot.message)
        self.tokens.append(slot.tokens)
        self.configs.append(slot.config)
        self.types.append(slot.content_type)
        self.total += slot.tokens

    def rewrite(self, index: int, slot: Slot) -> None:
        """The message at `index` as an edit leaves it."""
        self.own_slots()
        self.total += slot.tokens - self.tokens[index]
        self.messages[index], self.tokens[index], self.configs[index] = slot.message, slot.tokens, slot.config
        self.types[index] = slot.content_type
        self.has_tool_calls = self.has_tool_calls or slot.message.tool_calls is not None

    def splice(
        self, replaced: Sequence[str], preserved: Sequence[str], summary_hash: str, summary: Slot | None
    ) -> None:
        """A compression: the messages of `replaced` leave; the summary (unless None: left out) stands
        where the first of them stood, and the `preserved` messages that stood after that follow it,
        in their order. Costs the slots from there on, not the whole context."""
        index = self.index
        gone = {index[name] for name in replaced if name in index}
        at = min(gone, default=len(self.originals))
        kept = sorted(slot for slot in (index.get(name) for name in preserved) if slot is not None and slot > at)
        leaving = gone.union(kept)
        rest = [slot for slot in range(at, len(self.originals)) if slot not in leaving]
        moved = ([summary] if summary is not None else []) + [self._slot(slot) for slot in (*kept, *rest)]
        names = ([summary_hash] if summary is not None else []) + [self.originals[slot] for slot in (*kept, *rest)]
        for slot in gone:
            index.pop(self.originals[slot], None)
        self.total += (summary.tokens if summary is not None else 0) - sum(self.tokens[slot] for slot in gone)
        self.originals = self.originals[:at] + names
        self.messages = self.messages[:at] + [slot.message for slot in moved]
        self.tokens = self.tokens[:at] + [slot.tokens for slot in moved]
        self.configs = self.configs[:at] + [slot.config for slot in moved]
        self.types = self.types[:at] + [slot.content_type for slot in moved]
        self.shared = False  # new lists: no result has a window onto them
        for position in range(at, len(self.originals)):
            index[self.originals[position]] = position
        if summary is not None:
            self.has_tool_calls = self.has_tool_calls or summary.message.tool_calls is not None

    def _slot(self, index: int) -> Slot:
        return Slot(self.messages[index], self.tokens[index], self.configs[index], self.types[index])

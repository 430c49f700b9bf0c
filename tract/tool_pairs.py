"""Tool calls and their results as pairs that a compression must keep whole.

Every provider rendering needs each result right after the call it answers
and each call answered, so a compression may take a call and its results
together or leave them together, never split them.
"""

from __future__ import annotations

from collections.abc import Sequence

from tract.models import Message


def call_ids(message: Message) -> set[str]:
    """The call ids a message takes part in: the calls it makes, or the call it answers."""
    ids = {call.id for call in message.tool_calls or ()}
    if message.tool_call_id is not None:
        ids.add(message.tool_call_id)
    return ids


def split_pair(removed: Sequence[Message], remaining: Sequence[Message]) -> str | None:
    """A call id that `removed` touches and that the messages `remaining` after the change would
    hold only half of (the call without a result, or a result without its call), else None."""
    touched = set().union(*(call_ids(message) for message in removed))
    for call_id in sorted(touched):
        calls = any(call.id == call_id for message in remaining for call in message.tool_calls or ())
        results = any(message.tool_call_id == call_id for message in remaining)
        if calls != results:
            return call_id
    return None


def pair_units(messages: Sequence[Message], eligible: Sequence[bool]) -> list[list[int]]:
    """The eligible messages grouped so that a call and its results share a group (in order of
    their first message); a group that holds half of a pair whose other half is not eligible is
    left out, so taking any run of groups never splits a pair."""
    owner: dict[str, int] = {}
    groups: list[list[int]] = []
    whole: list[bool] = []
    for index, message in enumerate(messages):
        ids = call_ids(message)
        joined = next((owner[call_id] for call_id in ids if call_id in owner), None)
        if joined is None:
            joined = len(groups)
            groups.append([])
            whole.append(True)
        for call_id in ids:
            owner[call_id] = joined
        groups[joined].append(index)
        whole[joined] = whole[joined] and eligible[index]
    return [group for group, keep in zip(groups, whole, strict=True) if keep]

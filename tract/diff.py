"""Compare two compiled contexts message by message, keyed by the commit each came from."""

from __future__ import annotations

from tract.compiled import CompiledContext
from tract.models import ConfigChange, ContextDiff, MessageChange


def diff_contexts(a_head: str | None, a: CompiledContext, b_head: str | None, b: CompiledContext) -> ContextDiff:
    a_index = {h: i for i, h in enumerate(a.commit_hashes)}
    b_index = {h: i for i, h in enumerate(b.commit_hashes)}
    a_configs, b_configs = a.generation_configs, b.generation_configs
    removed = [
        MessageChange(commit_hash=h, a_position=i, b_position=None, a_message=a.messages[i], b_message=None)
        for h, i in a_index.items()
        if h not in b_index
    ]
    added = [
        MessageChange(commit_hash=h, a_position=None, b_position=j, a_message=None, b_message=b.messages[j])
        for h, j in b_index.items()
        if h not in a_index
    ]
    changed: list[MessageChange] = []
    config_changes: list[ConfigChange] = []
    for h, i in a_index.items():
        j = b_index.get(h)
        if j is None:
            continue
        if a.messages[i] != b.messages[j] or i != j:
            changed.append(
                MessageChange(
                    commit_hash=h, a_position=i, b_position=j, a_message=a.messages[i], b_message=b.messages[j]
                )
            )
        if a_configs[i] != b_configs[j]:
            config_changes.append(ConfigChange(commit_hash=h, a_config=a_configs[i], b_config=b_configs[j]))
    return ContextDiff(
        a_head=a_head,
        b_head=b_head,
        added=added,
        removed=removed,
        changed=changed,
        config_changes=config_changes,
        a_tokens=a.token_count,
        b_tokens=b.token_count,
    )

"""Generation config provenance: stored with the commit, recorded later as events, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from tract import DialogueContent, InvalidJSONError, Priority, Tract


def user(text: str) -> DialogueContent:
    return DialogueContent(role="user", text=text)


CONFIG = {
    "model": "claude-x",
    "temperature": 0.7,
    "top_p": 0.9,
    "extra": {"thinking": {"budget": 1024}, "stop": ["\n"]},
}


def test_config_round_trips_through_every_read_path(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        info = tract.commit(user("q"), generation_config=CONFIG)
        bare = tract.commit(user("no config"))
        assert info.generation_config == CONFIG
        assert bare.generation_config is None
        assert tract.get_commit(info.commit_hash).generation_config == CONFIG  # type: ignore[union-attr]
        assert tract.log()[1].generation_config == CONFIG
    with Tract.open(log_dir) as reopened:
        assert reopened.get_commit(info.commit_hash).generation_config == CONFIG  # type: ignore[union-attr]
        assert reopened.compile().generation_configs == [CONFIG, {}]


def test_config_is_not_part_of_the_hashes(tract: Tract) -> None:
    a = tract.commit(user("same"), generation_config={"temperature": 0.1})
    b = tract.commit(user("same"), generation_config={"temperature": 0.9})
    assert a.content_hash == b.content_hash


def test_compiled_configs_follow_edits_and_skips(tract: Tract) -> None:
    a = tract.commit(user("a"), generation_config={"model": "original"})
    b = tract.commit(user("b"), generation_config={"model": "b"})
    c = tract.commit(user("c"))
    tract.compile()  # warm the cache so the rest goes through the incremental path
    tract.commit(user("a2"), operation="edit", response_to=a.commit_hash, generation_config={"model": "edit"})
    tract.commit(user("c2"), operation="edit", response_to=c.commit_hash)  # edit without config keeps none
    tract.annotate(b.commit_hash, Priority.SKIP)
    compiled = tract.compile()
    assert [m.content for m in compiled.messages] == ["a2", "c2"]
    assert compiled.generation_configs == [{"model": "edit"}, {}]
    full = tract.compile(at_commit=tract.head)
    assert full.generation_configs == compiled.generation_configs


def test_edit_without_config_keeps_the_originals(tract: Tract) -> None:
    a = tract.commit(user("a"), generation_config={"model": "original"})
    tract.compile()
    tract.commit(user("a2"), operation="edit", response_to=a.commit_hash)
    assert tract.compile().generation_configs == [{"model": "original"}]


def test_record_usage_with_config_records_an_event_not_an_overwrite(log_dir: Path) -> None:
    with Tract.open(log_dir) as tract:
        head = tract.commit(user("q"), generation_config={"model": "planned", "temperature": 0.5})
        tract.compile()
        tract.record_usage(
            {"prompt_tokens": 10, "completion_tokens": 2}, generation_config={"model": "served", "temperature": 0.5}
        )
        assert tract.get_commit(head.commit_hash).generation_config == {"model": "served", "temperature": 0.5}  # type: ignore[union-attr]
        assert tract.compile().generation_configs == [{"model": "served", "temperature": 0.5}]
        tract.record_usage({"prompt_tokens": 11, "completion_tokens": 2})  # without a config: unchanged
        assert tract.get_commit(head.commit_hash).generation_config["model"] == "served"  # type: ignore[index]
        history = tract.config_history(head.commit_hash)
        assert [(h.source, h.generation_config["model"]) for h in history] == [
            ("commit", "planned"),
            ("record_usage", "served"),
        ]
        assert history[0].position < history[1].position
        assert history[0].created_at <= history[1].created_at
    with Tract.open(log_dir) as reopened:
        assert reopened.config_history(head.commit_hash) == history
        assert reopened.compile().generation_configs == [{"model": "served", "temperature": 0.5}]


def test_config_recorded_for_an_edit_shows_on_the_edited_message(tract: Tract) -> None:
    a = tract.commit(user("a"), generation_config={"model": "m1"})
    tract.commit(user("a2"), operation="edit", response_to=a.commit_hash)
    tract.compile()
    tract.record_usage({"input_tokens": 3, "output_tokens": 1}, generation_config={"model": "m2"})
    assert tract.compile().generation_configs == [{"model": "m2"}]


def test_config_history_of_a_commit_without_config_is_empty(tract: Tract) -> None:
    info = tract.commit(user("q"))
    assert tract.config_history(info.commit_hash) == []


@pytest.mark.parametrize(
    "bad", [{"t": {1, 2}}, {"t": float("nan")}, {"t": object()}, {"t": [float("inf")]}, {"t": "\ud800"}, {"t": 2**70}]
)
def test_non_json_config_in_record_usage_writes_nothing(tract: Tract, log_dir: Path, bad: dict) -> None:
    tract.commit(user("q"))
    before = (log_dir / "events.log").read_bytes()
    with pytest.raises(InvalidJSONError):
        tract.record_usage({"prompt_tokens": 1, "completion_tokens": 1}, generation_config=bad)
    assert (log_dir / "events.log").read_bytes() == before


def test_returned_configs_never_alias_stored_ones(tract: Tract) -> None:
    config = {"model": "m", "extra": {"k": 1}}
    info = tract.commit(user("q"), generation_config=config)
    config["extra"]["k"] = 2
    info.generation_config["extra"]["k"] = 3  # type: ignore[index]
    assert tract.get_commit(info.commit_hash).generation_config == {"model": "m", "extra": {"k": 1}}  # type: ignore[union-attr]
    assert tract.compile().generation_configs == [{"model": "m", "extra": {"k": 1}}]

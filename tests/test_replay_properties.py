"""Property tests: random operation sequences through the public API, then replay.

A `RuleBasedStateMachine` drives a tract (on disk with sync="always", on disk
with group commit, or in memory) through random commits of every built-in
content type plus two registered custom ones (as models or dicts, with and
without generation config / metadata / message), EDITs of random originals,
SKIP/NORMAL/PINNED annotations of random commits (edits included),
`record_usage` in the OpenAI / Anthropic / Gemini shapes and as `TokenUsage`
(with and without a config), batches that land or fail inside (a raised
exception or a refused operation), close-and-reopen (with or without the
tract index beside the log), another tract of the same log writing between
two steps (so this tract's records are not the log's: positions are the
tract's own numbers) and compiles at random moments. Alongside it keeps a tiny
pure-Python model of what the context should be.

What a user relies on, checked as the sequence runs:

* replay gives the live state: after every step a fresh
  `Tract.open(dir, readonly=True)` and a long-lived read-only opener after
  `refresh()` see exactly what the writer sees (log(limit=None), log(),
  get_commit, get_annotations, config_history, HEAD, chain head, compile()),
  each reading this tract's records through the index (caught up from where
  it was saved); a writer reopened after close() (with or without the index)
  too, and the other tract's records never show in this one;
* `verify()` passes after every step, anchored at an earlier chain head, and
  reports this tract's chain head (and the other tract's, once it exists);
* the live incremental compile() equals a full compile(at_commit=head);
* compile() equals the model: messages (the latest non-skipped edit of a
  commit wins, SKIP leaves a commit out, the latest annotation visible in the
  history wins), generation configs (an edit's where it has one, else the
  original's; a config recorded with usage replaces a commit's own), commit
  hashes, token count (always the chat formula over tiktoken) and token source,
  and the API usage recorded for exactly that context (the compiled HEAD it was sent as);
  compile(at_commit=...) and compile(include_edit_annotations=True) too;
* what an auditor reconstructs: compile(at_time=t), replay(until_position=p)
  and replay(until_time=t) for every earlier step give what was live then;
* a failed batch leaves the log file, HEAD and history untouched.

A second test runs the same operations on an in-memory and an on-disk tract.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import BaseModel

from events import TractHead
from tract import (
    ArtifactContent,
    CompiledContext,
    ContentModel,
    ContentValidationError,
    DialogueContent,
    EditTargetError,
    FreeformContent,
    InstructionContent,
    Message,
    OutputContent,
    Priority,
    ReasoningContent,
    TiktokenCounter,
    TokenUsage,
    ToolCall,
    ToolCallContent,
    ToolIOContent,
    ToolResultContent,
    Tract,
    TractConfig,
    UsageError,
)

from properties import examples

LOG_FILE = "events.log"
INDEX_DIR = "index"
OTHER = "other"
"""A second tract in the same log, written between steps."""
TOKENS = TiktokenCounter("o200k_base")  # the independent count the model expects
CL100K = TiktokenCounter("cl100k_base")
PINNED_BY_DEFAULT = "instructions are pinned by default"


class Note(ContentModel):
    """A registered custom type that compiles to a user message."""

    content_type: Literal["note"] = "note"
    text: str
    message_role: ClassVar[str] = "user"


class Ticket(BaseModel):
    """A registered plain pydantic model: an assistant message with its `content`."""

    title: str
    content: str


def open_tract(path: Path | None = None, **kwargs: Any) -> Tract:
    """Open like a user would: custom content types are registered on every open.

    A clean log must open without a repair or rebuild warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = Tract.open(path, **kwargs)
    t.register_content_type("note", Note)
    t.register_content_type("ticket", Ticket)
    return t


# -- strategies -------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
texts = st.text(max_size=30) | st.sampled_from(
    ["", "Hello, world!", "<|endoftext|>", "naïve café ☕ 日本語", "line one\nline two", "  spaced  "]
)
names = st.none() | st.text(alphabet="abcdefghij_-", min_size=1, max_size=8)
generation_configs = st.builds(
    lambda model, temperature, extra: {"model": model, "temperature": temperature, **extra},
    st.sampled_from(["gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro"]),
    st.floats(min_value=0, max_value=2),
    json_objects,
)
maybe_configs = st.none() | generation_configs
maybe_metadata = st.none() | json_objects
maybe_messages = st.none() | st.text(max_size=12)
priorities = st.sampled_from([Priority.SKIP, Priority.NORMAL, Priority.PINNED, "skip", "normal", "pinned"])
indices = st.integers(min_value=0, max_value=10**6)


@dataclass(frozen=True)
class Rendered:
    """The message a payload should compile to."""

    role: str
    text: str
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    is_error: bool = False

    def message(self) -> Message:
        return Message(
            role=self.role,
            content=self.text,
            name=self.name,
            tool_calls=self.tool_calls,
            tool_call_id=self.tool_call_id,
            is_error=self.is_error,
        )


@dataclass(frozen=True)
class Drawn:
    content: Any  # what is passed to commit(): a content model or a dict
    payload: dict[str, Any]  # what CommitInfo.content should be
    rendered: Rendered


def _json_text(payload: dict[str, Any]) -> str:
    body = {key: value for key, value in payload.items() if key != "content_type"}
    return msgspec.json.encode(body, order="sorted").decode()


BUILTIN_KINDS = [
    "user", "assistant", "system", "instruction", "tool_io", "tool_call", "tool_result", "reasoning", "freeform",
    "artifact", "output",
]  # fmt: skip
tool_calls = st.lists(
    st.builds(
        ToolCall,
        id=st.sampled_from(["c1", "c2", "call_x"]),
        name=st.sampled_from(["search", "calc"]),
        arguments=json_objects | st.text(max_size=6),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def contents(draw: st.DrawFn) -> Drawn:
    kind = draw(st.sampled_from([*BUILTIN_KINDS, "note", "ticket"]))
    if kind in ("user", "assistant", "system"):
        name = draw(names)
        model: Any = DialogueContent(role=kind, text=draw(texts), name=name)
        rendered = Rendered(kind, model.text, name)
    elif kind == "instruction":
        model = InstructionContent(text=draw(texts))
        rendered = Rendered("system", model.text)
    elif kind == "reasoning":
        model = ReasoningContent(text=draw(texts))
        rendered = Rendered("assistant", model.text)
    elif kind == "output":
        model = OutputContent(text=draw(texts), format=draw(st.sampled_from(["text", "markdown", "json"])))
        rendered = Rendered("assistant", model.text)
    elif kind == "artifact":
        model = ArtifactContent(
            artifact_type=draw(st.sampled_from(["code", "doc"])),
            content=draw(texts),
            language=draw(st.none() | st.just("python")),
        )
        rendered = Rendered("assistant", model.content)
    elif kind == "tool_io":
        tool = draw(st.sampled_from(["search", "calc", "read_file"]))
        model = ToolIOContent(
            tool_name=tool,
            direction=draw(st.sampled_from(["call", "result"])),
            payload=draw(json_objects),
            status=draw(st.sampled_from([None, "success", "error"])),
        )
        rendered = Rendered("tool", _json_text(model.model_dump(mode="json")), tool)
    elif kind == "tool_call":
        model = ToolCallContent(text=draw(st.none() | texts), tool_calls=draw(tool_calls))
        rendered = Rendered("assistant", model.text or "", tool_calls=model.tool_calls)
    elif kind == "tool_result":
        name = draw(st.none() | st.just("search"))
        model = ToolResultContent(
            tool_call_id=draw(st.sampled_from(["c1", "c2"])),
            content=draw(texts),
            name=name,
            is_error=draw(st.booleans()),
        )
        rendered = Rendered("tool", model.content, name, tool_call_id=model.tool_call_id, is_error=model.is_error)
    elif kind == "note":
        model = Note(text=draw(texts))
        rendered = Rendered("user", model.text)
    elif kind == "ticket":
        model = Ticket(title=draw(st.text(max_size=8)), content=draw(texts))
        rendered = Rendered("assistant", model.content)
    else:
        model = FreeformContent(payload=draw(json_objects))
        rendered = Rendered("assistant", _json_text(model.model_dump(mode="json")))
    payload = {**model.model_dump(mode="json"), "content_type": getattr(model, "content_type", kind)}
    as_dict = draw(st.booleans())  # a dict with content_type is validated into its type
    return Drawn(copy.deepcopy(payload) if as_dict else model, payload, rendered)


@st.composite
def usages(draw: st.DrawFn) -> tuple[Any, int, int]:
    prompt = draw(st.integers(min_value=0, max_value=10**6))
    completion = draw(st.integers(min_value=0, max_value=10**5))
    with_total = draw(st.booleans())
    shape = draw(st.sampled_from(["openai", "anthropic", "gemini", "model"]))
    if shape == "openai":
        usage: Any = {"prompt_tokens": prompt, "completion_tokens": completion}
        if with_total:
            usage["total_tokens"] = prompt + completion
    elif shape == "anthropic":
        usage = {"input_tokens": prompt, "output_tokens": completion}
        if with_total:  # Anthropic reports no total; the other keys it sends are ignored
            usage["cache_read_input_tokens"] = 0
    elif shape == "gemini":
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion}
        if with_total:
            usage["totalTokenCount"] = prompt + completion
    else:
        usage = TokenUsage(prompt_tokens=prompt, completion_tokens=completion)
    return usage, prompt, completion


batch_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), contents(), maybe_configs, maybe_metadata),
        st.tuples(st.just("edit"), indices, contents(), maybe_configs, maybe_metadata),
        st.tuples(st.just("annotate"), indices, priorities),
        st.tuples(st.just("usage"), usages(), maybe_configs),
    ),
    min_size=1,
    max_size=4,
)


# -- the model --------------------------------------------------------------------


@dataclass
class ModelCommit:
    commit_hash: str
    content_type: str
    payload: dict[str, Any]
    rendered: Rendered
    operation: str
    target: str | None
    own_config: dict[str, Any] | None
    metadata: dict[str, Any] | None
    message: str | None
    recorded_configs: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[tuple[str, str | None, int]] = field(default_factory=list)
    """(priority, reason, anchor): an annotation is anchored at the HEAD it was made on
    (here: how many commits the chain had then) and applies to histories containing it."""

    def skipped(self, upto: int) -> bool:
        """SKIP in the history of the first `upto` commits: the latest annotation visible there wins."""
        visible = [priority for priority, _, anchor in self.annotations if anchor <= upto]
        return bool(visible) and visible[-1] == "skip"

    @property
    def config(self) -> dict[str, Any] | None:
        """The effective config: the latest recorded with usage, else the commit's own."""
        return self.recorded_configs[-1] if self.recorded_configs else self.own_config


@dataclass(frozen=True)
class Expected:
    messages: list[Message]
    configs: list[dict[str, Any]]
    hashes: list[str]
    tiktoken_count: int
    api: tuple[int, int] | None
    """(prompt, completion) an API reported for exactly this context."""


@dataclass
class Model:
    commits: list[ModelCommit] = field(default_factory=list)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # context head -> latest (prompt, completion)

    def find(self, commit_hash: str) -> ModelCommit:
        return next(c for c in self.commits if c.commit_hash == commit_hash)

    @property
    def head(self) -> str | None:
        return self.commits[-1].commit_hash if self.commits else None

    def expected(self, upto: int | None = None, *, markers: bool = False) -> Expected:
        """What compiling the first `upto` commits (default all) should give, with today's annotations.

        With `markers`, edited messages start with "[edited] " (include_edit_annotations=True).
        """
        chain = self.commits if upto is None else self.commits[:upto]
        latest_edit: dict[str, ModelCommit] = {}
        for commit in chain:
            if commit.operation == "edit" and not commit.skipped(len(chain)):
                latest_edit[commit.target or ""] = commit
        messages, configs, hashes = [], [], []
        for commit in chain:
            if commit.operation != "append" or commit.skipped(len(chain)):
                continue
            edit = latest_edit.get(commit.commit_hash)
            source = edit or commit
            config = edit.config if edit is not None else None
            if config is None:
                config = commit.config
            message = source.rendered.message()
            if markers and edit is not None:
                message = message.model_copy(update={"content": "[edited] " + message.content})
            messages.append(message)
            configs.append(config or {})
            hashes.append(commit.commit_hash)
        counted = chat_tokens(messages)
        head = chain[-1].commit_hash if chain else None
        return Expected(messages, configs, hashes, counted, self.usage.get(head) if head is not None else None)


def content_tokens(message: Message, counter: TiktokenCounter = TOKENS) -> int:
    """Content, plus 3 per tool call and its name and arguments as compact JSON."""
    total = counter.count_text(message.content)
    for call in message.tool_calls or ():
        arguments = call.arguments if isinstance(call.arguments, str) else msgspec.json.encode(call.arguments).decode()
        total += 3 + counter.count_text(call.name) + counter.count_text(arguments)
    return total


def chat_tokens(messages: list[Message], counter: TiktokenCounter = TOKENS) -> int:
    """The chat formula: 3 + role + content (+1 + name) per message, +3 to prime the reply."""
    total = 0
    for message in messages:
        total += 3 + counter.count_text(message.role) + content_tokens(message, counter)
        if message.name is not None:
            total += 1 + counter.count_text(message.name)
    return total + 3 if messages else 0


# -- comparisons ------------------------------------------------------------------


def assert_compiled_is(compiled: CompiledContext, expected: Expected) -> None:
    assert compiled.messages == expected.messages
    assert compiled.generation_configs == expected.configs
    assert compiled.commit_hashes == expected.hashes
    assert compiled.commit_count == len(expected.messages)
    assert (compiled.token_count, compiled.token_source) == (expected.tiktoken_count, TOKENS.name)
    api = compiled.api_usage
    assert (None if api is None else (api.prompt_tokens, api.completion_tokens)) == expected.api


def assert_same_compiled(a: CompiledContext, b: CompiledContext) -> None:
    assert a.messages == b.messages
    assert a.generation_configs == b.generation_configs
    assert a.commit_hashes == b.commit_hashes
    assert (a.token_count, a.token_source, a.commit_count) == (b.token_count, b.token_source, b.commit_count)
    assert a.api_usage == b.api_usage
    assert a == b


def history(t: Tract) -> dict[str, Any]:
    """Everything a reader can ask about the tract's history, without compiling."""
    log = t.log(limit=None)
    return {
        "tract_id": t.tract_id,
        "head": t.head,
        "log": log,
        "commits": {info.commit_hash: t.get_commit(info.commit_hash) for info in log},
        "annotations": {info.commit_hash: t.get_annotations(info.commit_hash) for info in log},
        "configs": {info.commit_hash: t.config_history(info.commit_hash) for info in log},
    }


@dataclass(frozen=True)
class Moment:
    """The state after one step: when, at which log position, and what a user saw."""

    time: datetime
    position: int
    chain_hash: str
    expected: Expected
    history: dict[str, Any]


class BatchFailure(Exception):
    """What the agent code raises inside a batch."""


# -- the state machine ------------------------------------------------------------


class ReplayMachine(RuleBasedStateMachine):
    """Base machine; the subclasses below pick where the log lives."""

    storage: ClassVar[str] = "directory"

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.tmp: str | None = None
        self.path: Path | None = None
        self.sync = "batch" if self.storage == "directory-group-commit" else "always"
        self.timeline: list[Moment] = []
        self.other: list[str] = []
        """The texts committed to the OTHER tract so far."""
        self.reader: Tract | None = None  # a long-lived read-only opener, refreshed after every step
        if self.storage != "memory":
            self.tmp = tempfile.mkdtemp(prefix="tract-props-")
            self.path = Path(self.tmp) / "log"
        self.t: Tract | None = open_tract(self.path, sync=self.sync)
        assert self.t.head is None and self.t.compile().messages == []
        if self.path is not None:
            self.reader = open_tract(self.path, readonly=True)

    def teardown(self) -> None:
        try:
            if self.t is not None and not self.t.closed:
                self.check_live_compile()
                commits = [e.event.commit_hash for e in self.t.events(types="CommitCreated")]
                assert commits == [c.commit_hash for c in self.model.commits]
                if self.path is not None:
                    with open_tract(self.path, readonly=True) as reader:
                        self.check_timeline(reader)
                    # Another tokenizer re-counts history instead of reusing the stored counts.
                    other = TractConfig(tokenizer_encoding="cl100k_base")
                    with open_tract(self.path, readonly=True, config=other) as reader:
                        expected = self.model.expected()
                        compiled = reader.compile(at_commit=reader.head) if reader.head else reader.compile()
                        assert compiled.messages == expected.messages
                        assert (compiled.token_count, compiled.token_source) == (
                            chat_tokens(expected.messages, CL100K),
                            CL100K.name,
                        )
                    if self.other:
                        with open_tract(self.path, tract_id=OTHER, readonly=True) as other:
                            assert [m.content for m in other.compile().messages] == self.other
                    live = self.t.compile()
                    before = history(self.t)
                    self.t.close()
                    with open_tract(self.path) as again:
                        assert history(again) == before
                        assert_same_compiled(again.compile(), live)
        finally:
            if self.reader is not None:
                self.reader.close()
            if self.t is not None:
                self.t.close()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # -- operations, shared by the rules and by batches ------------------------------

    @property
    def tract(self) -> Tract:
        assert self.t is not None
        return self.t

    def _originals(self) -> list[ModelCommit]:
        return [c for c in self.model.commits if c.operation == "append"]

    def _append(self, drawn: Drawn, config: dict | None, metadata: dict | None, message: str | None = None) -> None:
        info = self.tract.commit(drawn.content, message=message, metadata=metadata, generation_config=config)
        self._record_commit(info, drawn, "append", None, config, metadata, message)

    def _edit(
        self, index: int, drawn: Drawn, config: dict | None, metadata: dict | None, message: str | None = None
    ) -> None:
        target = self._originals()[index % len(self._originals())]
        info = self.tract.commit(
            drawn.content,
            operation="edit",
            response_to=target.commit_hash,
            message=message,
            metadata=metadata,
            generation_config=config,
        )
        self._record_commit(info, drawn, "edit", target.commit_hash, config, metadata, message)

    def _record_commit(
        self,
        info: Any,
        drawn: Drawn,
        operation: str,
        target: str | None,
        config: dict | None,
        metadata: dict | None,
        message: str | None,
    ) -> None:
        assert info.parent_hash == self.model.head
        assert self.tract.head == info.commit_hash
        assert info.operation.value == operation and info.response_to == target
        assert info.content == drawn.payload
        assert info.generation_config == config and info.metadata == metadata and info.message == message
        assert info.token_count == content_tokens(drawn.rendered.message())
        content_type = drawn.payload["content_type"]
        commit = ModelCommit(
            info.commit_hash, content_type, drawn.payload, drawn.rendered, operation, target, config, metadata, message
        )
        self.model.commits.append(commit)
        if content_type == "instruction" and operation == "append":
            commit.annotations.append(("pinned", PINNED_BY_DEFAULT, len(self.model.commits)))

    def _annotate(self, index: int, priority: Priority | str, reason: str | None = None) -> None:
        target = self.model.commits[index % len(self.model.commits)]
        annotation = self.tract.annotate(target.commit_hash, priority, reason=reason)
        assert annotation.priority is Priority(priority) and annotation.reason == reason
        target.annotations.append((Priority(priority).value, reason, len(self.model.commits)))

    def _record_usage(
        self, usage: tuple[Any, int, int], config: dict | None, name_head: bool = False
    ) -> CompiledContext:
        raw, prompt, completion = usage
        head = self.model.head
        assert head is not None
        if not name_head:
            self.tract.compile()  # as an agent does before its call: the context sent is this HEAD
        compiled = self.tract.record_usage(raw, head_hash=head if name_head else None, generation_config=config)
        if config is not None:
            self.model.find(head).recorded_configs.append(config)
        self.model.usage[head] = (prompt, completion)
        return compiled

    # -- rules -----------------------------------------------------------------------

    @rule(drawn=contents(), config=maybe_configs, metadata=maybe_metadata, message=maybe_messages)
    def append(self, drawn: Drawn, config: dict | None, metadata: dict | None, message: str | None) -> None:
        self._append(drawn, config, metadata, message)

    @precondition(lambda self: any(c.operation == "append" for c in self.model.commits))
    @rule(index=indices, drawn=contents(), config=maybe_configs, metadata=maybe_metadata, message=maybe_messages)
    def edit(self, index: int, drawn: Drawn, config: dict | None, metadata: dict | None, message: str | None) -> None:
        self._edit(index, drawn, config, metadata, message)

    @precondition(lambda self: any(c.operation == "edit" for c in self.model.commits))
    @rule(index=indices, drawn=contents())
    def edit_of_an_edit_is_refused(self, index: int, drawn: Drawn) -> None:
        edits = [c for c in self.model.commits if c.operation == "edit"]
        before = history(self.tract)
        with pytest.raises(EditTargetError):
            self.tract.commit(drawn.content, operation="edit", response_to=edits[index % len(edits)].commit_hash)
        assert history(self.tract) == before

    @precondition(lambda self: bool(self.model.commits))
    @rule(index=indices, priority=priorities, reason=st.none() | st.text(max_size=10))
    def annotate(self, index: int, priority: Priority | str, reason: str | None) -> None:
        self._annotate(index, priority, reason)

    @precondition(lambda self: bool(self.model.commits))
    @rule(usage=usages(), config=maybe_configs, name_head=st.booleans())
    def record_usage(self, usage: tuple[Any, int, int], config: dict | None, name_head: bool) -> None:
        returned = self._record_usage(usage, config, name_head)
        assert_compiled_is(returned, self.model.expected())

    @rule(
        ops=batch_ops,
        failure=st.sampled_from([None, None, None, "raise", "invalid content", "bad edit target", "bad usage"]),
        look_inside=st.booleans(),
    )
    def batch(self, ops: list[tuple], failure: str | None, look_inside: bool) -> None:
        t = self.tract
        saved_model = copy.deepcopy(self.model)
        before, before_position = history(t), t.chain_head.position
        log_bytes = (self.path / LOG_FILE).read_bytes() if self.path is not None else None
        try:
            with t.batch():
                for op in ops:
                    if op[0] == "append":
                        self._append(op[1], op[2], op[3])
                    elif op[0] == "edit" and self._originals():
                        self._edit(op[1], op[2], op[3], op[4])
                    elif op[0] == "annotate" and self.model.commits:
                        self._annotate(op[1], op[2])
                    elif op[0] == "usage" and self.model.commits:
                        self._record_usage(op[1], op[2])
                if look_inside:  # inside the block HEAD and compile already see the batch
                    assert t.head == self.model.head
                    assert_compiled_is(t.compile(), self.model.expected())
                    if self.reader is not None:  # ... and a reader sees none of it yet
                        assert self.reader.refresh() == before_position
                        assert history(self.reader) == before
                if failure == "raise":
                    raise BatchFailure("the agent crashed mid-batch")
                if failure == "invalid content":
                    t.commit({"content_type": "dialogue", "role": "robot", "text": "x"})
                if failure == "bad edit target":
                    t.commit(DialogueContent(role="user", text="x"), operation="edit", response_to="0" * 64)
                if failure == "bad usage":
                    t.record_usage({"tokens": 3})
        except (BatchFailure, ContentValidationError, EditTargetError, UsageError) as error:
            assert failure is not None, error
            self.model = saved_model
            assert history(t) == before
            if log_bytes is not None:
                assert (self.path / LOG_FILE).read_bytes() == log_bytes
        else:
            assert failure is None

    @precondition(lambda self: self.path is not None)
    @rule(delete_index=st.booleans())
    def close_and_reopen(self, delete_index: bool) -> None:
        assert self.path is not None
        live = self.tract.compile()
        before, head = history(self.tract), self.tract.chain_head
        self.tract.close()
        assert (self.path / INDEX_DIR / "catalogue").exists(), "closing the writer saves the tract index"
        if delete_index:
            shutil.rmtree(self.path / INDEX_DIR)
        self.t = open_tract(self.path, sync=self.sync)
        assert history(self.tract) == before and self.tract.chain_head == head
        assert_same_compiled(self.tract.compile(), live)

    @precondition(lambda self: self.path is not None)
    @rule(messages=st.lists(texts, min_size=1, max_size=3), batched=st.booleans())
    def another_tract_writes(self, messages: list[str], batched: bool) -> None:
        """The writer steps aside for a writer of another tract of the same log, then comes back:
        this tract reads as it was, numbered as it was, though the log grew."""
        assert self.path is not None
        live = self.tract.compile()
        before, head = history(self.tract), self.tract.chain_head
        self.tract.close()
        with open_tract(self.path, tract_id=OTHER, sync=self.sync) as other:
            with other.batch() if batched else contextlib.nullcontext():
                for text in messages:
                    other.commit(DialogueContent(role="user", text=text))
            self.other.extend(messages)
            assert [m.content for m in other.compile().messages] == self.other
        self.t = open_tract(self.path, sync=self.sync)
        assert self.tract.tract_id == before["tract_id"] != OTHER
        assert history(self.tract) == before and self.tract.chain_head == head
        assert_same_compiled(self.tract.compile(), live)

    @rule()
    def compile(self) -> None:
        self.check_live_compile()

    @precondition(lambda self: bool(self.model.commits))
    @rule(index=indices)
    def compile_at_a_past_commit(self, index: int) -> None:
        upto = index % len(self.model.commits) + 1
        compiled = self.tract.compile(at_commit=self.model.commits[upto - 1].commit_hash)
        assert_compiled_is(compiled, self.model.expected(upto))

    @rule()
    def compile_with_edit_markers(self) -> None:
        compiled = self.tract.compile(include_edit_annotations=True)
        assert_compiled_is(compiled, self.model.expected(markers=True))

    @precondition(lambda self: bool(self.timeline))
    @rule(index=indices)
    def compile_at_a_past_time(self, index: int) -> None:
        moment = self.timeline[index % len(self.timeline)]
        assert_compiled_is(self.tract.compile(at_time=moment.time), moment.expected)  # exactly what was live then

    @precondition(lambda self: bool(self.timeline))
    @rule(index=indices, by_time=st.booleans())
    def replay_to_an_earlier_point(self, index: int, by_time: bool) -> None:
        moment = self.timeline[index % len(self.timeline)]
        self.check_replay(self.tract, moment, by_time)

    # -- checks ----------------------------------------------------------------------

    def check_live_compile(self) -> None:
        t = self.tract
        expected = self.model.expected()
        live = t.compile()
        assert_compiled_is(live, expected)
        if t.head is not None:
            full = t.compile(at_commit=t.head)
            assert full.messages == live.messages
            assert full.generation_configs == live.generation_configs
            assert full.commit_hashes == live.commit_hashes
            assert (full.token_count, full.token_source, full.api_usage) == (
                live.token_count,
                live.token_source,
                live.api_usage,
            )

    def check_timeline(self, t: Tract) -> None:
        """Every earlier step, as an auditor reconstructs it from the log."""
        for number, moment in enumerate(self.timeline):
            assert_compiled_is(t.compile(at_time=moment.time), moment.expected)
            self.check_replay(t, moment, by_time=bool(number % 2))

    @staticmethod
    def check_replay(t: Tract, moment: Moment, by_time: bool) -> None:
        """replay() folds the log up to a point: it shows what was live right after it."""
        replayed = t.replay(until_time=moment.time) if by_time else t.replay(until_position=moment.position)
        with replayed as then:
            assert then.readonly
            assert then.chain_head.position == moment.position
            assert history(then) == moment.history
            assert_compiled_is(then.compile(), moment.expected)

    def check_history_against_model(self, state: dict[str, Any]) -> None:
        assert state["head"] == self.model.head
        log = state["log"]
        assert [info.commit_hash for info in log] == [c.commit_hash for c in reversed(self.model.commits)]
        for info, commit in zip(log, reversed(self.model.commits), strict=True):
            assert state["commits"][info.commit_hash] == info
            assert info.content_type == commit.content_type and info.content == commit.payload
            assert info.operation.value == commit.operation and info.response_to == commit.target
            assert info.metadata == commit.metadata and info.message == commit.message
            assert info.generation_config == commit.config
            assert info.token_count == content_tokens(commit.rendered.message())
            annotations = state["annotations"][info.commit_hash]
            assert [(a.priority.value, a.reason) for a in annotations] == [(p, r) for p, r, _ in commit.annotations]
            configs = state["configs"][info.commit_hash]
            expected_configs = ([(commit.own_config, "commit")] if commit.own_config is not None else []) + [
                (config, "record_usage") for config in commit.recorded_configs
            ]
            assert [(c.generation_config, c.source) for c in configs] == expected_configs
        parents = [info.parent_hash for info in log]
        assert parents == [info.commit_hash for info in log[1:]] + [None] * bool(log)

    @invariant()
    def replay_gives_the_live_state(self) -> None:
        t = self.tract
        live_history = history(t)
        self.check_history_against_model(live_history)
        expected = self.model.expected()
        chain_head = t.chain_head
        position = chain_head.position
        # The log only grew: it still passes through the chain head noted halfway through the run.
        anchor = self.timeline[len(self.timeline) // 2] if self.timeline else None
        report = t.verify(anchor=(anchor.position, anchor.chain_hash) if anchor else None)
        assert report.ok, report
        assert report.heads[t.tract_id] == TractHead(position, chain_head.hash)
        assert set(report.heads) == {t.tract_id, *([OTHER] if self.other else [])}
        if self.path is not None:
            assert self.reader is not None
            assert self.reader.refresh() == position
            assert history(self.reader) == live_history
            assert_compiled_is(self.reader.compile(), expected)
            with open_tract(self.path, readonly=True) as fresh:  # reads this tract through the index
                assert fresh.chain_head == t.chain_head
                assert history(fresh) == live_history
                assert fresh.log() == t.log()  # the default limit: the 10 newest
                assert_compiled_is(fresh.compile(), expected)
                if fresh.head is not None:
                    assert_compiled_is(fresh.compile(at_commit=fresh.head), expected)
        # Note when this state was current, for compile(at_time=...) and replay() later on.
        moment = datetime.now(timezone.utc)
        if t.head is not None:
            moment = max(moment, t.get_commit(t.head).created_at)
        while datetime.now(timezone.utc) <= moment:
            pass
        self.timeline.append(Moment(moment, position, chain_head.hash, expected, live_history))


class MemoryReplayMachine(ReplayMachine):
    storage = "memory"


class GroupCommitReplayMachine(ReplayMachine):
    storage = "directory-group-commit"


MACHINE_SETTINGS = examples(60, steps=40)
ReplayMachine.TestCase.settings = MACHINE_SETTINGS
MemoryReplayMachine.TestCase.settings = MACHINE_SETTINGS
GroupCommitReplayMachine.TestCase.settings = MACHINE_SETTINGS
TestDirectoryReplay = ReplayMachine.TestCase
TestMemoryReplay = MemoryReplayMachine.TestCase
TestGroupCommitReplay = GroupCommitReplayMachine.TestCase


# -- memory and disk agree ----------------------------------------------------------

simple_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), contents(), maybe_configs),
        st.tuples(st.just("edit"), indices, contents(), maybe_configs),
        st.tuples(st.just("annotate"), indices, priorities),
        st.tuples(st.just("usage"), usages(), maybe_configs),
    ),
    max_size=15,
)


@examples(40)
@given(ops=simple_ops)
def test_memory_and_directory_tracts_compile_alike_and_replay(ops: list[tuple]) -> None:
    """The same operations give the same context in memory, on disk, and on disk after reopening."""
    with tempfile.TemporaryDirectory(prefix="tract-props-") as tmp:
        path = Path(tmp) / "log"
        memory, disk = open_tract(), open_tract(path)
        originals: list[tuple[str, str]] = []  # (memory hash, disk hash) of each non-edit commit
        everything: list[tuple[str, str]] = []
        head_usage: int | None = None  # prompt tokens recorded for the current HEAD, if any
        try:
            for op in ops:
                if op[0] == "append":
                    pair = tuple(t.commit(op[1].content, generation_config=op[2]).commit_hash for t in (memory, disk))
                    originals.append(pair)
                    everything.append(pair)
                    head_usage = None
                elif op[0] == "edit" and originals:
                    targets = originals[op[1] % len(originals)]
                    pair = tuple(
                        t.commit(
                            op[2].content, operation="edit", response_to=target, generation_config=op[3]
                        ).commit_hash
                        for t, target in zip((memory, disk), targets, strict=True)
                    )
                    everything.append(pair)
                    head_usage = None
                elif op[0] == "annotate" and everything:
                    for t, target in zip((memory, disk), everything[op[1] % len(everything)], strict=True):
                        t.annotate(target, op[2])
                elif op[0] == "usage" and everything:
                    for t in (memory, disk):
                        t.record_usage(op[1][0], generation_config=op[2])
                    head_usage = op[1][1]
            in_memory, on_disk = memory.compile(), disk.compile()
            assert in_memory.token_count == on_disk.token_count == chat_tokens(in_memory.messages)
            api = [None if c.api_usage is None else c.api_usage.prompt_tokens for c in (in_memory, on_disk)]
            assert api == [head_usage, head_usage]
            assert in_memory.messages == on_disk.messages
            assert in_memory.generation_configs == on_disk.generation_configs
            assert (in_memory.token_count, in_memory.token_source) == (on_disk.token_count, on_disk.token_source)
            assert [info.content for info in memory.log(limit=None)] == [info.content for info in disk.log(limit=None)]
            disk.close()
            with open_tract(path) as again:
                assert_same_compiled(again.compile(), on_disk)
        finally:
            memory.close()
            disk.close()


# -- a reader that does not know a custom content type --------------------------------


class Shout(ContentModel):
    """A custom type whose rendering only the application knows."""

    content_type: Literal["shout"] = "shout"
    text: str
    message_role: ClassVar[str] = "user"

    @classmethod
    def render(cls, payload: dict[str, Any]) -> Any:
        parts = super().render(payload)
        return parts._replace(text="[shout] " + parts.text.upper())


@examples(20)
@given(text=texts)
def test_a_reader_without_the_custom_type_reports_tokens_of_what_it_returns(text: str) -> None:
    """An auditor may open a log without the application's content classes: the compiled
    messages then fall back to the payload's text, and the token count must still be the
    chat formula over the messages it returns (not the writer's count for other text)."""
    with tempfile.TemporaryDirectory(prefix="tract-props-") as tmp:
        path = Path(tmp) / "log"
        with Tract.open(path) as writer:
            writer.register_content_type("shout", Shout)
            writer.commit(Shout(text=text))
            writer.commit(DialogueContent(role="user", text="and you?"))
            live = writer.compile()
        assert live.token_count == chat_tokens(live.messages)
        with Tract.open(path, readonly=True) as reader:
            reader.register_content_type("shout", Shout)
            assert_same_compiled(reader.compile(), live)  # with the class: exactly the live state
        with Tract.open(path, readonly=True) as auditor:
            compiled = auditor.compile()
            assert compiled.token_source == TOKENS.name
            assert compiled.token_count == chat_tokens(compiled.messages)

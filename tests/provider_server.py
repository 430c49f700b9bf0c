"""A small local stand-in for the OpenAI, Anthropic and Gemini APIs, for the real SDK clients.

It listens on 127.0.0.1, checks each request against the rules the real API
enforces (request shape, no unknown keys, call / result pairing, alternation,
first turn, name and id patterns) and answers 400 with the provider's error
body when one is broken, as the API would. A valid request gets a realistic
response from a scripted agent: while the conversation has no tool result
since its last user message and tools are offered, it calls the first tool
(once per city it finds in the user's text, so calls come in parallel);
otherwise it answers with text that quotes the tool results it was given.
Every request is kept in `requests` for the tests to look at.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
CITIES = ("Paris", "Rome", "Oslo", "Lima")
USAGE = {"prompt": 57, "cached": 12, "completion": 23, "reasoning": 5}


class Refused(Exception):
    """A request the API would answer with 400."""


def refuse_unless(condition: bool, message: str) -> None:
    if not condition:
        raise Refused(message)


def only_keys(value: Any, allowed: set[str], where: str, required: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    refuse_unless(isinstance(value, dict), f"{where}: Input should be an object")
    extra = set(value) - allowed
    refuse_unless(not extra, f"{where}.{min(extra) if extra else ''}: Extra inputs are not permitted")
    missing = required - set(value)
    refuse_unless(not missing, f"{where}.{min(missing) if missing else ''}: Field required")


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# -- the scripted agent ----------------------------------------------------------------------


@dataclass
class Turn:
    """What the agent decided: tool calls (name, arguments) or a final text."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text: str = ""


def decide(last_user_text: str, results: list[str], tool_names: list[str]) -> Turn:
    if tool_names and not results:
        cities = [city for city in CITIES if city in last_user_text] or ["Paris"]
        return Turn(calls=[(tool_names[0], {"city": city}) for city in cities])
    if results:
        return Turn(text="Here is what the tools said: " + "; ".join(results))
    return Turn(text=f"You said: {last_user_text}")


# -- OpenAI Chat Completions -----------------------------------------------------------------

CHAT_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}


def check_chat(body: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    messages = body.get("messages")
    refuse_unless(isinstance(messages, list) and messages, "[] is too short - 'messages'")
    pending: dict[str, str] = {}
    seen_tool_block = False
    last_user, results = "", []
    for index, message in enumerate(messages):
        where = f"messages.[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        refuse_unless(role in CHAT_KEYS, f"{where}.role: invalid value {role!r}")
        only_keys(message, CHAT_KEYS[role], where, {"role"})
        if "name" in message:
            refuse_unless(
                isinstance(message["name"], str) and NAME.match(message["name"]) is not None,
                f"{message.get('name')!r} does not match '^[a-zA-Z0-9_-]{{1,64}}$' - '{where}.name'",
            )
        if role == "tool":
            refuse_unless(
                seen_tool_block and message.get("tool_call_id") in pending,
                "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                "'tool_calls'.",
            )
            refuse_unless(isinstance(message.get("content"), str), f"{where}.content: Input should be a valid string")
            pending.pop(message["tool_call_id"])
            results.append(message["content"])
            continue
        refuse_unless(
            not pending,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
        )
        seen_tool_block = False
        if role == "assistant" and "tool_calls" in message:
            calls = message["tool_calls"]
            refuse_unless(isinstance(calls, list) and calls, f"{where}.tool_calls: [] is too short")
            for number, call in enumerate(calls):
                call_where = f"{where}.tool_calls.[{number}]"
                only_keys(call, {"id", "type", "function"}, call_where, {"id", "type", "function"})
                refuse_unless(call["type"] == "function", f"{call_where}.type: Input should be 'function'")
                only_keys(call["function"], {"name", "arguments"}, f"{call_where}.function", {"name", "arguments"})
                refuse_unless(NAME.match(call["function"]["name"]) is not None, f"{call_where}.function.name: bad name")
                refuse_unless(
                    isinstance(call["function"]["arguments"], str),
                    f"{call_where}.function.arguments: Input should be a valid string",
                )
                pending[call["id"]] = call["function"]["name"]
            seen_tool_block = True
            refuse_unless("content" not in message or isinstance(message["content"], str), f"{where}.content: null")
        else:
            refuse_unless(isinstance(message.get("content"), str), f"{where}.content: Input should be a valid string")
        if role == "user":
            last_user, results = message["content"], []
    refuse_unless(
        not pending,
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
    )
    tools = [tool["function"]["name"] for tool in body.get("tools") or ()]
    return last_user, results, tools


def chat_response(body: dict[str, Any], turn: Turn, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{number}_{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for index, (name, arguments) in enumerate(turn.calls)
        ]
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 1_760_000_000 + number,
        "model": f"{body['model']}-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if turn.calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": USAGE["prompt"],
            "completion_tokens": USAGE["completion"],
            "total_tokens": USAGE["prompt"] + USAGE["completion"],
            "prompt_tokens_details": {"cached_tokens": USAGE["cached"], "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": USAGE["reasoning"], "audio_tokens": 0},
        },
        "system_fingerprint": "fp_local",
    }


# -- OpenAI Responses ------------------------------------------------------------------------

RESPONSES_KEYS = {
    "message": {"type", "role", "content"},
    "function_call": {"type", "id", "call_id", "name", "arguments", "status"},
    "function_call_output": {"type", "id", "call_id", "output", "status"},
}


def check_responses(body: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    refuse_unless("instructions" not in body or isinstance(body["instructions"], str), "instructions: must be a string")
    items = body.get("input")
    refuse_unless(isinstance(items, list), "input: Input should be a valid list")
    calls: dict[str, str] = {}
    answered: set[str] = set()
    last_user, results = "", []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        refuse_unless(
            kind in RESPONSES_KEYS, f"Invalid value: {kind!r}. Supported values are message, function_call..."
        )
        only_keys(item, RESPONSES_KEYS[kind], where)
        if kind == "message":
            refuse_unless(item.get("role") in ("user", "assistant", "system", "developer"), f"{where}.role: invalid")
            refuse_unless(isinstance(item.get("content"), str), f"{where}.content: Input should be a valid string")
            if item["role"] == "user":
                last_user, results = item["content"], []
        elif kind == "function_call":
            refuse_unless(NAME.match(item.get("name", "")) is not None, f"{where}.name: bad name")
            refuse_unless(isinstance(item.get("arguments"), str), f"{where}.arguments: Input should be a valid string")
            calls[item["call_id"]] = item["name"]
        else:
            refuse_unless(
                item.get("call_id") in calls,
                f"No tool call found for function call output with call_id {item.get('call_id')}.",
            )
            refuse_unless(isinstance(item.get("output"), str), f"{where}.output: Input should be a valid string")
            answered.add(item["call_id"])
            results.append(item["output"])
    unanswered = sorted(set(calls) - answered)
    refuse_unless(not unanswered, f"No tool output found for function call {unanswered[0] if unanswered else ''}.")
    tools = [tool["name"] for tool in body.get("tools") or ()]
    return last_user, results, tools


def responses_response(body: dict[str, Any], turn: Turn, number: int) -> dict[str, Any]:
    output: list[dict[str, Any]] = [
        {"id": f"rs_{number}", "type": "reasoning", "summary": [], "content": None, "encrypted_content": None}
    ]
    if turn.text:
        output.append(
            {
                "id": f"msg_{number}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}],
            }
        )
    output += [
        {
            "id": f"fc_{number}_{index}",
            "type": "function_call",
            "call_id": f"call_{number}_{index}",
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
        for index, (name, arguments) in enumerate(turn.calls)
    ]
    return {
        "id": f"resp_{number}",
        "object": "response",
        "created_at": 1_760_000_000 + number,
        "status": "completed",
        "model": f"{body['model']}-2025-04-16",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "instructions": body.get("instructions"),
        "usage": {
            "input_tokens": USAGE["prompt"],
            "input_tokens_details": {"cached_tokens": USAGE["cached"]},
            "output_tokens": USAGE["completion"],
            "output_tokens_details": {"reasoning_tokens": USAGE["reasoning"]},
            "total_tokens": USAGE["prompt"] + USAGE["completion"],
        },
    }


# -- Anthropic Messages ----------------------------------------------------------------------


def check_anthropic(body: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    refuse_unless(isinstance(body.get("max_tokens"), int), "max_tokens: Field required")
    if "system" in body:
        refuse_unless(
            isinstance(body["system"], str) and body["system"].strip() != "",
            "system: Input should be a valid string or list of text blocks",
        )
    messages = body.get("messages")
    refuse_unless(isinstance(messages, list) and messages, "messages: at least one message is required")
    refuse_unless(messages[0].get("role") == "user", 'messages: first message must use the "user" role')
    previous_calls: set[str] = set()
    all_ids: set[str] = set()
    last_user, results = "", []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        only_keys(message, {"role", "content"}, where, {"role", "content"})
        role = message["role"]
        refuse_unless(role in ("user", "assistant"), f"{where}.role: Input should be 'user' or 'assistant'")
        if index:
            refuse_unless(
                role != messages[index - 1]["role"],
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" '
                "roles in a row",
            )
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        refuse_unless(isinstance(blocks, list) and blocks, f"{where}: all messages must have non-empty content")
        answered: set[str] = set()
        calls: set[str] = set()
        texts = []
        for number, block in enumerate(blocks):
            block_where = f"{where}.content.{number}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                only_keys(block, {"type", "text"}, block_where, {"type", "text"})
                refuse_unless(
                    block["text"].strip() != "", f"{block_where}: text content blocks must contain non-whitespace text"
                )
                texts.append(block["text"])
            elif kind == "tool_use":
                refuse_unless(
                    role == "assistant", f"{block_where}: tool_use blocks are only allowed in assistant turns"
                )
                only_keys(block, {"type", "id", "name", "input"}, block_where, {"type", "id", "name", "input"})
                refuse_unless(
                    ANTHROPIC_ID.match(block["id"]) is not None,
                    f"{block_where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
                )
                refuse_unless(NAME.match(block["name"]) is not None, f"{block_where}.name: String should match pattern")
                refuse_unless(
                    isinstance(block["input"], dict), f"{block_where}.input: Input should be a valid dictionary"
                )
                refuse_unless(block["id"] not in all_ids, f"{block_where}: `tool_use` ids must be unique")
                calls.add(block["id"])
                all_ids.add(block["id"])
            elif kind == "tool_result":
                refuse_unless(role == "user", f"{block_where}: tool_result blocks are only allowed in user turns")
                only_keys(block, {"type", "tool_use_id", "content", "is_error"}, block_where, {"type", "tool_use_id"})
                refuse_unless(
                    not texts and number == len(answered),
                    f"{where}: tool_result blocks must come first in the content, before any other block",
                )
                refuse_unless(
                    block["tool_use_id"] in previous_calls,
                    f"{block_where}: unexpected `tool_use_id` found in `tool_result` blocks: {block['tool_use_id']}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                )
                refuse_unless("is_error" not in block or isinstance(block["is_error"], bool), f"{block_where}.is_error")
                answered.add(block["tool_use_id"])
                results.append(text_of(block.get("content", "")))
            else:
                refuse_unless(False, f"{block_where}.type: unknown block type {kind!r}")
        missing = sorted(previous_calls - answered)
        refuse_unless(
            not missing,
            f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next "
            "message.",
        )
        previous_calls = calls
        if role == "user" and texts:
            last_user, results = " ".join(texts), [] if not answered else results
    refuse_unless(
        not previous_calls,
        f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately after",
    )
    if messages[-1]["role"] == "assistant":
        last = messages[-1]["content"]
        tail = last if isinstance(last, str) else (last[-1].get("text", "") if last[-1]["type"] == "text" else "x")
        refuse_unless(tail == tail.rstrip(), "final assistant content cannot end with trailing whitespace")
    tools = [tool["name"] for tool in body.get("tools") or ()]
    return last_user, results, tools


def anthropic_response(body: dict[str, Any], turn: Turn, number: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": turn.text or "Let me look that up."}]
    content += [
        {"type": "tool_use", "id": f"toolu_{number:02d}{index}", "name": name, "input": arguments}
        for index, (name, arguments) in enumerate(turn.calls)
    ]
    return {
        "id": f"msg_{number:04d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if turn.calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": USAGE["prompt"] - USAGE["cached"] - 4,
            "cache_creation_input_tokens": 4,
            "cache_read_input_tokens": USAGE["cached"],
            "output_tokens": USAGE["completion"],
            "service_tier": "standard",
        },
    }


# -- Gemini generateContent (camelCase: what the google-genai SDK sends) ----------------------


def check_gemini(body: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    if "systemInstruction" in body:
        parts = body["systemInstruction"].get("parts")
        refuse_unless(
            isinstance(parts, list) and parts and all(p.get("text") for p in parts), "systemInstruction: empty"
        )
    contents = body.get("contents")
    refuse_unless(
        isinstance(contents, list) and contents, "* GenerateContentRequest.contents: contents is not specified"
    )
    refuse_unless(contents[0].get("role") == "user", "Please ensure that the conversation starts with a user turn.")
    pending: list[tuple[str | None, str]] = []
    last_user, results = "", []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        only_keys(content, {"role", "parts"}, where, {"role", "parts"})
        role = content["role"]
        refuse_unless(role in ("user", "model"), f"{where}.role: Please use a valid role: user, model.")
        if index:
            refuse_unless(
                role != contents[index - 1]["role"],
                "Please ensure that multiturn requests alternate between user and model.",
            )
        parts = content["parts"]
        refuse_unless(isinstance(parts, list) and parts, f"{where}.parts: contents.parts must not be empty.")
        responses = [part["functionResponse"] for part in parts if "functionResponse" in part]
        if pending or responses:
            refuse_unless(
                len(responses) == len(pending),
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn.",
            )
            for response, (call_id, name) in zip(responses, pending, strict=True):
                only_keys(response, {"id", "name", "response"}, f"{where}.functionResponse", {"name", "response"})
                refuse_unless(
                    response["name"] == name,
                    f"{where}: function response name {response['name']!r} does not match the call",
                )
                refuse_unless(response.get("id") == call_id, f"{where}: function response id does not match the call")
                refuse_unless(isinstance(response["response"], dict), f"{where}: response must be an object")
                results.append(text_of(response["response"]))
        pending = []
        texts = []
        for part in parts:
            refuse_unless(len(part) == 1, f"{where}: a part holds exactly one of text, functionCall, functionResponse")
            if "text" in part:
                refuse_unless(part["text"] != "", "Unable to submit request because it has an empty text parameter.")
                texts.append(part["text"])
            elif "functionCall" in part:
                refuse_unless(role == "model", f"{where}: function calls come from the model")
                call = part["functionCall"]
                only_keys(call, {"id", "name", "args"}, f"{where}.functionCall", {"name"})
                refuse_unless(isinstance(call.get("args", {}), dict), f"{where}.functionCall.args: must be an object")
                pending.append((call.get("id"), call["name"]))
            else:
                refuse_unless("functionResponse" in part and role == "user", f"{where}: unknown part {sorted(part)}")
        if role == "user" and texts:
            last_user, results = " ".join(texts), [] if not responses else results
    refuse_unless(
        not pending,
        "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
    )
    tools = [
        declaration["name"]
        for tool in body.get("tools") or ()
        for declaration in tool.get("functionDeclarations") or ()
    ]
    return last_user, results, tools


def gemini_response(model: str, turn: Turn, number: int) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": "Thinking it over.", "thought": True}]
    if turn.text:
        parts.append({"text": turn.text})
    parts += [{"functionCall": {"name": name, "args": arguments}} for name, arguments in turn.calls]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": USAGE["prompt"],
            "candidatesTokenCount": USAGE["completion"] - USAGE["reasoning"],
            "totalTokenCount": USAGE["prompt"] + USAGE["completion"],
            "cachedContentTokenCount": USAGE["cached"],
            "thoughtsTokenCount": USAGE["reasoning"],
        },
        "modelVersion": model,
        "responseId": f"resp-{number}",
    }


# -- the server ------------------------------------------------------------------------------

Route = Callable[[dict[str, Any], str, int], dict[str, Any]]


def _chat(body: dict[str, Any], path: str, number: int) -> dict[str, Any]:
    return chat_response(body, decide(*check_chat(body)), number)


def _responses(body: dict[str, Any], path: str, number: int) -> dict[str, Any]:
    return responses_response(body, decide(*check_responses(body)), number)


def _anthropic(body: dict[str, Any], path: str, number: int) -> dict[str, Any]:
    return anthropic_response(body, decide(*check_anthropic(body)), number)


def _gemini(body: dict[str, Any], path: str, number: int) -> dict[str, Any]:
    model = path.rsplit("/", 1)[-1].split(":", 1)[0]
    return gemini_response(model, decide(*check_gemini(body)), number)


GEMINI_PATH = re.compile(r"^/v1(beta)?/models/[^/:]+:generateContent$")
ROUTES: dict[str, Route] = {
    "/v1/chat/completions": _chat,
    "/v1/responses": _responses,
    "/v1/messages": _anthropic,
}


def error_body(path: str, message: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    if GEMINI_PATH.match(path):
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


class ProviderServer:
    """Start with `with ProviderServer() as server:`; `server.url` is its base address."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.refusals: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?", 1)[0]
                route = _gemini if GEMINI_PATH.match(path) else ROUTES.get(path)
                owner.requests.append((path, body))
                if route is None:
                    self._send(404, {"error": {"message": f"no route {path}"}})
                    return
                try:
                    answer = route(body, path, len(owner.requests))
                except Refused as refused:
                    owner.refusals.append(str(refused))
                    self._send(400, error_body(path, str(refused)))
                    return
                self._send(200, answer)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests look at `requests` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

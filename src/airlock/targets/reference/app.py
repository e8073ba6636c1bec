"""The reference target's HTTP face: a raw ASGI app that speaks OpenAI chat completions.

Routes: ``POST /v1/chat/completions`` (plain JSON, or server-sent events with
``"stream": true``), ``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /healthz``.
Errors have OpenAI's shape, ``{"error": {"message", "type", "code"}}``: 400 malformed
request, 401 wrong key, 404 unknown model or path, 405 wrong method, 413 body over
1 MiB, 500 internal error (never a traceback). No framework: the app must answer
thousands of requests a second on one core, so it does only what the protocol needs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airlock.targets.base import Message
from airlock.targets.reference.rules import PROFILES, find_topic, respond

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 1 << 20
MODELS = {f"reference-{p}": p for p in PROFILES}
REASONING_MODES = ("none", "think", "field")
CHUNK_CHARS = 16  # small pieces, so clients must really reassemble (tags split too)
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How the server behaves: default profile, delay before answering, reasoning, key."""

    profile: str = "naive"
    delay_s: float = 0.0
    reasoning: str = "none"
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose from {PROFILES}")
        if self.reasoning not in REASONING_MODES:
            raise ValueError(f"unknown reasoning mode {self.reasoning!r}")
        if not self.delay_s >= 0:  # also refuses NaN
            raise ValueError("delay must be a non-negative number of seconds")

    @property
    def model_names(self) -> list[str]:
        """Served model names, the default profile's first."""
        first = f"reference-{self.profile}"
        return [first, *(m for m in MODELS if m != first)]


class HTTPError(Exception):
    """An error answer in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}


def _bad_request(message: str) -> HTTPError:
    return HTTPError(400, message, "invalid_request_error", "invalid_request")


@dataclass(frozen=True)
class ChatCall:
    """A validated chat-completions request (``seed``/``temperature`` are ignored)."""

    model: str
    messages: tuple[Message, ...]
    stream: bool
    include_usage: bool


class ReferenceApp:
    """The ASGI application. ``ReferenceApp(Settings(profile="guarded"))``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        find_topic("")  # read the topic table now, not during the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._route(scope, receive, tracked)
        except HTTPError as e:
            if not started:
                await _send_json(tracked, e.status, e.body())
        except Exception:  # a fixture must never show a client its traceback
            log.exception("reference target: internal error")
            if not started:
                err = HTTPError(500, "internal error", "server_error", "internal_error")
                await _send_json(tracked, 500, err.body())

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if path == "/healthz":
            _need_method(method, "GET")
            await _send_json(send, 200, {"status": "ok"})
            return
        if path.startswith("/v1/"):
            self._check_key(scope)
        if path == "/v1/chat/completions":
            _need_method(method, "POST")
            call = parse_chat(await read_body(scope, receive), self.settings)
            await self._complete(call, send)
        elif path == "/v1/models":
            _need_method(method, "GET")
            data = [_model_card(m) for m in self.settings.model_names]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            _need_method(method, "GET")
            await _send_json(send, 200, _model_card(_known_model(path[len("/v1/models/") :])))
        else:
            raise HTTPError(404, f"no route for {path[:200]}", "invalid_request_error", "not_found")

    def _check_key(self, scope: Scope) -> None:
        key = self.settings.api_key
        if key is None:
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, b"Bearer " + key.encode()):
            raise HTTPError(401, "invalid API key", "invalid_request_error", "invalid_api_key")

    async def _complete(self, call: ChatCall, send: Send) -> None:
        if self.settings.delay_s > 0:
            await asyncio.sleep(self.settings.delay_s)
        reply = respond(call.messages, MODELS[call.model])
        content, reasoning = reply.answer, ""
        if self.settings.reasoning == "think":
            content = f"<think>\n{reply.reasoning}\n</think>\n\n{reply.answer}"
        elif self.settings.reasoning == "field":
            reasoning = reply.reasoning
        usage = _usage(call.messages, content + reasoning)
        if call.stream:
            events = stream_events(call, content, reasoning, usage)
            await _send_stream(send, events)
        else:
            await _send_json(send, 200, completion_body(call.model, content, reasoning, usage))


def parse_chat(body: bytes, settings: Settings) -> ChatCall:
    """Validate a chat-completions body; raise :class:`HTTPError` (400/404) if it is bad."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _bad_request("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad_request("request body must be a JSON object")
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad_request("'messages' must be a non-empty list")
    model = data.get("model", f"reference-{settings.profile}")
    if not isinstance(model, str):
        raise _bad_request("'model' must be a string")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad_request("'stream' must be true or false")
    options = data.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    messages = tuple(_message(m, i) for i, m in enumerate(raw))
    return ChatCall(_known_model(model), messages, stream, include_usage)


def _message(raw: object, index: int) -> Message:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        raise _bad_request(f"messages[{index}] must be an object with a string 'role'")
    return {"role": raw["role"], "content": _content_text(raw.get("content"), index)}


def _content_text(content: object, index: int) -> str:
    """Plain text of a message: a string, null, or a list of content parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    raise _bad_request(f"messages[{index}].content must be a string or a list of parts")


def _known_model(name: str) -> str:
    if name not in MODELS:
        raise HTTPError(
            404,
            f"the model {name[:200]!r} does not exist; this server has {', '.join(MODELS)}",
            "invalid_request_error",
            "model_not_found",
        )
    return name


def _need_method(method: str, allowed: str) -> None:
    if method != allowed:
        raise HTTPError(405, f"use {allowed} here", "invalid_request_error", "method_not_allowed")


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """The request body, refused with 413 past :data:`MAX_BODY` (declared or actual)."""
    declared = dict(scope["headers"]).get(b"content-length", b"0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "client went away", "invalid_request_error", "disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _too_large() -> HTTPError:
    return HTTPError(
        413, f"request body over {MAX_BODY} bytes", "invalid_request_error", "body_too_large"
    )


def count_tokens(text: str) -> int:
    """A rough token count: whitespace-separated words plus one per CJK character."""
    return len(_TOKEN.findall(text))


def _usage(messages: tuple[Message, ...], completion: str) -> dict[str, int]:
    prompt = sum(count_tokens(m["content"]) for m in messages)
    done = count_tokens(completion)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def completion_body(
    model: str, content: str, reasoning: str, usage: dict[str, int]
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: dict[str, str] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


def stream_events(
    call: ChatCall, content: str, reasoning: str, usage: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one streamed answer, in order.

    Reasoning deltas (``reasoning_content``) come before content deltas, as DeepSeek's
    and vLLM's reasoning parsers send them. With ``stream_options.include_usage`` a
    last chunk with empty ``choices`` carries the usage, as OpenAI does.
    """
    head: dict[str, Any] = {"id": _completion_id(), "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": call.model}

    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return head | {"choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reasoning):
        yield chunk({"reasoning_content": piece})
    for piece in _pieces(content):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if call.include_usage:
        yield head | {"choices": [], "usage": usage}


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), CHUNK_CHARS):
        yield text[i : i + CHUNK_CHARS]


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


async def _send_json(send: Send, status: int, obj: object) -> None:
    body = _dumps(obj)
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_stream(send: Send, events: Iterator[dict[str, Any]]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for event in events:
        body = b"data: " + _dumps(event) + b"\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "airlock-reference"}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

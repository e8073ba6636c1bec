"""Small ASGI helpers: bounded body reading and OpenAI-style JSON and error responses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class HTTPError(Exception):
    """An error the client gets as an OpenAI-style body: ``{"error": {...}}``.

    ``detail`` is what the audit log keeps instead of ``message`` when the client must not
    see it (upstream addresses, for one).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class Disconnected(Exception):
    """The client went away."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes.

    Raises:
        HTTPError: 413 when the body is larger.
        Disconnected: the client left before sending it all.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise Disconnected
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(
                413, f"request body larger than {limit} bytes", code="request_too_large"
            )
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


async def send_json(
    send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = dumps(obj)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: HTTPError) -> None:
    await send_json(send, err.status, err.body(), err.headers)


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return bytes(v).decode("latin-1")
    return None

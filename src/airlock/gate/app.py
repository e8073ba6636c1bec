"""The gateway: an ASGI app (served by uvicorn) that guards an OpenAI-compatible API.

Every request: read (bounded) → authenticate → route to the configured upstreams →
input scanners → upstream (failover) → output scanners (on a sliding window when
streaming) → answer; and, whatever happens, one audit row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from airlock.gate import relay, wiring
from airlock.gate.config import GateConfig
from airlock.gate.http import (
    SSE_HEADERS,
    Disconnected,
    HTTPError,
    Receive,
    Scope,
    Send,
    dumps,
    header,
    read_body,
    send_error,
    send_json,
)
from airlock.gate.keys import ClientKey, KeyStore, RateLimiter
from airlock.gate.metrics import Metrics
from airlock.gate.upstream import Upstreams


@dataclass
class Exchange:
    """What the audit log records about one request; filled in as the request goes."""

    request_id: str
    path: str
    client: str
    started: float = field(default_factory=time.monotonic)
    key_id: str | None = None
    model: str | None = None
    upstream: str | None = None
    status: int = 0
    decision: str = "allowed"
    stream: bool = False
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    blocked_by: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt: str = ""
    prompt_redacted: str = ""
    response: str = ""
    response_redacted: str = ""
    key: ClientKey | None = None

    def fail(self, err: HTTPError, decision: str = "rejected") -> None:
        self.status, self.error = err.status, err.detail
        self.decision = decision


# The method each path answers; another method on a known path is a 405, not a 404.
METHODS = {
    "/v1/chat/completions": "POST",
    "/v1/completions": "POST",
    "/v1/embeddings": "POST",
    "/v1/models": "GET",
    "/healthz": "GET",
    "/metrics": "GET",
}
AUDIT_BACKLOG = 1000  # rows waiting: past this, submit off the event loop (it may block)
CHARS_PER_TOKEN = 4  # to charge a token budget when the upstream reports no usage


class Gate:
    """The ASGI application. ``pipeline``/``keys``/``audit`` may be given (tests) or are
    built from the configuration at start-up."""

    def __init__(
        self,
        config: GateConfig,
        *,
        pipeline: Any = None,
        keys: KeyStore | None = None,
        audit: Any = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.keys = keys
        self.audit = audit
        self.upstreams = Upstreams()
        self.limiter = RateLimiter()
        self.metrics = Metrics()
        self._started = False
        self.audit_failures = 0
        self.audit_error: str | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        if self.pipeline is None:
            self.pipeline = wiring.pipeline(self.config)
        if self.keys is None and self.config.auth_required:
            self.keys = KeyStore(wiring.database(self.config))
        if self.audit is None:
            self.audit = wiring.audit_writer(self.config)
        self._started = True

    async def shutdown(self) -> None:
        await self.upstreams.close()
        if self.audit is not None:
            await asyncio.to_thread(self.audit.close)
        if self.keys is not None:
            self.keys.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if not self._started:
                await self.startup()
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- routing -------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            await self._health(send)
            return
        if path == "/metrics" and method == "GET":
            body = self.metrics.render().encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        handlers = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
        }
        handler = handlers.get((method, path))
        client = scope.get("client") or ("", 0)
        ex = Exchange(uuid.uuid4().hex, path, f"{client[0]}:{client[1]}")
        self.metrics.in_flight += 1
        try:
            if handler is None:
                raise _no_route(method, path)
            await handler(scope, receive, send, ex)
        except HTTPError as e:
            ex.fail(e, _decision(e))
            await send_error(send, e)
        except Disconnected:
            ex.decision, ex.status = "client-disconnected", 499
        except Exception as e:  # a bug must cost one request, never the gateway
            ex.fail(HTTPError(500, "internal error in the gateway"), "rejected")
            ex.error = f"{type(e).__name__}: {e}"
            await _try(
                send_error(
                    send, HTTPError(500, "internal error in the gateway", type_="server_error")
                )
            )
        finally:
            self.metrics.in_flight -= 1
            self._spend(ex)
            self._finish(ex)

    def _spend(self, ex: Exchange) -> None:
        """Charge the key's token budget for whatever reached the model, whatever happened
        after (a stream without usage, a block, a disconnect): estimated when not reported."""
        if ex.key is None or ex.upstream is None:
            return
        prompt = ex.prompt_tokens
        if prompt is None:
            prompt = len(ex.prompt) // CHARS_PER_TOKEN
        completion = ex.completion_tokens
        if completion is None:
            completion = len(ex.response) // CHARS_PER_TOKEN
        self.limiter.spend(ex.key, prompt + completion)

    def _finish(self, ex: Exchange) -> None:
        seconds = time.monotonic() - ex.started
        # a client-chosen model name is no label: unknown names would grow /metrics forever
        label = ex.model if ex.model in self.config.models else "-"
        self.metrics.request_done(label, ex.decision, ex.status, seconds)
        if self.audit is not None:
            record = wiring.audit_record(ex, seconds, self.config.store)
            if getattr(self.audit, "pending", 0) > AUDIT_BACKLOG:  # submit may block now
                # the response is sent; the row waits in a worker thread, not the event loop
                asyncio.get_running_loop().run_in_executor(None, self._submit, record)
            else:
                self._submit(record)

    def _submit(self, record: Any) -> None:
        try:
            self.audit.submit(record)
        except Exception as e:  # a failing audit log shows on /healthz (503)
            self.audit_failures += 1
            self.audit_error = f"{type(e).__name__}: {e}"

    async def _health(self, send: Send) -> None:
        """200 while requests can be served and audited; 503 when the audit log fails."""
        writer_error = getattr(self.audit, "error", None) or self.audit_error
        if writer_error:
            await send_json(
                send,
                503,
                {
                    "status": "degraded",
                    "audit": str(writer_error),
                    "audit_failures": self.audit_failures,
                },
            )
            return
        await send_json(send, 200, {"status": "ok"})

    # --- auth ----------------------------------------------------------------------------

    def _auth(self, scope: Scope, ex: Exchange) -> ClientKey | None:
        if not self.config.auth_required:
            return None
        value = header(scope, b"authorization") or ""
        token = value[7:].strip() if value[:7].lower() == "bearer " else ""
        key = self.keys.check(token) if (self.keys is not None and token) else None
        if key is None:
            raise HTTPError(
                401,
                "missing or invalid API key (Authorization: Bearer alk-…)",
                code="invalid_api_key",
            )
        ex.key_id, ex.key = key.id, key
        return key

    def _admit(self, key: ClientKey | None, model: str) -> None:
        if key is None:
            return
        if not key.allows(model):
            raise HTTPError(
                404,
                f"the model {model!r} does not exist or you have no access",
                code="model_not_found",
                param="model",
            )
        wait = self.limiter.admit(key)
        if wait:
            raise HTTPError(
                429,
                f"rate limit of key {key.id} reached; retry in {wait:.1f} s",
                type_="rate_limit_error",
                code="rate_limit_exceeded",
                headers=[(b"retry-after", str(max(1, round(wait))).encode())],
            )

    # --- endpoints -----------------------------------------------------------------------

    async def _models(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        key = self._auth(scope, ex)
        names = [m for m in self.config.models if key is None or key.allows(m)]
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "airlock-gate"} for m in names
        ]
        ex.status = 200
        await send_json(send, 200, {"object": "list", "data": data})

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        payload, key = await self._request(scope, receive, ex)
        model = ex.model or ""
        self._admit(key, model)
        opened = await self.upstreams.open(
            self.config.models[model], "/embeddings", payload, self.metrics.upstream_error
        )
        ex.upstream = opened.upstream.name
        async with opened.response as resp:
            if resp.status >= 400:
                await relay.pass_error(resp, send, ex)
                return
            data = await relay.read_json(resp)
        relay.usage_of(ex, data)
        ex.status = resp.status
        await send_json(send, resp.status, {**data, "model": model})

    async def _request(
        self, scope: Scope, receive: Receive, ex: Exchange
    ) -> tuple[dict[str, Any], ClientKey | None]:
        key = self._auth(scope, ex)  # before the body: a stranger's megabyte is not read
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                body = await read_body(receive, self.config.max_body_bytes)
        except TimeoutError:
            raise HTTPError(
                408,
                f"the request body did not arrive within {self.config.body_timeout_s} s",
                code="request_timeout",
            ) from None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "the request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPError(400, "'model' is required and must be a string", param="model")
        ex.model = model
        self._check_fields(payload)
        if model not in self.config.models:
            raise HTTPError(
                404,
                f"the model {model!r} does not exist or you have no access",
                code="model_not_found",
                param="model",
            )
        return payload, key

    def _check_fields(self, payload: dict[str, Any]) -> None:
        """Refuse fields the operator does not forward, and oversized ``n``."""
        cfg = self.config
        for name in payload:
            allowed = cfg.allow_fields is None or name in cfg.allow_fields or name == "model"
            if name in cfg.deny_fields or not allowed:
                raise HTTPError(
                    400,
                    f"the field {name!r} is not accepted by this gateway",
                    param=name,
                    code="field_not_allowed",
                )
        n = payload.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= cfg.max_n:
            raise HTTPError(400, f"'n' must be an integer from 1 to {cfg.max_n}", param="n")

    async def _chat(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        payload, key = await self._request(scope, receive, ex)
        self._admit(key, ex.model or "")
        chat = ex.path.endswith("/chat/completions")
        messages = relay.messages_of(payload, chat)
        relay.check_media(messages, self.config.remote_media, self.config.media_hosts)
        ex.stream = bool(payload.get("stream"))
        guarded = await relay.guard_input(self, messages, ex)
        body = relay.replace_input(payload, guarded.messages if guarded else messages, chat)
        path = "/chat/completions" if chat else "/completions"
        opened = await self.upstreams.open(
            self.config.models[ex.model or ""], path, body, self.metrics.upstream_error
        )
        ex.upstream = opened.upstream.name
        if opened.response.status >= 400:
            async with opened.response as resp:
                await relay.pass_error(resp, send, ex)
            return
        streamed = "text/event-stream" in opened.response.headers.get("Content-Type", "")
        if ex.stream and streamed:
            await relay.stream(self, opened.response, receive, send, ex, guarded, chat)
        elif ex.stream:  # the upstream ignored stream: true (some servers do)
            async with opened.response as resp:
                await relay.as_stream(self, resp, send, ex, guarded, chat)
        else:
            async with opened.response as resp:
                await relay.whole(self, resp, send, ex, guarded, chat)


def _no_route(method: str, path: str) -> HTTPError:
    allowed = METHODS.get(path)
    if allowed is None:
        return HTTPError(404, f"no route {method} {path}", code="not_found")
    return HTTPError(
        405,
        f"{path} takes {allowed}, not {method}",
        code="method_not_allowed",
        headers=[(b"allow", allowed.encode())],
    )


def _decision(err: HTTPError) -> str:
    if err.code == "content_filter":
        return "blocked"
    return "upstream-error" if err.type == "upstream_error" else "rejected"


async def _try(coro: Any) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone: no one to tell
        await coro


def dumps_event(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


__all__ = ["SSE_HEADERS", "Exchange", "Gate", "dumps_event"]

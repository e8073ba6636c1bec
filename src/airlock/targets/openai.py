"""OpenAI-compatible chat-completions endpoints (vLLM, SGLang, Ollama, llama.cpp server,
TGI, LM Studio, and the DeepSeek, Qwen, xAI and OpenAI APIs), over aiohttp.

``url`` is the base URL the OpenAI client calls ``base_url`` (``http://host:8000/v1``);
a URL already ending in ``/chat/completions`` is used as given.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from airlock.targets.base import ChatRequest, Completion, TargetError, split_reasoning

MAX_BODY = 16 << 20  # an answer larger than this is not a chat completion


class OpenAITarget:
    """One model behind an OpenAI-compatible endpoint.

    The key comes from the caller (the CLI reads it from the environment variable the
    user names); it is sent as a Bearer token and never stored or printed.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        name: str | None = None,
        stream: bool = False,
        max_connections: int = 256,
    ) -> None:
        self.base, self.endpoint = endpoint_of(url)
        self.model = model
        self.name = name or model
        self.url = url
        self.stream = stream
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=conn,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        body: dict[str, Any] = {"model": self.model, "messages": list(request.messages)}
        for key in ("temperature", "seed", "max_tokens"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if self.stream:
            body["stream"] = True
        body.update(request.extra)
        return body

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one chat request.

        Raises:
            TargetError: unreachable, timeout, HTTP error or a body that is not a completion.
        """
        start = time.perf_counter()
        try:
            async with self._client().post(self.endpoint, json=self.body(request)) as resp:
                if resp.status >= 400:
                    raise await _http_error(resp, self.model)
                if self.stream:
                    text, reasoning, usage, finish = await _read_stream(resp)
                else:
                    text, reasoning, usage, finish = _parse_body(await _read_json(resp))
        except TargetError:
            raise
        except TimeoutError:
            raise TargetError("timeout", f"no complete answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as e:
            raise TargetError(
                "unreachable", f"cannot connect to {self.endpoint}: {e.os_error}"
            ) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as e:
            raise TargetError("unreachable", f"connection dropped: {e}") from None
        except aiohttp.ClientError as e:
            raise TargetError("unreachable", f"{type(e).__name__}: {e}") from None
        answer, thought = split_reasoning(text, reasoning)
        return Completion(
            text=answer,
            reasoning=thought,
            finish_reason=finish,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            latency_s=time.perf_counter() - start,
        )

    async def preflight(self) -> None:
        """One tiny request: is the endpoint there, does it take our key, does it know the model?

        Raises:
            TargetError: with a message that says which of those failed.
        """
        probe = ChatRequest(({"role": "user", "content": "ping"},), max_tokens=1)
        try:
            await self.complete(probe)
        except TargetError as e:
            hint = {
                "unreachable": "is the server running and the URL right (…/v1)?",
                "auth": "check the API key (--api-key-env) and its permissions",
                "not-found": f"is {self.model!r} the model name the server knows?",
                "timeout": "raise --timeout or check the server's load",
            }.get(e.kind, "")
            raise TargetError(
                e.kind, f"{self.name}: {e.args[0]}" + (f" — {hint}" if hint else ""), e.status
            ) from None


def endpoint_of(url: str) -> tuple[str, str]:
    """(base URL, chat-completions URL) for what a user gives: a base URL (``…/v1``) or the
    full endpoint; a query string (Azure's ``?api-version=…``) stays on the endpoint."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    base_path = path.removesuffix("/chat/completions")
    base = urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))
    endpoint = urlunsplit(
        (parts.scheme, parts.netloc, base_path + "/chat/completions", parts.query, "")
    )
    return base, endpoint


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise TargetError("protocol", f"answer larger than {MAX_BODY >> 20} MiB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TargetError("protocol", f"answer is not JSON: {raw[:80]!r}") from None


async def _http_error(resp: aiohttp.ClientResponse, model: str) -> TargetError:
    try:
        detail = (await resp.content.read(4096)).decode("utf-8", "replace")
        data = json.loads(detail)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            detail = str(err.get("message", detail))
        elif isinstance(err, str):
            detail = err
    except (TimeoutError, ValueError, aiohttp.ClientError):
        pass
    detail = " ".join(str(detail).split())[:300]
    status = resp.status
    if status in (401, 403):
        kind = "auth"
    elif status == 404:
        kind = "not-found"
    elif status == 429 or status >= 500:
        kind = "http-retry"
    else:
        kind = "http"
    error = TargetError(kind, f"HTTP {status}: {detail or resp.reason}", status)
    retry_after = resp.headers.get("Retry-After", "")
    if retry_after.replace(".", "", 1).isdigit():
        error.retry_after = float(retry_after)
    return error


def _parse_body(data: Any) -> tuple[str, str, dict[str, Any], str | None]:
    if not isinstance(data, dict):
        raise TargetError("protocol", "answer is not a JSON object")
    if isinstance(data.get("error"), dict | str):
        raise TargetError("http-retry", f"error in a 200 answer: {str(data['error'])[:200]}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TargetError("protocol", "answer has no choices")
    msg = choices[0].get("message")
    if not isinstance(msg, dict):
        raise TargetError("protocol", "first choice has no message")
    text = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or ""
    if not isinstance(text, str) or not isinstance(reasoning, str):
        raise TargetError("protocol", "message content is not text")
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    finish = choices[0].get("finish_reason")
    return text, reasoning, usage, finish if isinstance(finish, str) else None


async def _read_stream(resp: aiohttp.ClientResponse) -> tuple[str, str, dict[str, Any], str | None]:
    text: list[str] = []
    reasoning: list[str] = []
    usage: dict[str, Any] = {}
    finish: str | None = None
    size = 0
    async for raw in resp.content:
        size += len(raw)
        if size > MAX_BODY:
            raise TargetError("protocol", f"stream larger than {MAX_BODY >> 20} MiB")
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return "".join(text), "".join(reasoning), usage, finish
        try:
            event = json.loads(payload)
        except ValueError:
            raise TargetError("protocol", f"stream event is not JSON: {payload[:80]!r}") from None
        if not isinstance(event, dict):
            raise TargetError("protocol", "stream event is not a JSON object")
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                text.append(delta.get("content") or "")
                reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                finish = choice["finish_reason"]
    if finish is None and not text:
        raise TargetError("unreachable", "stream ended before any answer")
    return "".join(text), "".join(reasoning), usage, finish

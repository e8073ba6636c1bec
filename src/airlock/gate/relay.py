"""Moving one request and its answer through the guard: input in, answer (whole or
streamed) out. Streaming answers pass an output guard that holds back a window of text,
so nothing unscanned reaches the client beyond that window."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from airlock.gate.http import SSE_HEADERS, Disconnected, HTTPError, Receive, Send, dumps, send_json

if TYPE_CHECKING:
    from airlock.gate.app import Exchange, Gate

MAX_UPSTREAM_BODY = 32 << 20
MAX_AUDIT_TEXT = 64 << 10
# Model text a message or delta carries besides ``content`` (and tool-call arguments):
# each is scanned like the content, on its own sliding window when streamed.
TEXT_FIELDS = ("reasoning_content", "reasoning", "refusal")
AUDITED = ("content", "text", "part", "tool", "fn")  # the pieces the audit row keeps


def _bad_upstream(message: str) -> HTTPError:
    return HTTPError(502, message, type_="upstream_error", code="bad_upstream_response")


def messages_of(payload: dict[str, Any], chat: bool) -> list[dict[str, Any]]:
    """The messages to guard: chat messages, or a completion prompt as one user message.

    Raises:
        HTTPError: 400 when they are missing or of the wrong shape.
    """
    if not chat:
        prompt = payload.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise HTTPError(400, "'prompt' must be a string or a list of strings", param="prompt")
        return [{"role": "user", "content": p} for p in prompts]
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(400, "'messages' must be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise HTTPError(
                400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise HTTPError(
                400,
                f"messages[{i}].content must be a string or a list of parts",
                param=f"messages[{i}].content",
            )
    return messages


def check_media(messages: list[dict[str, Any]], remote: bool, hosts: tuple[str, ...]) -> None:
    """Refuse content parts that make the upstream fetch a URL (image_url, input_audio,
    file …) unless remote media is allowed, or its host is on the allowlist: a model
    server that fetches what a client names is a way into the server's network (SSRF).
    ``data:`` URLs carry their bytes and are always accepted.

    Raises:
        HTTPError: 400 ``remote_media_not_allowed`` naming the message.
    """
    if remote and not hosts:
        return
    for i, m in enumerate(messages):
        parts = m.get("content")
        if not isinstance(parts, list):
            continue
        for part in parts:
            url = _media_url(part)
            if url is None or url.startswith("data:"):
                continue
            try:
                host = (urlsplit(url).hostname or "").lower()
            except ValueError:
                host = ""
            if not (host and any(host == h or host.endswith("." + h) for h in hosts)):
                raise HTTPError(
                    400,
                    f"messages[{i}]: remote media URLs are not accepted by "
                    "this gateway (send the bytes as a data: URL)",
                    param=f"messages[{i}].content",
                    code="remote_media_not_allowed",
                )


def _media_url(part: Any) -> str | None:
    if not isinstance(part, dict):
        return None
    for key in ("image_url", "video_url", "audio_url", "file"):
        value = part.get(key)
        if isinstance(value, dict):
            value = value.get("url") or value.get("file_data")
        if isinstance(value, str):
            return value
    return None


def replace_input(
    payload: dict[str, Any], messages: list[dict[str, Any]], chat: bool
) -> dict[str, Any]:
    if chat:
        return {**payload, "messages": messages}
    prompts = [m["content"] for m in messages]
    return {**payload, "prompt": prompts[0] if isinstance(payload.get("prompt"), str) else prompts}


def text_of(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            parts.append(f"{m.get('role')}: {c}")
        elif isinstance(c, list):
            parts += [
                f"{m.get('role')}: {p.get('text', '')}"
                for p in c
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
    return "\n".join(parts)


def _record(gate: Gate, ex: Exchange, verdicts: list[Any]) -> None:
    for v in verdicts:
        d = v.to_dict()
        if d.get("hits"):
            ex.verdicts.append(d)
            gate.metrics.scanner_hit(v.scanner, v.stage, v.action)


def _blocked(ex: Exchange, verdict: Any, stage: str) -> HTTPError:
    ex.blocked_by = verdict.scanner
    kinds = ", ".join(sorted({h.kind for h in verdict.hits})) or verdict.scanner
    return HTTPError(
        400,
        f"blocked by the airlock guard's {verdict.scanner} scanner ({stage}: {kinds})",
        code="content_filter",
        param=verdict.scanner,
    )


async def guard_input(gate: Gate, messages: list[dict[str, Any]], ex: Exchange) -> Any:
    """Run the input scanners; returns their result (None when the guard is off).

    Raises:
        HTTPError: 400 ``content_filter`` when a blocking scanner fired.
    """
    ex.prompt = text_of(messages)
    if gate.pipeline is None:
        ex.prompt_redacted = ex.prompt
        return None
    if getattr(gate.pipeline, "slow", False):  # a model: keep the event loop free
        result = await asyncio.to_thread(gate.pipeline.check_input, messages)
    else:
        result = gate.pipeline.check_input(messages)
    _record(gate, ex, result.verdicts)
    ex.prompt_redacted = text_of(result.messages)
    if result.blocked is not None:
        raise _blocked(ex, result.blocked, "input")
    return result


async def read_json(resp: Any) -> dict[str, Any]:
    """An upstream's JSON body, bounded.

    Raises:
        HTTPError: 502 when it is too large or not a JSON object.
    """
    raw = await resp.content.read(MAX_UPSTREAM_BODY + 1)
    if len(raw) > MAX_UPSTREAM_BODY:
        raise HTTPError(502, "upstream answer too large", type_="upstream_error")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad_upstream(
            f"upstream answered with something that is not JSON: {raw[:60]!r}"
        ) from None
    if not isinstance(data, dict):
        raise _bad_upstream("upstream answer is not a JSON object")
    return data


async def pass_error(resp: Any, send: Send, ex: Exchange) -> None:
    """An upstream's 4xx goes back to the client, reshaped as an OpenAI-style error.

    The upstream refusing the gateway's own credentials (401, 403, 407) is a 502: passed
    on as is, the client would take it for a verdict on its own key.
    """
    raw = await resp.content.read(64 << 10)
    try:
        data = json.loads(raw)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else str(data)
    except (ValueError, TypeError, KeyError, AttributeError):
        message = raw[:300].decode("utf-8", "replace")
    status, shown = resp.status, f"upstream: {message}"
    if status in (401, 403, 407):
        status, shown = 502, f"the upstream refused the gateway's credentials (HTTP {status})"
    ex.status, ex.decision = status, "upstream-error"
    ex.error = f"upstream HTTP {resp.status}: {message}"
    err = HTTPError(status, shown, type_="upstream_error")
    await send_json(send, status, err.body())


def usage_of(ex: Exchange, data: dict[str, Any]) -> None:
    """Token counts from an upstream answer or stream event, when it reports them."""
    usage = data.get("usage")
    if isinstance(usage, dict):
        for field_, key in (
            ("prompt_tokens", "prompt_tokens"),
            ("completion_tokens", "completion_tokens"),
        ):
            if isinstance(usage.get(key), int):
                setattr(ex, field_, usage[key])


def pieces(choice: dict[str, Any], chat: bool, delta: bool) -> Iterator[tuple[Any, Any, str]]:
    """Every piece of model text in one choice: ``(slot, container, key)`` with
    ``container[key]`` a string; ``slot`` names the piece within the choice (content,
    a content part, reasoning, a tool call's arguments) so a stream keeps one guard each."""
    if not chat:
        if isinstance(choice.get("text"), str):
            yield ("text",), choice, "text"
        return
    box = choice.get("delta" if delta else "message")
    if not isinstance(box, dict):
        return
    content = box.get("content")
    if isinstance(content, str):
        yield ("content",), box, "content"
    elif isinstance(content, list):  # some servers answer with content parts
        for j, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield ("part", j), part, "text"
    for name in TEXT_FIELDS:
        if isinstance(box.get(name), str):
            yield (name,), box, name
    calls = box.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            at = call.get("index", j)
            yield ("tool", at if isinstance(at, int) else j), fn, "arguments"
    legacy = box.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        yield ("fn",), legacy, "arguments"


async def whole(gate: Gate, resp: Any, send: Send, ex: Exchange, guarded: Any, chat: bool) -> None:
    """A non-streamed answer: check every choice's text, restore placeholders, send."""
    data = await _checked(gate, resp, ex, guarded, chat)
    await send_json(send, 200, data)


async def as_stream(
    gate: Gate, resp: Any, send: Send, ex: Exchange, guarded: Any, chat: bool
) -> None:
    """An upstream that ignored ``stream: true`` and sent one JSON answer: check it whole,
    then give the client the stream it asked for (one chunk per choice, then the end)."""
    data = await _checked(gate, resp, ex, guarded, chat)
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    base = {
        "id": data.get("id", ex.request_id),
        "created": data.get("created", 0),
        "model": ex.model,
        "object": "chat.completion.chunk" if chat else "text_completion",
    }
    for i, choice in enumerate(c for c in data["choices"] if isinstance(c, dict)):
        got = pieces(choice, chat, False)
        text = "".join(box[key] for slot, box, key in got if slot[0] in ("content", "text", "part"))
        index = choice.get("index", i)
        body: dict[str, Any] = {"role": "assistant", "content": text}
        message = choice.get("message") if chat else None
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if isinstance(calls, list) and calls:  # a tool call is the answer: keep it
            body["tool_calls"] = [
                {**c, "index": j} for j, c in enumerate(calls) if isinstance(c, dict)
            ]
        part = {"index": index, "delta": body} if chat else {"index": index, "text": text}
        await _send_event(send, {**base, "choices": [part]})
        empty: dict[str, Any] = {}
        end = {"index": index, "finish_reason": choice.get("finish_reason")}
        end.update({"delta": empty} if chat else {"text": ""})
        await _send_event(send, {**base, "choices": [end]})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _checked(gate: Gate, resp: Any, ex: Exchange, guarded: Any, chat: bool) -> dict[str, Any]:
    data = await read_json(resp)
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _bad_upstream("upstream answer has no choices")
    usage_of(ex, data)
    texts = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if gate.pipeline is not None and choice.get("logprobs") is not None:
            choice["logprobs"] = None  # the tokens of the answer before its redaction
        for slot, box, key in pieces(choice, chat, False):
            box[key] = _check_output(gate, ex, guarded, box[key])
            if slot[0] in AUDITED:
                texts.append(box[key])
    ex.response = "\n".join(texts)[:MAX_AUDIT_TEXT]
    ex.response_redacted = _conceal(guarded, ex.response)
    data["model"] = ex.model
    ex.status = 200
    return data


def _conceal(guarded: Any, text: str) -> str:
    """The answer as the audit's ``redacted`` policy keeps it: restored personal data
    hidden behind its placeholders again."""
    vault = guarded.vault if guarded is not None else None
    return vault.conceal(text) if vault is not None else text


def _check_output(gate: Gate, ex: Exchange, guarded: Any, text: str) -> str:
    if gate.pipeline is None:
        return text
    result = gate.pipeline.check_output(
        text, guarded.vault if guarded else None, guarded.context if guarded else None
    )
    _record(gate, ex, result.verdicts)
    if result.blocked is not None:
        raise _blocked(ex, result.blocked, "output")
    return str(result.text)


async def stream(
    gate: Gate, resp: Any, receive: Receive, send: Send, ex: Exchange, guarded: Any, chat: bool
) -> None:
    """Relay a streamed answer; a client that leaves cancels the upstream request."""
    ex.status = 200
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    relay = asyncio.create_task(_relay(gate, resp, send, ex, guarded, chat))
    watcher = asyncio.create_task(_await_disconnect(receive))
    try:
        done, _ = await asyncio.wait({relay, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if relay not in done:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            raise Disconnected
        relay.result()
    finally:
        watcher.cancel()
        resp.close()


async def _await_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Transcript:
    """The streamed answer as sent, kept up to MAX_AUDIT_TEXT characters for the audit
    row (a long stream must not grow the gateway's memory)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def append(self, text: str) -> None:
        room = MAX_AUDIT_TEXT - self.size
        if room > 0 and text:
            self.parts.append(text[:room])
            self.size += min(len(text), room)

    def text(self) -> str:
        return "".join(self.parts)


class _Guards:
    """One output guard per piece of text of each choice: ``(index, slot)`` (``n`` > 1
    streams interleave choices; content, reasoning and each tool call's arguments are
    separate texts that arrive side by side)."""

    def __init__(self, gate: Gate, guarded: Any) -> None:
        self.gate, self.guarded = gate, guarded
        self.by_key: dict[tuple[int, Any], Any] = {}

    def get(self, index: int, slot: Any) -> Any:
        if self.gate.pipeline is None:
            return None
        if (index, slot) not in self.by_key:
            g = self.guarded
            self.by_key[index, slot] = self.gate.pipeline.stream(
                g.vault if g else None,
                g.context if g else None,
                window=self.gate.config.stream_window,
            )
        return self.by_key[index, slot]

    def of(self, index: int | None) -> list[tuple[Any, Any]]:
        """(slot, guard) of one choice, or of every choice (None), popped."""
        keys = [k for k in self.by_key if index is None or k[0] == index]
        return [(k, self.by_key.pop(k)) for k in keys]


async def _relay(gate: Gate, resp: Any, send: Send, ex: Exchange, guarded: Any, chat: bool) -> None:
    guards = _Guards(gate, guarded)
    out = _Transcript()
    stopped = False
    try:
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            event = _event(payload)
            usage_of(ex, event)
            if await _forward(gate, event, guards, send, ex, chat, out):
                stopped = True  # by a scanner; its final event is sent
                break
        if not stopped:
            await _flush(gate, guards.of(None), send, ex, chat, out, None, {})
    except HTTPError as e:  # garbage from upstream mid-stream
        ex.decision, ex.error = "upstream-error", e.message
        await _send_event(send, {"error": e.body()["error"]})
    except (
        TimeoutError,
        ValueError,
        ConnectionError,
        aiohttp.ClientError,
        HttpProcessingError,
    ) as e:
        # HttpProcessingError: LineTooLong, an event line past aiohttp's bound
        ex.decision, ex.error = "upstream-error", f"upstream stream broke: {type(e).__name__}"
        await _send_event(send, {"error": {"message": ex.error, "type": "upstream_error"}})
    finally:
        ex.response = out.text()
        ex.response_redacted = _conceal(guarded, ex.response)
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(502, "upstream stream event is not JSON", type_="upstream_error") from None
    if not isinstance(event, dict):
        raise HTTPError(502, "upstream stream event is not a JSON object", type_="upstream_error")
    return event


async def _forward(
    gate: Gate,
    event: dict[str, Any],
    guards: _Guards,
    send: Send,
    ex: Exchange,
    chat: bool,
    out: _Transcript,
) -> bool:
    """Send one upstream event through the guards; True when a scanner stopped the stream."""
    event["model"] = ex.model
    for choice in event.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
        if gate.pipeline is not None and choice.get("logprobs") is not None:
            choice["logprobs"] = None  # the tokens of text the window has not released
        here: dict[Any, tuple[Any, str]] = {}
        for slot, box, key in pieces(choice, chat, True):
            here[slot] = (box, key)
            guard = guards.get(index, slot)
            if guard is not None:
                safe, verdict = guard.feed(box[key])
                if verdict is not None:
                    await _stop(gate, send, ex, verdict, chat, event, index)
                    return True
                box[key] = safe
            if slot[0] in AUDITED:
                out.append(box[key])
        ending = guards.of(index) if choice.get("finish_reason") else []
        if ending and await _flush(gate, ending, send, ex, chat, out, event, here):
            return True
    await _send_event(send, event)
    return False


async def _flush(
    gate: Gate,
    ending: list[tuple[Any, Any]],
    send: Send,
    ex: Exchange,
    chat: bool,
    out: _Transcript,
    event: dict[str, Any] | None,
    here: dict[Any, tuple[Any, str]],
) -> bool:
    """Release what ending guards still hold: into the event that ends their choice when
    it carries that piece (so the text keeps its order), else in an event of its own sent
    before it. True when a scanner stopped the stream."""
    for (index, slot), guard in ending:
        rest, verdict = guard.finish()
        if verdict is not None:
            await _stop(gate, send, ex, verdict, chat, event or {}, index)
            return True
        _record(gate, ex, guard.verdicts)  # redactions and flags made along the stream
        if not rest:
            continue
        if slot[0] in AUDITED:
            out.append(rest)
        if slot in here:
            box, key = here[slot]
            box[key] += rest
            continue
        base = {k: v for k, v in (event or {}).items() if k in ("id", "object", "created")}
        await _send_event(send, {**base, "model": ex.model, "choices": [_rest(slot, index, rest)]})
    return False


def _rest(slot: Any, index: int, rest: str) -> dict[str, Any]:
    """A stream choice carrying the held-back end of one piece of text."""
    kind = slot[0]
    if kind == "text":
        return {"index": index, "text": rest}
    delta: dict[str, Any]
    if kind == "tool":
        delta = {"tool_calls": [{"index": slot[1], "function": {"arguments": rest}}]}
    elif kind == "fn":
        delta = {"function_call": {"arguments": rest}}
    elif kind == "part":
        delta = {"content": rest}
    else:
        delta = {kind: rest}
    return {"index": index, "delta": delta}


async def _stop(
    gate: Gate,
    send: Send,
    ex: Exchange,
    verdict: Any,
    chat: bool,
    event: dict[str, Any],
    index: int = 0,
) -> None:
    """End the stream because a scanner blocked: a final content_filter event."""
    _record(gate, ex, [verdict])
    err = _blocked(ex, verdict, "output")
    ex.decision, ex.error = "blocked", err.message
    base = {k: v for k, v in event.items() if k in ("id", "object", "created")}
    choice: dict[str, Any] = {"index": index, "finish_reason": "content_filter"}
    if chat:
        choice["delta"] = {}
    else:
        choice["text"] = ""
    await _send_event(
        send,
        {
            **base,
            "model": ex.model,
            "choices": [choice],
            "airlock": {"blocked_by": verdict.scanner, "message": err.message},
        },
    )


async def _send_event(send: Send, obj: dict[str, Any]) -> None:
    await send(
        {"type": "http.response.body", "body": b"data: " + dumps(obj) + b"\n\n", "more_body": True}
    )

"""Moving one request and its answer through the guard: input in, answer (whole or
streamed) out. Streaming answers pass an output guard that holds back a window of text,
so nothing unscanned reaches the client beyond that window."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from airlock.gate.http import SSE_HEADERS, Disconnected, HTTPError, Receive, Send, dumps, send_json

if TYPE_CHECKING:
    from airlock.gate.app import Exchange, Gate

MAX_UPSTREAM_BODY = 32 << 20
MAX_AUDIT_TEXT = 64 << 10


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
    """An upstream's 4xx goes back to the client, reshaped as an OpenAI-style error."""
    raw = await resp.content.read(64 << 10)
    try:
        data = json.loads(raw)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else str(data)
    except (ValueError, TypeError, KeyError, AttributeError):
        message = raw[:300].decode("utf-8", "replace")
    ex.status, ex.decision, ex.error = resp.status, "upstream-error", f"upstream: {message}"
    err = HTTPError(resp.status, f"upstream: {message}", type_="upstream_error")
    await send_json(send, resp.status, err.body())


def _usage(ex: Exchange, data: dict[str, Any]) -> None:
    usage = data.get("usage")
    if isinstance(usage, dict):
        for field_, key in (
            ("prompt_tokens", "prompt_tokens"),
            ("completion_tokens", "completion_tokens"),
        ):
            if isinstance(usage.get(key), int):
                setattr(ex, field_, usage[key])


def _slot(choice: dict[str, Any], chat: bool, delta: bool) -> tuple[dict[str, Any], str] | None:
    """Where a choice keeps its text: (container, key)."""
    if not chat:
        return (choice, "text") if isinstance(choice.get("text"), str) else None
    box = choice.get("delta" if delta else "message")
    if isinstance(box, dict) and isinstance(box.get("content"), str):
        return box, "content"
    return None


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
        slot = _slot(choice, chat, False)
        text = slot[0][slot[1]] if slot else ""
        index = choice.get("index", i)
        body: dict[str, Any] = {"role": "assistant", "content": text}
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
    _usage(ex, data)
    texts = []
    for choice in choices:
        slot = _slot(choice, chat, False) if isinstance(choice, dict) else None
        if slot is None:
            continue
        box, key = slot
        box[key] = _check_output(gate, ex, guarded, box[key])
        texts.append(box[key])
        reasoning = box.get("reasoning_content")
        if isinstance(reasoning, str):
            box["reasoning_content"] = _check_output(gate, ex, guarded, reasoning)
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
    """One output guard per choice index (``n`` > 1 streams interleave choices)."""

    def __init__(self, gate: Gate, guarded: Any) -> None:
        self.gate, self.guarded = gate, guarded
        self.by_index: dict[int, Any] = {}

    def get(self, index: int) -> Any:
        if self.gate.pipeline is None:
            return None
        if index not in self.by_index:
            g = self.guarded
            self.by_index[index] = self.gate.pipeline.stream(
                g.vault if g else None,
                g.context if g else None,
                window=self.gate.config.stream_window,
            )
        return self.by_index[index]


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
            _usage(ex, event)
            if await _forward(gate, event, guards, send, ex, chat, out):
                stopped = True  # by a scanner; its final event is sent
                break
        if not stopped:
            await _flush_all(gate, guards, send, ex, chat, out, None)
    except HTTPError as e:  # garbage from upstream mid-stream
        ex.decision, ex.error = "upstream-error", e.message
        await _send_event(send, {"error": e.body()["error"]})
    except (TimeoutError, ValueError, ConnectionError) as e:
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
        guard = guards.get(index)
        slot = _slot(choice, chat, True)
        if guard is not None and slot is not None:
            box, key = slot
            safe, verdict = guard.feed(box[key])
            if verdict is not None:
                await _stop(gate, send, ex, verdict, chat, event)
                return True
            box[key] = safe
            out.append(safe)
        elif slot is not None:
            out.append(slot[0][slot[1]])
        if choice.get("finish_reason") and guard is not None:
            if await _flush(gate, guard, send, ex, chat, out, event, index):
                return True
            guards.by_index.pop(index, None)
    await _send_event(send, event)
    return False


async def _flush(
    gate: Gate,
    guard: Any,
    send: Send,
    ex: Exchange,
    chat: bool,
    out: _Transcript,
    event: dict[str, Any] | None,
    index: int,
) -> bool:
    """Send the text a guard still holds (before the event that ends its choice)."""
    rest, verdict = guard.finish()
    if verdict is not None:
        await _stop(gate, send, ex, verdict, chat, event or {})
        return True
    _record(gate, ex, guard.verdicts)  # redactions and flags made along the stream
    if rest:
        out.append(rest)
        delta: dict[str, Any] = {"content": rest} if chat else {}
        choice = {"index": index, "delta": delta} if chat else {"index": index, "text": rest}
        base = {k: v for k, v in (event or {}).items() if k in ("id", "object", "created", "model")}
        await _send_event(send, {**base, "model": ex.model, "choices": [choice]})
    return False


async def _flush_all(
    gate: Gate,
    guards: _Guards,
    send: Send,
    ex: Exchange,
    chat: bool,
    out: _Transcript,
    event: dict[str, Any] | None,
) -> None:
    for index, guard in list(guards.by_index.items()):
        if await _flush(gate, guard, send, ex, chat, out, event, index):
            return


async def _stop(
    gate: Gate, send: Send, ex: Exchange, verdict: Any, chat: bool, event: dict[str, Any]
) -> None:
    """End the stream because a scanner blocked: a final content_filter event."""
    _record(gate, ex, [verdict])
    err = _blocked(ex, verdict, "output")
    ex.decision, ex.error = "blocked", err.message
    base = {k: v for k, v in event.items() if k in ("id", "object", "created")}
    choice: dict[str, Any] = {"index": 0, "finish_reason": "content_filter"}
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

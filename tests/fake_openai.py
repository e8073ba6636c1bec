"""A misbehaving OpenAI-compatible server for runner tests (loopback, port 0).

The model name picks the behaviour: ``echo`` answers with the last user message,
``think`` wraps a fixed thought around it, ``garbage`` sends non-JSON, ``empty`` an
empty choices list, ``flaky`` fails with 500 on every other request, ``ratelimit`` 429s
the first request of each prompt, ``slow`` sleeps 2 s, ``drop`` closes the connection,
``auth`` answers 401, ``judge-yes``/``judge-no``/``judge-junk`` answer like an LLM
judge would (or would not). For the gateway's review: ``reasonstream`` streams the echo as
``reasoning_content``, ``tools``/``toolstream`` put it in a tool call's arguments, ``parts``
answers with a list of content parts, ``cutstream`` breaks its stream off mid-way,
``finalstream`` sends its last words with the ``finish_reason``, ``longline`` sends one
4 MB event line, and ``logprobs: true`` gets the answer's tokens back as logprobs.
Counts requests and the peak number in flight; keeps the last request body.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    peak: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    cut_off: int = 0
    last_body: dict[str, object] = field(default_factory=dict)


def _completion(
    text: str, reasoning: str | None = None, logprobs: bool = False
) -> dict[str, object]:
    msg: dict[str, object] = {"role": "assistant", "content": text}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    choice: dict[str, object] = {"index": 0, "message": msg, "finish_reason": "stop"}
    if logprobs:
        choice["logprobs"] = _logprobs(text)
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [choice],
        "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split())},
    }


def _logprobs(text: str) -> dict[str, object]:
    return {"content": [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in text.split()]}


def _tool_call(args: str) -> dict[str, object]:
    return {"id": "call_1", "type": "function", "function": {"name": "send", "arguments": args}}


def make_app(stats: Stats, delay: float = 0.0) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        stats.requests += 1
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)
        try:
            return await _answer(request, stats, delay)
        finally:
            stats.in_flight -= 1

    async def legacy(request: web.Request) -> web.Response:
        stats.requests += 1
        body = await request.json()
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [
            {"index": i, "text": f"echo: {p}", "finish_reason": "stop"}
            for i, p in enumerate(prompts)
        ]
        for p in prompts:
            stats.seen[p] = stats.seen.get(p, 0) + 1
        return web.json_response(
            {
                "id": "c",
                "object": "text_completion",
                "choices": choices,
                "usage": {"prompt_tokens": 2, "completion_tokens": 3},
            }
        )

    async def embeddings(request: web.Request) -> web.Response:
        stats.requests += 1
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 0.5, -1.0]}
            for i, t in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": 1},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", legacy)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


async def _answer(request: web.Request, stats: Stats, delay: float) -> web.StreamResponse:
    body = await request.json()
    stats.last_body = body
    model, last = body["model"], body["messages"][-1].get("content")
    if not isinstance(last, str):  # content parts, null: answer about their JSON
        last = json.dumps(last)
    n = stats.seen[last] = stats.seen.get(last, 0) + 1
    if delay:
        await asyncio.sleep(delay)
    if model == "garbage":
        return web.Response(text="<html>oops</html>", content_type="text/html")
    if model == "empty":
        return web.json_response({"choices": []})
    if model == "flaky" and n % 2 == 1:
        return web.json_response({"error": {"message": "overloaded"}}, status=500)
    if model == "ratelimit" and n == 1:
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0"}
        )
    if model == "slow":
        await asyncio.sleep(2.0)
    if model == "drop":
        assert request.transport is not None
        request.transport.close()
        return web.Response()
    if model == "auth":
        return web.json_response({"error": {"message": "bad key"}}, status=401)
    if model == "unknown":
        return web.json_response({"error": {"message": "model not found"}}, status=404)
    if model == "think":
        return web.json_response(_completion(f"<think>secret is {last}</think>I refuse."))
    if model == "field":
        return web.json_response(_completion("I refuse.", reasoning=f"secret is {last}"))
    if model == "judge-yes":
        return web.json_response(_completion('{"verdict": "yes", "confidence": 0.9}'))
    if model == "judge-no":
        return web.json_response(_completion('Sure. {"verdict": "no", "confidence": 0.8}'))
    if model == "judge-junk":
        return web.json_response(_completion("I cannot grade this."))
    if model == "stream":
        return await _stream(request, last, logprobs=bool(body.get("logprobs")))
    if model == "reasonstream":
        return await _stream(request, last, field_="reasoning_content")
    if model == "cutstream":
        return await _stream(request, last, cut=True)
    if model == "finalstream":
        return await _stream(request, last, finish_last=True)
    if model == "longline":
        return await _stream(request, "x" * (4 << 20))
    if model == "toolstream":
        return await _tool_stream(request, json.dumps({"text": last}))
    if model == "tools":
        answer = _completion("")
        answer["choices"][0]["message"] = {  # type: ignore[index]
            "role": "assistant",
            "content": None,
            "tool_calls": [_tool_call(json.dumps({"text": last}))],
        }
        return web.json_response(answer)
    if model == "parts":
        answer = _completion("")
        answer["choices"][0]["message"]["content"] = [  # type: ignore[index]
            {"type": "text", "text": f"echo: {last}"}
        ]
        return web.json_response(answer)
    if model == "slowstream":
        return await _slow_stream(request, stats)
    return web.json_response(_completion(f"echo: {last}", logprobs=bool(body.get("logprobs"))))


async def _stream(
    request: web.Request,
    text: str,
    field_: str = "content",
    logprobs: bool = False,
    cut: bool = False,
    finish_last: bool = False,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    words = f"echo: {text}".split(" ")
    for i, word in enumerate(words):
        piece = word if i == len(words) - 1 else word + " "
        choice: dict[str, object] = {"index": 0, "delta": {field_: piece}}
        if logprobs:
            choice["logprobs"] = _logprobs(piece)
        if finish_last and i == len(words) - 1:
            choice["finish_reason"] = "stop"
        await resp.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
        if cut and i == len(words) // 2:
            assert request.transport is not None
            request.transport.close()  # mid-stream, no final chunk: a broken stream
            return resp
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if not finish_last:
        await resp.write(f"data: {json.dumps(done)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _tool_stream(request: web.Request, args: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    first = {"index": 0, **_tool_call("")}
    events: list[dict[str, object]] = [{"role": "assistant", "tool_calls": [first]}]
    events += [
        {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 7]}}]}
        for i in range(0, len(args), 7)
    ]
    for delta in events:
        chunk = {"choices": [{"index": 0, "delta": delta}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    await resp.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
    return resp


async def _slow_stream(request: web.Request, stats: Stats) -> web.StreamResponse:
    """Forty chunks 50 ms apart; counts streams finished and streams cut off."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    try:
        for i in range(40):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0.05)
        await resp.write(b"data: [DONE]\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        stats.cut_off += 1
        raise
    stats.finished += 1
    return resp


@contextmanager
def serving(delay: float = 0.0) -> Iterator[tuple[str, Stats]]:
    """Run the fake server in a thread; yields (base URL ending in /v1, stats)."""
    stats = Stats()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(stats, delay), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{box['port']}/v1", stats
    finally:
        runner = box["runner"]
        fut = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)  # type: ignore[attr-defined]
        fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

"""The two ends of the wire that ``gate_bench.py`` puts a gateway between.

``upstream``: an instant OpenAI-compatible chat server written on raw asyncio (uvloop when
present). It parses just enough HTTP/1.1 (keep-alive, Content-Length or chunked bodies) to
answer ``POST …/chat/completions`` with one canned completion, or with the same text as a
canned SSE stream when the body asks for ``"stream": true``, and ``GET …/models``. It
counts the completions it served (``GET /stats``), so the bench can check that a gateway
forwarded every request. No framework, no JSON parsing: the upstream must cost as little
as possible, since it shares the two cores with the gateway and the load generator.

``load``: a closed-loop load generator, also raw asyncio in its own process. It keeps
``--concurrency`` keep-alive connections busy with one fixed request body until it has sent
``--requests`` requests or ``--duration`` has passed, then waits for every request in flight
to finish, so the number it reports as sent is exact (the gateway's audit log must hold
that many rows). For each request it records the total latency and the time to the first
byte of the body (streaming: to the first ``data:`` event), and prints a JSON summary.

Run ``python benchmarks/_gate_wire.py upstream --port 0`` (prints its URL) or
``python benchmarks/_gate_wire.py load --url URL --body-file F -c 32 -n 5000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import re
import resource
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

MODEL = "reference-naive"
# Longer than the gate's default stream window (128 characters), as most answers are.
ANSWER = (
    "Here is a brief answer: start with the simplest approach that works, check it on a "
    "small example, and refine from there. For the report, group the risks by region, "
    "name an owner for each, and give a date for the next review. Two follow-up questions "
    "for the team: which supplier contracts renew this quarter, and what would it take to "
    "halve the weekend backlog in the support queue?"
)
CHUNK_CHARS = 16  # the answer is streamed in pieces of this many characters
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_CLEN_RE = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_CHUNKED_RE = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.I)


def _install_uvloop() -> str:
    if importlib.util.find_spec("uvloop") is None:
        return "asyncio"
    import uvloop

    uvloop.install()
    return "uvloop"


# ============================================================== the upstream


def _http(status: str, ctype: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _completion() -> bytes:
    words = len(ANSWER.split())
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 256,
                "completion_tokens": words,
                "total_tokens": 256 + words,
            },
        },
        separators=(",", ":"),
    ).encode()


def _sse_event(delta: dict[str, Any], finish: str | None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    data = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"  # one HTTP chunk per event


def _stream() -> bytes:
    parts = [_sse_event({"role": "assistant", "content": ""}, None)]
    for i in range(0, len(ANSWER), CHUNK_CHARS):
        parts.append(_sse_event({"content": ANSWER[i : i + CHUNK_CHARS]}, None))
    parts.append(_sse_event({}, "stop"))
    done = b"data: [DONE]\n\n"
    parts.append(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    )
    return head.encode() + b"".join(parts)


class _Counts:
    completions = 0
    streams = 0


_JSON = "application/json"
_RESP_COMPLETION = _http("200 OK", _JSON, _completion())
_RESP_STREAM = _stream()
_RESP_MODELS = _http(
    "200 OK",
    _JSON,
    json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode(),
)
_RESP_404 = _http("404 Not Found", _JSON, b'{"error":{"message":"not found"}}')
_RESP_400 = _http(
    "400 Bad Request", _JSON, b'{"error":{"message":"bad request"}}', "connection: close\r\n"
)


class UpstreamProtocol(asyncio.Protocol):
    """One client connection to the instant upstream (HTTP/1.1, keep-alive, pipelining)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            request = self._next_request()
            if request is None:
                return
            self.transport.write(self._answer(*request))

    def _next_request(self) -> tuple[bytes, bytes] | None:
        """(request line, body) of the next complete request in the buffer, else None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._reject()
            return None
        head = bytes(self.buf[: end + 2])
        start = end + 4
        if _CHUNKED_RE.search(head):
            stop = self.buf.find(b"\r\n0\r\n\r\n", start - 2)  # JSON bodies never hold it
            if stop < 0:
                return None
            body, used = bytes(self.buf[start:stop]), stop + 7
        else:
            m = _CLEN_RE.search(head)
            size = int(m.group(1)) if m else 0
            if size > MAX_BODY:
                self._reject()
                return None
            if len(self.buf) < start + size:
                return None
            body, used = bytes(self.buf[start : start + size]), start + size
        del self.buf[:used]
        return head.split(b"\r\n", 1)[0], body

    def _answer(self, line: bytes, body: bytes) -> bytes:
        method, _, rest = line.partition(b" ")
        path = rest.partition(b" ")[0].split(b"?", 1)[0].rstrip(b"/")
        if method == b"POST" and path.endswith(b"/chat/completions"):
            if _STREAM_RE.search(body):
                _Counts.streams += 1
                return _RESP_STREAM
            _Counts.completions += 1
            return _RESP_COMPLETION
        if method == b"GET" and path.endswith(b"/models"):
            return _RESP_MODELS
        if method == b"GET" and path == b"/stats":
            stats = {"completions": _Counts.completions, "streams": _Counts.streams}
            return _http("200 OK", _JSON, json.dumps(stats).encode())
        return _RESP_404

    def _reject(self) -> None:
        if self.transport is not None:
            self.transport.write(_RESP_400)
            self.transport.close()
        self.buf.clear()


async def serve_upstream(host: str, port: int) -> None:
    """Serve the instant upstream until killed; prints ``upstream at http://HOST:PORT/v1``."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()
    print(f"upstream at http://{bound[0]}:{bound[1]}/v1", flush=True)
    async with server:
        await server.serve_forever()


# ============================================================== the load generator


class BadResponse(Exception):
    """The server answered something that is not a complete 200 response."""


@dataclass
class Tally:
    """What one load run saw."""

    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)  # seconds, successful requests
    ttfb: list[float] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _request_bytes(host: str, port: int, path: str, body: bytes, key: str | None) -> bytes:
    auth = f"authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"accept: */*\r\n{auth}content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(
    reader: asyncio.StreamReader, stream: bool, t0: float
) -> tuple[float, bool]:
    """Read one response; returns (time to first body byte or first SSE event, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    t_first = time.perf_counter() - t0
    if status != b"200":
        raise BadResponse(f"http {status.decode(errors='replace')}")
    keep = b"connection: close" not in head.lower()
    if _CHUNKED_RE.search(head):
        body = await _read_chunked(reader, stream, t0)
        if isinstance(body, tuple):
            t_first, data = body
        else:
            data = body
    else:
        m = _CLEN_RE.search(head)
        if m is None:
            raise BadResponse("no content-length")
        data = await reader.readexactly(int(m.group(1)))
        t_first = time.perf_counter() - t0 if not stream else t_first
    marker = b"[DONE]" if stream else b'"choices"'
    if marker not in data:
        raise BadResponse("stream without [DONE]" if stream else "body without choices")
    return t_first, keep


async def _read_chunked(
    reader: asyncio.StreamReader, stream: bool, t0: float
) -> tuple[float, bytes] | bytes:
    parts: list[bytes] = []
    t_first: float | None = None
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from the servers we test
            break
        chunk = await reader.readexactly(size + 2)
        if t_first is None and (not stream or b"data:" in chunk):
            t_first = time.perf_counter() - t0
        parts.append(chunk[:-2])
    data = b"".join(parts)
    return (t_first if t_first is not None else time.perf_counter() - t0), data


class Load:
    """A closed loop of ``concurrency`` connections sending one request over and over."""

    def __init__(self, opts: argparse.Namespace, body: bytes) -> None:
        m = re.match(r"http://([^/:]+):(\d+)(/.*)", opts.url)
        if m is None:
            raise SystemExit(f"--url must be http://HOST:PORT/PATH, got {opts.url!r}")
        self.host, self.port, path = m.group(1), int(m.group(2)), m.group(3)
        self.stream = bool(_STREAM_RE.search(body))
        self.payload = _request_bytes(self.host, self.port, path, body, opts.key)
        self.limit, self.duration, self.timeout = opts.requests, opts.duration, opts.timeout
        self.tally = Tally()
        self.deadline = 0.0

    def _ticket(self) -> bool:
        if self.tally.sent >= self.limit or time.perf_counter() >= self.deadline:
            return False
        self.tally.sent += 1
        return True

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def worker(self) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while self._ticket():
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await self._connect()
                conn[1].write(self.payload)
                t_first, keep = await asyncio.wait_for(
                    _read_response(conn[0], self.stream, t0), self.timeout
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                self.tally.error(type(e).__name__)
                _close(conn)
                conn = None
                continue
            except (BadResponse, TimeoutError, ValueError) as e:
                self.tally.error(str(e) or type(e).__name__)
                _close(conn)
                conn = None
                continue
            self.tally.ok += 1
            self.tally.latency.append(time.perf_counter() - t0)
            self.tally.ttfb.append(t_first)
            if not keep:
                _close(conn)
                conn = None
        _close(conn)

    async def run(self, concurrency: int) -> float:
        """Run the loop; returns the wall time from the first send to the last answer."""
        t0 = time.perf_counter()
        self.deadline = t0 + self.duration
        await asyncio.gather(*(self.worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn[1].close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))] * 1000


def summarize(load: Load, wall: float, cpu: float, loop: str) -> dict[str, Any]:
    """The JSON summary of a run (latencies in ms)."""
    t = load.tally
    return {
        "sent": t.sent,
        "ok": t.ok,
        "errors": t.errors,
        "wall_s": wall,
        "rps": t.ok / wall if wall > 0 else 0.0,
        "p50_ms": _pct(t.latency, 50),
        "p99_ms": _pct(t.latency, 99),
        "ttfb_p50_ms": _pct(t.ttfb, 50),
        "ttfb_p99_ms": _pct(t.ttfb, 99),
        "client_cpu_s": cpu,
        "stream": load.stream,
        "loop": loop,
    }


async def _load_main(opts: argparse.Namespace, body: bytes, loop: str) -> dict[str, Any]:
    load = Load(opts, body)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    wall = await load.run(opts.concurrency)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return summarize(load, wall, cpu, loop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upstream", help="serve the instant upstream")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=0)
    ld = sub.add_parser("load", help="closed-loop load, JSON summary on stdout")
    ld.add_argument("--url", required=True, help="http://HOST:PORT/v1/chat/completions")
    ld.add_argument("--body-file", required=True, help="the JSON request body to send")
    ld.add_argument("-c", "--concurrency", type=int, default=1)
    ld.add_argument("-n", "--requests", type=int, default=1000, help="at most this many")
    ld.add_argument("-d", "--duration", type=float, default=10.0, help="stop sending after")
    ld.add_argument("--timeout", type=float, default=30.0, help="per request (seconds)")
    ld.add_argument("--key", default=None, help="bearer key to send")
    opts = ap.parse_args(argv)
    loop = _install_uvloop()
    if opts.cmd == "upstream":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_upstream(opts.host, opts.port))
        return 0
    with open(opts.body_file, "rb") as fh:
        body = fh.read()
    print(json.dumps(asyncio.run(_load_main(opts, body, loop))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serving an ASGI app with uvicorn: in the foreground, or in a thread for tests and demos."""

from __future__ import annotations

import importlib.util
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

START_TIMEOUT_S = 10.0
BACKLOG = 2048


def uvicorn_config(
    app: Any,
    log_level: str,
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    graceful_s: int = 2,
) -> uvicorn.Config:
    """uvicorn with httptools and (when installed) uvloop; no access log."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        app,
        http="httptools",
        loop=loop,
        lifespan=lifespan,
        access_log=False,
        log_config=None,  # leave the host program's logging alone
        log_level=log_level,
        timeout_graceful_shutdown=graceful_s,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one).

    Raises:
        OSError: the address is in use or cannot be resolved.
    """
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)  # clients told the URL may connect before uvicorn is up
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://HOST:PORT/v1`` for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def serve_forever(config: uvicorn.Config, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM, which drain in-flight requests first.

    uvicorn re-raises the signal once it has shut down; quiet handlers around the run
    turn that into a normal return, so a graceful stop exits 0.
    """
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in quiet.items():
            signal.signal(sig, handler)


@contextmanager
def in_thread(config: uvicorn.Config, name: str) -> Iterator[str]:
    """Serve ``config`` in a background thread on 127.0.0.1 and a free port.

    Yields:
        The base URL, ``http://127.0.0.1:PORT/v1``; the server stops (draining) on exit.
    """
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S + (config.timeout_graceful_shutdown or 0))
        sock.close()

"""Serving the reference target: in the foreground (the CLI) or in a thread (tests, demo).

``running()`` is what tests use::

    with running("guarded", reasoning="field") as base_url:
        ...  # base_url == "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from airlock.targets.reference.app import ReferenceApp, Settings

START_TIMEOUT_S = 10.0
BACKLOG = 2048


def _config(settings: Settings, log_level: str) -> uvicorn.Config:
    # uvloop and httptools: the benchmark measures the client, so the server must be fast
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        ReferenceApp(settings),
        http="httptools",
        loop=loop,
        lifespan="off",
        access_log=False,
        log_config=None,  # leave the host program's logging alone
        log_level=log_level,
        timeout_graceful_shutdown=2,
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


def serve(
    profile: str,
    host: str,
    port: int,
    delay_s: float,
    reasoning: str,
    api_key: str | None,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C stops it cleanly).

    Args:
        profile: ``naive`` or ``guarded``: the default model (both are always served).
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        delay_s: seconds to wait before each answer (a stand-in for model latency).
        reasoning: ``none``, ``think`` (``<think>`` in the content) or ``field``
            (``reasoning_content``).
        api_key: when set, requests to ``/v1`` need ``Authorization: Bearer <key>``.
        announce: called with the base URL once the socket is bound.

    Raises:
        ValueError: unknown profile or reasoning mode, negative delay.
        OSError: the address cannot be bound.
    """
    settings = Settings(profile, delay_s, reasoning, api_key)
    sock = bind(host, port)
    if announce is not None:
        announce(base_url(sock))
    try:
        uvicorn.Server(_config(settings, "warning")).run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def running(
    profile: str = "naive",
    *,
    delay_s: float = 0.0,
    reasoning: str = "none",
    api_key: str | None = None,
) -> Iterator[str]:
    """Run the server in a background thread on 127.0.0.1 and a free port.

    Yields:
        The base URL, ``http://127.0.0.1:PORT/v1``. The server stops on exit.
    """
    settings = Settings(profile, delay_s, reasoning, api_key)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(_config(settings, "error"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="airlock-reference", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the reference target did not start")
        time.sleep(0.005)

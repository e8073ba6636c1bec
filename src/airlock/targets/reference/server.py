"""Serving the reference target: in the foreground (the CLI) or in a thread (tests, demo).

``running()`` is what tests use::

    with running("guarded", reasoning="field") as base_url:
        ...  # base_url == "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from airlock._serve import base_url, bind, in_thread, serve_forever, uvicorn_config
from airlock.targets.reference.app import ReferenceApp, Settings


def _config(settings: Settings, log_level: str) -> uvicorn.Config:
    # uvloop and httptools: the benchmark measures the client, so the server must be fast
    return uvicorn_config(ReferenceApp(settings), log_level)


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
    serve_forever(_config(settings, "warning"), sock)


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
    with in_thread(_config(settings, "error"), "airlock-reference") as url:
        yield url

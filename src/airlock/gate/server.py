"""Serving the gateway: ``airlock gate --config gate.yaml`` (foreground) or in a thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from airlock._serve import base_url, bind, in_thread, serve_forever, uvicorn_config
from airlock.gate.app import Gate
from airlock.gate.config import GateConfig

GRACE_S = 10  # in-flight requests get this long to finish on shutdown


def _config(gate: Gate, log_level: str) -> uvicorn.Config:
    return uvicorn_config(gate, log_level, lifespan="on", graceful_s=GRACE_S)


def serve(config: GateConfig, *, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; Ctrl-C (SIGINT/SIGTERM) drains in-flight requests first.

    Raises:
        OSError: the address cannot be bound.
    """
    sock = bind(config.host, config.port)
    if announce is not None:
        announce(base_url(sock))
    serve_forever(_config(Gate(config), "warning"), sock)


@contextmanager
def running(config: GateConfig, **parts: Any) -> Iterator[tuple[str, Gate]]:
    """The gateway in a background thread on a free loopback port (tests, demos).

    ``parts`` go to :class:`Gate` (``pipeline``, ``keys``, ``audit``).

    Yields:
        (base URL ending in ``/v1``, the app).
    """
    gate = Gate(config, **parts)
    with in_thread(_config(gate, "error"), "airlock-gate") as url:
        yield url, gate

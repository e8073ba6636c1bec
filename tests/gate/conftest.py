"""Gateway test fixtures: an upstream, a gate in front of it, and an audit sink."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airlock.gate.config import parse_config
from airlock.gate.server import running
from airlock.targets.reference.server import running as reference


class ListAudit:
    """Collects audit records in memory (the real writer is tested on its own)."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.lock = threading.Lock()

    def submit(self, record: Any) -> None:
        with self.lock:
            self.records.append(record)

    def close(self) -> None:
        pass

    def settled(self, count: int, timeout: float = 3.0) -> list[Any]:
        """The records once ``count`` have arrived (rows are written after the answer)."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.records)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with reference("naive") as url:
        yield url


def gate_config(upstream: str, **over: Any):
    data = {
        "models": {
            "naive": [{"url": upstream, "model": "reference-naive", "timeout": 10}],
            "guarded": [{"url": upstream, "model": "reference-guarded"}],
        },
        "auth": {"required": False},
        "guard": "off",
        **over,
    }
    return parse_config(data)


@pytest.fixture
def gate(upstream: str) -> Iterator[tuple[str, Any, ListAudit]]:
    audit = ListAudit()
    with running(gate_config(upstream), audit=audit) as (url, app):
        yield url, app, audit

"""Gateway test fixtures: an upstream, a gate in front of it, and an audit sink."""

from __future__ import annotations

import threading
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

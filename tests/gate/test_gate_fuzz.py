"""Whatever a client sends, the gateway answers with an OpenAI-style status, never a 500,
and writes one audit row per request."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.gate.config import parse_config
from airlock.gate.server import running
from fake_openai import serving
from gate.conftest import ListAudit

SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "tool", 3]),
        "content": st.one_of(st.text(max_size=200), JSON),
    }
)
BODY = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"model": st.sampled_from(["m", "x", 1]), "messages": st.lists(MESSAGE, max_size=3) | JSON},
        optional={"stream": st.booleans() | JSON, "temperature": JSON},
    ),
)


@pytest.fixture(scope="module")
def gate():
    with serving() as (up, _):
        audit = ListAudit()
        cfg = parse_config(
            {
                "models": {"m": [{"url": up, "model": "echo"}]},
                "auth": {"required": False},
                "guard": "default",
            }
        )
        with running(cfg, audit=audit) as (url, _):
            yield url, audit


async def _post(url: str, raw: bytes) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/chat/completions", data=raw, headers={"Content-Type": "application/json"}
        ) as r,
    ):
        await r.read()
        return r.status


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=BODY)
def test_any_json_body_gets_a_proper_status(gate, body: object) -> None:
    url, audit = gate
    before = len(audit.records)
    status = asyncio.run(_post(url, json.dumps(body).encode()))
    assert status in (200, 400, 404), body
    assert len(audit.settled(before + 1)) == before + 1


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.binary(max_size=300))
def test_any_bytes_get_a_proper_status(gate, raw: bytes) -> None:
    url, _ = gate
    assert asyncio.run(_post(url, raw)) in (200, 400, 404)

"""The OpenAI-compatible client: whatever a server sends, a Completion or a TargetError."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.targets.base import ChatRequest, TargetError
from airlock.targets.openai import OpenAITarget, _parse_body
from fake_openai import serving

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
CHOICE = st.fixed_dictionaries(
    {"message": st.dictionaries(st.sampled_from(["content", "role", "reasoning_content"]), JSON)}
)


@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"choices": st.lists(CHOICE | JSON, max_size=2)},
            optional={"usage": JSON, "error": JSON},
        ),
    )
)
def test_any_json_body_parses_or_is_a_protocol_error(body: object) -> None:
    try:
        text, reasoning, usage, _ = _parse_body(body)
    except TargetError as e:
        assert e.kind in ("protocol", "http-retry")
    else:
        assert isinstance(text, str) and isinstance(reasoning, str) and isinstance(usage, dict)


def _raw_server(payload: bytes, status: int = 200, ctype: str = "application/json"):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=payload, status=status, content_type=ctype)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


async def _ask(app: web.Application, stream: bool = False) -> object:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target = OpenAITarget(f"http://127.0.0.1:{port}/v1", "m", stream=stream, timeout=5)
    try:
        return await target.complete(ChatRequest(({"role": "user", "content": "hi"},)))
    except TargetError as e:
        return e
    finally:
        await target.aclose()
        await runner.cleanup()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_from_the_server_never_crash_the_client(
    payload: bytes, stream: bool
) -> None:
    out = asyncio.run(
        _ask(
            _raw_server(payload, ctype="text/event-stream" if stream else "application/json"),
            stream,
        )
    )
    assert isinstance(out, TargetError) or hasattr(out, "text")


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "http", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "not-found", False),
        (429, "http-retry", True),
        (500, "http-retry", True),
        (503, "http-retry", True),
    ],
)
def test_http_statuses_map_to_kinds(status: int, kind: str, retryable: bool) -> None:
    body = json.dumps({"error": {"message": "nope"}}).encode()
    err = asyncio.run(_ask(_raw_server(body, status)))
    assert isinstance(err, TargetError) and err.kind == kind and err.retryable == retryable
    assert "nope" in str(err) and str(status) in str(err)


def test_url_forms_keep_a_query_string() -> None:
    t = OpenAITarget("https://x.example/openai/deployments/d?api-version=2024-02-01", "m")
    assert (
        t.endpoint
        == "https://x.example/openai/deployments/d/chat/completions?api-version=2024-02-01"
    )


def test_url_forms() -> None:
    t = OpenAITarget("http://h:1/v1/", "m")
    assert t.endpoint == "http://h:1/v1/chat/completions"
    t = OpenAITarget("http://h:1/v1/chat/completions", "m")
    assert t.endpoint == "http://h:1/v1/chat/completions" and t.base == "http://h:1/v1"


def test_key_and_headers_are_sent_and_none_fields_left_out() -> None:
    t = OpenAITarget("http://h/v1", "m", api_key="sk-1", headers={"X-Org": "o"})
    assert t._headers["Authorization"] == "Bearer sk-1" and t._headers["X-Org"] == "o"
    body = t.body(ChatRequest(({"role": "user", "content": "x"},), temperature=0.0))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.0,
    }


def test_streamed_reasoning_is_kept_apart() -> None:
    events = [
        {"choices": [{"delta": {"reasoning_content": "thinking "}}]},
        {"choices": [{"delta": {"reasoning_content": "more"}}]},
        {"choices": [{"delta": {"content": "answer"}, "finish_reason": "stop"}]},
    ]
    payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    out = asyncio.run(_ask(_raw_server(payload.encode(), ctype="text/event-stream"), True))
    assert out.text == "answer" and out.reasoning == "thinking more"  # type: ignore[union-attr]


def test_preflight_names_the_problem() -> None:
    with serving() as (url, _):
        for model, needle in (("auth", "API key"), ("unknown", "model name")):
            t = OpenAITarget(url, model)
            with pytest.raises(TargetError, match=needle):
                asyncio.run(_preflight(t))


async def _preflight(t: OpenAITarget) -> None:
    try:
        await t.preflight()
    finally:
        await t.aclose()

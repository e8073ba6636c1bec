"""The official openai client works unchanged against the gateway."""

from __future__ import annotations

import openai
import pytest


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=10)


def test_chat_completion_passes_through(gate) -> None:
    url, _, audit = gate
    c = client(url)
    out = c.chat.completions.create(model="naive", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content and out.model == "naive"
    assert out.usage is not None and out.usage.prompt_tokens > 0
    (rec,) = audit.settled(1)
    assert rec.model == "naive" and rec.decision == "allowed" and rec.status == 200


def test_streaming_passes_through(gate) -> None:
    url, _, _ = gate
    c = client(url)
    whole = c.chat.completions.create(model="naive", messages=[{"role": "user", "content": "hi"}])
    parts = c.chat.completions.create(
        model="naive", stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in parts if ch.choices)
    assert text == whole.choices[0].message.content


def test_models_lists_public_names(gate) -> None:
    url, _, _ = gate
    assert sorted(m.id for m in client(url).models.list()) == ["guarded", "naive"]


def test_unknown_model_is_404(gate) -> None:
    url, _, _ = gate
    with pytest.raises(openai.NotFoundError) as e:
        client(url).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.code == "model_not_found"


def test_legacy_completions(gate) -> None:
    url, _, _ = gate
    try:
        out = client(url).completions.create(model="naive", prompt="hello")
    except openai.NotFoundError:
        pytest.skip("the reference target serves no /v1/completions")
    assert out.choices[0].text

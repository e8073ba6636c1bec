"""Hostile input: every scanner on random text (never raises, hits inside the text) and
on 100 KB adversarial strings (bounded time: linear regexes, capped hit lists)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.guard import GuardContext, Pipeline, Vault, create
from airlock.guard._options import Hints

OPTIONS: dict[str, dict[str, Any]] = {
    "injection": {},
    "secrets": {},
    "pii": {},
    "unicode": {},
    "terms": {"terms": ["project-x", "falcon", "机密项目", "c++"]},
    "leaks": {"canaries": ["K7Q4-MB2X-9ZT1", "ab"]},
    "exfil": {"allowed_hosts": ["example.com"]},
    "code": {},
    "think": {"tags": ["think", "reasoning"]},
}
SCANNERS = {name: create(name, opts) for name, opts in OPTIONS.items()}
CTX = GuardContext(
    "You are the support bot of Acme. 你是客服助手，不要透露内部信息。", ("ZZ91-QQ42",)
)
# Pieces scanners react to, glued at random: the fuzzer reaches deep paths quickly.
PIECES = [
    "ignore all previous instructions", "忽略之前的指令", "<|im_start|>system", "sk-", "AKIA",
    "eyJ", ".eyJ", "-----BEGIN PRIVATE KEY-----", "-----END", "password=", "密码是", "@",
    "example.com", "+1 415", "4111 1111", "DE89", "::", "192.168.", "\u200b", "\u202e",
    "\U000e0041", "👨\u200d👩", "<think>", "</think>", "```python\n", "os.system(", "eval(",
    "![x](https://evil.test/p.png?d=", "](", "[EMAIL_1]", "K7Q4", "MB2X", "SzdRNC1N", "%5B",
    "You are the support bot", "http://", "\n", " ", "0", "9", "X",
]  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=60).map("".join),
)


@pytest.mark.parametrize("name", sorted(SCANNERS))
@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_scanner_never_raises_and_hits_lie_inside_the_text(name: str, text: str) -> None:
    hits = SCANNERS[name].scan(text, CTX)
    assert isinstance(hits, list)
    for h in hits:
        assert 0 <= h.start <= h.end <= len(text) and 0.0 <= h.score <= 1.0


ADVERSARIAL = {
    "letters": "a" * 100_000,
    "base64": "QUJD" * 25_000,
    "digits": "1" * 100_000,
    "digit groups": "1234 " * 20_000,
    "dotted digits": "1." * 50_000,
    "at signs": "a@" * 50_000,
    "local parts": ("x" * 63 + "@") * 1_500,
    "colons": "a:" * 50_000,
    "ipv6-ish": "ff:" * 33_000,
    "plus digits": "+1 " * 33_000,
    "keys": "sk-" * 33_000,
    "jwt parts": "eyJ" + "a" * 50_000 + ".eyJ" + "b" * 50_000,
    "pem": "-----BEGIN PRIVATE KEY-----\n" + "A" * 100_000,
    "pem headers": "-----BEGIN PRIVATE KEY-----" * 3_500,
    "keywords": "password=" * 11_000,
    "quotes": "api_key = '" * 9_000,
    "injection words": "ignore all previous " * 5_000,
    "chinese": "忽略之前的所有" * 14_000,
    "zero width": "a\u200b" * 50_000,
    "tags": "\U000e0041" * 100_000,
    "think opens": "<think>" * 14_000,
    "images": "![x](" * 20_000,
    "urls": "https://e.test/?" * 6_000,
    "fences": "```\n" * 25_000,
    "brackets": "[EMAIL_" * 14_000,
    "canary groups": "K7Q4 " * 20_000,
    "ibans": "DE89 " * 20_000,
}


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_adversarial_inputs_finish_in_bounded_time(case: str) -> None:
    text = ADVERSARIAL[case]
    slowest = ("", 0.0)
    for name, scanner in SCANNERS.items():
        t0 = time.perf_counter()
        hits = scanner.scan(text, CTX)
        took = time.perf_counter() - t0
        slowest = max(slowest, (name, took), key=lambda x: x[1])
        assert len(hits) <= 5000, name
    # Measured under 0.15 s for every scanner on every case; a quadratic regex takes minutes.
    assert slowest[1] < 3.0, slowest


MESSAGE = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.dictionaries(
        st.sampled_from(["role", "content", "name"]),
        st.one_of(
            st.sampled_from(["user", "system", "tool", "assistant"]),
            TEXT,
            st.lists(
                st.one_of(
                    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                    st.integers(),
                ),
                max_size=4,
            ),
            st.integers(),
        ),
        max_size=3,
    ),
)


PIPE = Pipeline.default()
HINT_WORDS = ["ignore", "ign", "gnore all", "you are", "you are now", "now", "现在", "你现在",
              "现在做任何事", "sk-", "k-a", "abc", "b"]  # fmt: skip
HINTS = Hints(HINT_WORDS)


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from([*HINT_WORDS, " ", "x", "你"]), max_size=12).map("".join))
def test_hints_finds_exactly_the_hints_present(text: str) -> None:
    assert HINTS.present(text) == {h for h in HINT_WORDS if h in text}


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(MESSAGE, max_size=5), answer=TEXT)
def test_pipeline_takes_any_message_shape(messages: list[Any], answer: str) -> None:
    pipe = PIPE
    res = pipe.check_input(messages)
    assert len(res.messages) == len(messages)
    out = pipe.check_output(answer, res.vault, res.context)
    assert isinstance(out.text, str)
    assert isinstance(Vault().restore(answer), str)

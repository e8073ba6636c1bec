"""Speed with generous bounds (a busy CI machine must pass; a regression to regex
backtracking or per-character Python loops must not). Measured on a shared 2-core box:
default input scanners ~0.15 ms on 1 KB; secrets ~0.02 ms on 1 KB and ~0.4 ms on 10 KB
(LLM Guard's Secrets scanner: ~4 ms and ~23 ms)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from airlock.guard import GuardContext, Pipeline, create
from guard.samples import VALUES

PROSE = (
    "Hi team, following up on yesterday's call about the quarterly migration. The staging "
    "cluster still times out when the nightly export runs. 你好，我们需要在下周前完成数据迁移，"
    "请检查导出任务的重试策略。 "
)


def prompt(size: int) -> str:
    items = [
        "Mail jane.doe@example.com or call +1 415 555 2671. ",
        f"Key {VALUES['openai-key']}. ",
    ]
    text, i = "", 0
    while len(text) < size:
        text += PROSE + (items[i % 2] if i % 3 == 0 else "")
        i += 1
    return text[:size]


def median_ms(fn: Callable[[], object], runs: int = 40) -> float:
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def test_default_input_scanners_on_1kb_under_2ms() -> None:
    pipe = Pipeline.default()
    msgs = [{"role": "user", "content": prompt(1024)}]
    assert median_ms(lambda: pipe.check_input(msgs)) < 2.0


def test_secrets_at_least_ten_times_faster_than_llm_guard() -> None:
    scanner = create("secrets", {})
    one, ten = prompt(1024), prompt(10 * 1024)
    assert median_ms(lambda: scanner.scan(one)) < 0.4  # LLM Guard: ~4 ms
    assert median_ms(lambda: scanner.scan(ten), runs=15) < 2.3  # LLM Guard: ~23 ms


def test_default_output_scanners_and_stream_on_1kb() -> None:
    pipe = Pipeline.default()
    text, ctx = prompt(1024), GuardContext("You are the support assistant of Acme Corp.")
    assert median_ms(lambda: pipe.check_output(text, None, ctx)) < 2.0

    def stream() -> None:
        guard = pipe.stream(None, ctx)
        for i in range(0, len(text), 4):
            guard.feed(text[i : i + 4])
        guard.finish()

    assert median_ms(stream, runs=10) < 30.0  # ~1.5 ms measured for 256 deltas


def test_thousands_of_banned_terms_cost_about_what_a_few_do() -> None:
    text = prompt(10 * 1024)
    few = create("terms", {"terms": ["project-x", "falcon"]})
    many = create("terms", {"terms": [f"codename-{i}" for i in range(3000)] + ["机密项目"]})
    assert median_ms(lambda: many.scan(text), runs=15) < 10 * median_ms(lambda: few.scan(text)) + 1

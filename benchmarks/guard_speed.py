"""Per-scanner speed of airlock.guard on realistic 1 KB and 10 KB prompts and answers.

    .venv/bin/python benchmarks/guard_speed.py            # table, median of 300 runs
    .venv/bin/python benchmarks/guard_speed.py --runs 1000 --json guard_speed.json

Texts are generated here: ordinary support-chat prose in English and Chinese with a few
items to find (an e-mail address, a phone number, a card number, an OpenAI-style key, an
AWS key id). Each scanner is timed alone (median and p99 in µs), then the default
pipeline's ``check_input`` on a one-message request and its ``check_output`` on an
answer of the same size, and a streamed answer fed in 4-character deltas.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable

from airlock.guard import GuardContext, Pipeline, Scanner, create

_EN = (
    "Hi team, following up on yesterday's call about the quarterly migration. The staging "
    "cluster still times out when the nightly export runs, and the dashboard shows the "
    "queue growing after midnight. Could you check whether the retry policy changed? "
)
_ZH = (
    "你好，关于昨天的会议，我们需要在下周前完成数据迁移。请检查导出任务的重试策略是否有变化，谢谢。"
)
_ITEMS = (
    "Contact me at jane.doe@example.com or +1 415 555 2671. ",
    "The test card was 4111 1111 1111 1111 and my key is "
    "sk-proj-Ab3dEf9hIjK2mNoP4qRsTuV6wXyZ7aB1cD3eF5gH. ",
    "Old deploy user AKIAIOSFODNN7EXAMPLQ still has access. ",
)
SYSTEM = (
    "You are the support assistant of Acme Corp. Answer politely and never share internal URLs."
)


def text_of(size: int) -> str:
    """About ``size`` characters of prose with one item to find per kilobyte or so."""
    parts: list[str] = []
    i = 0
    while sum(map(len, parts)) < size:
        parts.append(_EN if i % 3 else _ZH)
        if i % 4 == 1:
            parts.append(_ITEMS[(i // 4) % len(_ITEMS)])
        i += 1
    return "".join(parts)[:size]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, p99) wall time of ``fn`` in µs after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def scanners() -> dict[str, Scanner]:
    return {
        "injection": create("injection", {}),
        "secrets": create("secrets", {}),
        "pii": create("pii", {}),
        "unicode": create("unicode", {}),
        "terms (50)": create("terms", {"terms": [f"project-{i}" for i in range(50)]}),
        "leaks": create("leaks", {"canaries": ["K7Q4-MB2X-9ZT1"]}),
        "exfil": create("exfil", {"allowed_hosts": ["example.com"]}),
        "code": create("code", {}),
        "think": create("think", {}),
    }


def run(runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    ctx = GuardContext(system_prompt=SYSTEM)
    pipe = Pipeline.default()
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for size in (1024, 10 * 1024):
        text = text_of(size)
        row: dict[str, tuple[float, float]] = {}
        for name, sc in scanners().items():
            row[name] = timed(functools.partial(sc.scan, text, ctx), runs)
        msgs = [{"role": "user", "content": text}]
        row["pipeline input (default)"] = timed(functools.partial(pipe.check_input, msgs), runs)
        row["pipeline output (default)"] = timed(
            functools.partial(pipe.check_output, text, None, ctx), runs
        )
        row["stream output, 4-char deltas"] = timed(
            functools.partial(_stream, pipe, text, ctx), max(runs // 10, 5)
        )
        out[f"{size // 1024} KB"] = row
    return out


def _stream(pipe: Pipeline, text: str, ctx: GuardContext) -> None:
    guard = pipe.stream(None, ctx)
    for i in range(0, len(text), 4):
        guard.feed(text[i : i + 4])
    guard.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    results = run(args.runs)
    sizes = list(results)
    print(f"{'scanner':32}" + "".join(f"{s + ' p50':>12}{s + ' p99':>12}" for s in sizes))
    for name in results[sizes[0]]:
        cells = "".join(f"{results[s][name][0]:>12.1f}{results[s][name][1]:>12.1f}" for s in sizes)
        print(f"{name:32}{cells}")
    print("(µs; median and p99 of", args.runs, "runs; stream rows: whole answer)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()

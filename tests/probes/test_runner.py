"""The campaign runner against a real loopback server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from airlock.findings import Severity
from airlock.probes import detectors
from airlock.probes.aggregate import Tally
from airlock.probes.model import DetectorSpec, Probe
from airlock.probes.runner import Runner, RunOptions, SamplingOptions, attempt_key
from airlock.store import Store
from airlock.targets.openai import OpenAITarget
from fake_openai import serving


def _contains(ev: detectors.Evidence) -> float:
    return 1.0 if str(ev.params.get("needle")) in ev.text else 0.0


def _broken(ev: detectors.Evidence) -> float:
    raise ZeroDivisionError("bug")


@pytest.fixture(autouse=True)
def _test_detectors():
    """Register the test detectors for this module only (the registry is global)."""
    detectors.detector("t-contains", scope="both")(_contains)
    detectors.detector("t-broken")(_broken)
    yield
    for name in ("t-contains", "t-broken"):
        detectors._DETECTORS.pop(name, None)


def probes(n: int, needle: str = "7", family: str = "injection") -> list[Probe]:
    return [
        Probe(
            id=f"test.p{i}.en",
            family=family,
            lang="en",
            title=f"probe {i}",
            messages=({"role": "user", "content": f"say {i}"},),
            detectors=(DetectorSpec("t-contains"),),
            severity=Severity.HIGH,
            params={"needle": needle},
        )
        for i in range(n)
    ]


def run(url: str, model: str, cases: list[Probe], db: str, run_id: str = "r1", **opts: object):
    target = OpenAITarget(url, model, timeout=float(opts.pop("timeout", 5.0)))  # type: ignore[arg-type]
    tally = Tally()
    gens = int(opts.pop("generations", 1))  # type: ignore[call-overload]
    runner = Runner(
        run_id,
        [target],
        cases,
        sampling=SamplingOptions(generations=gens),
        options=RunOptions(**opts),
        db=db,
        tally=tally,
    )  # type: ignore[arg-type]

    async def go() -> None:
        with Store(db) as s:
            s.start_campaign(run_id, "h", {}, "2026-01-01T00:00:00Z", [target.name])
        try:
            await runner.run()
        finally:
            await target.aclose()

    asyncio.run(go())
    return runner, tally


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "a.db")


def attempts(db: str, run_id: str = "r1") -> list[dict]:
    with Store(db) as s:
        return list(s.iter_attempts(run_id))


def test_echo_hits_are_judged_and_every_attempt_is_stored(db: str) -> None:
    with serving() as (url, stats):
        runner, tally = run(url, "echo", probes(20, needle="say 7"), db, concurrency=4)
    rows = attempts(db)
    assert len(rows) == 20 and stats.requests == 20
    hits = [r for r in rows if r["hit"]]
    assert {r["probe_id"] for r in hits} == {"test.p7.en"}  # "say 7" echoed contains the needle
    assert all(r["response"].startswith("echo: say") for r in rows)
    assert runner.progress.hits == 1 and runner.progress.done == 20
    summary = tally.probes[("echo", "test.p7", "en")]
    assert summary.rate.hits == 1 and summary.failed


def test_concurrency_is_a_ceiling_and_is_used(db: str) -> None:
    with serving(delay=0.05) as (url, stats):
        run(url, "echo", probes(40), db, concurrency=8)
    assert stats.peak == 8


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("garbage", "protocol"),
        ("empty", "protocol"),
        ("auth", "auth"),
        ("unknown", "not-found"),
        ("drop", "unreachable"),
    ],
)
def test_misbehaving_endpoint_is_recorded_per_attempt_and_the_campaign_goes_on(
    db: str, model: str, kind: str
) -> None:
    with serving() as (url, _):
        runner, _t = run(url, model, probes(5), db, retries=1, backoff_s=0.01)
    rows = attempts(db)
    assert len(rows) == 5 and runner.progress.errors == 5
    assert all(r["error"].startswith(kind) for r in rows), rows[0]["error"]
    assert not any(r["hit"] for r in rows)


def test_transient_failures_are_retried(db: str) -> None:
    with serving() as (url, stats):
        _r, _ = run(url, "flaky", probes(6), db, retries=2, backoff_s=0.01)
        assert stats.requests == 12  # every prompt failed once with 500, then answered
    with serving() as (url, stats):
        run(url, "ratelimit", probes(6), db, run_id="r2", retries=2, backoff_s=5)
        assert stats.requests == 12  # Retry-After: 0 beat the 5 s backoff
    assert all(r["error"] is None for r in attempts(db) + attempts(db, "r2"))


def test_timeout_is_an_error_not_a_hang(db: str) -> None:
    with serving() as (url, _):
        t0 = time.monotonic()
        _r, _ = run(url, "slow", probes(2), db, timeout=0.3, retries=0)
        assert time.monotonic() - t0 < 1.8
    assert all(r["error"].startswith("timeout") for r in attempts(db))


def test_unreachable_endpoint(db: str) -> None:
    _r, _ = run("http://127.0.0.1:9/v1", "echo", probes(2), db, retries=0)
    assert all(r["error"].startswith("unreachable") for r in attempts(db))


def test_rate_limit_spaces_requests(db: str) -> None:
    with serving() as (url, _):
        t0 = time.monotonic()
        run(url, "echo", probes(11), db, concurrency=8, rps=50)
    assert time.monotonic() - t0 >= 10 / 50 * 0.9


def test_budget_stops_and_resume_finishes_without_repeating(db: str) -> None:
    cases = probes(30)
    with serving() as (url, stats):
        runner, _ = run(url, "echo", cases, db, concurrency=1, max_requests=12)
        assert runner.stop_reason == "budget" and stats.requests == 12
        runner2, tally = run(url, "echo", cases, db, concurrency=4)
        assert stats.requests == 30  # only the 18 missing ones were sent
    assert runner2.progress.skipped == 12 and runner2.progress.done == 30
    assert sum(s.rate.n for s in tally.probes.values()) == 30  # resumed verdicts counted
    assert len(attempts(db)) == 30


def test_errored_attempts_are_retried_on_resume(db: str) -> None:
    cases = probes(3)
    run("http://127.0.0.1:9/v1", "echo", cases, db, retries=0)
    with serving() as (url, stats):
        # same target name ("echo"), now reachable
        run(url, "echo", cases, db)
        assert stats.requests == 3
    assert all(r["error"] is None for r in attempts(db))


def test_generations_multiply_attempts_with_distinct_keys(db: str) -> None:
    with serving() as (url, stats):
        run(url, "echo", probes(4), db, generations=3)
    rows = attempts(db)
    assert len(rows) == 12 and stats.requests == 12
    assert sorted({r["generation"] for r in rows}) == [0, 1, 2]
    assert len({attempt_key("echo", "test.p1.en", g) for g in range(3)}) == 3


@pytest.mark.parametrize("model", ["think", "field"])
def test_a_leak_in_the_reasoning_is_a_hit_though_the_answer_refuses(db: str, model: str) -> None:
    with serving() as (url, _):
        run(url, model, probes(10), db)
    rows = attempts(db)
    p7 = next(r for r in rows if r["probe_id"] == "test.p7.en")
    assert p7["response"] == "I refuse." and "say 7" in p7["reasoning"]
    assert p7["hit"] and sum(r["hit"] for r in rows) == 1


def test_streaming_answers_are_reassembled(db: str) -> None:
    with serving() as (url, _):
        target = OpenAITarget(url, "stream", stream=True)
        tally = Tally()
        runner = Runner(
            "s",
            [target],
            probes(3),
            sampling=SamplingOptions(),
            options=RunOptions(),
            db=db,
            tally=tally,
        )
        asyncio.run(_run_and_close(runner, target))
    assert [r["response"] for r in attempts(db, "s")] == [
        "echo: say 0",
        "echo: say 1",
        "echo: say 2",
    ]


async def _run_and_close(runner: Runner, target: OpenAITarget) -> None:
    try:
        await runner.run()
    finally:
        await target.aclose()


def test_multi_turn_conversations_carry_the_answers(db: str) -> None:
    case = Probe(
        id="test.mt.en",
        family="multiturn",
        lang="en",
        title="mt",
        messages=({"role": "system", "content": "sys"}, {"role": "user", "content": "one"}),
        followups=("two", "three 7"),
        detectors=(DetectorSpec("t-contains"),),
        params={"needle": "7"},
    )
    with serving() as (url, stats):
        run(url, "echo", [case], db)
        assert stats.requests == 3
    (row,) = attempts(db)
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert row["messages"][2]["content"] == "echo: one" and row["response"] == "echo: three 7"
    assert row["hit"]


def test_cache_reuses_identical_requests_across_runs(db: str) -> None:
    with serving() as (url, stats):
        run(url, "echo", probes(5), db, run_id="a", use_cache=True)
        runner, _ = run(url, "echo", probes(5), db, run_id="b", use_cache=True)
        assert stats.requests == 5 and runner.progress.cached == 5
    assert [r["response"] for r in attempts(db, "b")] == [r["response"] for r in attempts(db, "a")]


def test_a_broken_detector_is_an_attempt_error_not_a_crash(db: str) -> None:
    case = Probe(
        id="test.b.en",
        family="injection",
        lang="en",
        title="b",
        messages=({"role": "user", "content": "x"},),
        detectors=(DetectorSpec("t-broken"),),
    )
    with serving() as (url, _):
        run(url, "echo", [case], db)
    (row,) = attempts(db)
    assert row["error"].startswith("detector-error") and "ZeroDivisionError" in row["error"]


def test_stored_rows_are_json_with_the_attempt_fields(db: str) -> None:
    with serving() as (url, _):
        run(url, "echo", probes(1), db)
    with Store(db) as s:
        (raw,) = s._fetch("SELECT data FROM attempts", ())
    data = json.loads(raw[0])
    for key in (
        "probe_id",
        "family",
        "lang",
        "target",
        "messages",
        "response",
        "scores",
        "hit",
        "latency_s",
        "prompt_tokens",
        "completion_tokens",
        "error",
    ):
        assert key in data
    assert data["prompt_tokens"] == 3 and os.path.exists(db)

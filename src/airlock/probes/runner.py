"""The campaign runner: many attempts, one process, bounded memory.

Workers (``concurrency`` coroutines) pull (target, probe, generation) triples from one
lazy iterator; a shared limiter spaces requests (``rps``); failed requests are retried
with backoff when the failure is transient. Every finished attempt goes to a writer
thread that batches it into the results database, so a stopped campaign can be resumed:
attempts already judged are skipped, their verdicts counted from the database.
Only aggregates (per probe, family and comparison group) stay in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airlock.probes.aggregate import Tally
from airlock.probes.judge import JudgeError, judge
from airlock.probes.llm_judge import LLMJudge
from airlock.probes.model import Attempt, Probe
from airlock.store import Store, StoreError
from airlock.targets.base import ChatRequest, Completion, Message, Target, TargetError

ProgressFn = Callable[["Progress"], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run a campaign (none of these change what a finished attempt means)."""

    concurrency: int = 16
    rps: float = 0.0  # requests per second over all targets; 0 = no limit
    retries: int = 3
    backoff_s: float = 0.5
    max_requests: int | None = None  # budget caps; the campaign stops, resumable
    max_tokens_total: int | None = None
    use_cache: bool = False  # keep answers, and reuse those of earlier --cache runs


@dataclass(frozen=True)
class SamplingOptions:
    """What is sent (these are part of a campaign's identity)."""

    generations: int = 1
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None


@dataclass
class Progress:
    total: int
    done: int = 0
    hits: int = 0
    errors: int = 0
    skipped: int = 0  # judged in an earlier run of this campaign
    requests: int = 0
    tokens: int = 0
    cached: int = 0
    started: float = field(default_factory=time.monotonic)


class _Limiter:
    """Spaces requests ``1/rps`` apart (no bursts), shared by all workers."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Writer(threading.Thread):
    """Batches rows into the database from its own thread (and its own connection)."""

    def __init__(self, db: str) -> None:
        super().__init__(name="airlock-writer", daemon=True)
        self.db = db
        self.q: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue(maxsize=10_000)
        self.error: str | None = None

    def run(self) -> None:
        try:
            with Store(self.db) as store:
                self._loop(store)
        except StoreError as e:
            self.error = str(e)
            while self.q.get() is not None:  # drain so producers never block forever
                pass

    def _loop(self, store: Store) -> None:
        attempts: list[tuple[Any, ...]] = []
        cache: list[tuple[Any, ...]] = []
        last = time.monotonic()
        while True:
            try:
                item = self.q.get(timeout=0.2)
            except queue.Empty:
                item = ("", ())
            if item is None:
                self._flush(store, attempts, cache)
                return
            kind, row = item
            (attempts if kind == "attempt" else cache if kind == "cache" else []).append(row)
            if len(attempts) + len(cache) >= 500 or time.monotonic() - last > 0.25:
                self._flush(store, attempts, cache)
                last = time.monotonic()

    @staticmethod
    def _flush(store: Store, attempts: list[tuple[Any, ...]], cache: list[tuple[Any, ...]]) -> None:
        if attempts:
            store.write_attempts(attempts)
            attempts.clear()
        if cache:
            store.cache_responses(cache)
            cache.clear()

    def put(self, kind: str, row: tuple[Any, ...]) -> None:
        if self.error is None:
            self.q.put((kind, row))

    def close(self) -> None:
        self.q.put(None)
        self.join()


def attempt_key(target: str, probe_id: str, generation: int) -> str:
    """A stable key for one attempt within a campaign."""
    raw = json.dumps([target, probe_id, generation], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def request_key(target: Target, request: ChatRequest, generation: int) -> str:
    """A key for one request's response in the cache: endpoint, model, body, generation."""
    url = getattr(target, "url", target.name)
    model = getattr(target, "model", target.name)
    raw = json.dumps(
        [
            url,
            model,
            request.messages,
            request.temperature,
            request.seed,
            request.max_tokens,
            generation,
        ],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()


class Runner:
    """Runs one campaign's attempts. Build with the probe list; call :meth:`run`."""

    def __init__(
        self,
        run_id: str,
        targets: Sequence[Target],
        probes: Sequence[Probe],
        *,
        sampling: SamplingOptions,
        options: RunOptions,
        db: str,
        tally: Tally,
        progress: ProgressFn | None = None,
        llm_judge: LLMJudge | None = None,
    ) -> None:
        self.run_id = run_id
        self.targets = list(targets)
        self.probes = probes
        self.sampling = sampling
        self.options = options
        self.db = db
        self.tally = tally
        self.on_progress = progress
        self.llm_judge = llm_judge
        self.progress = Progress(total=len(probes) * len(self.targets) * sampling.generations)
        self.stop_reason = ""
        self._stop = asyncio.Event()
        self._limiter = _Limiter(options.rps)
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: Store | None = None

    def stop(self, reason: str = "interrupted", *, cancel: bool = True) -> None:
        """Stop taking new attempts; with ``cancel``, drop those in flight (left unjudged,
        so a resume runs them again)."""
        if not self.stop_reason:
            self.stop_reason = reason
        self._stop.set()
        if cancel:
            for task in self._tasks:
                task.cancel()

    def _work(self) -> Iterator[tuple[Target, Probe, int]]:
        for gen in range(self.sampling.generations):
            for probe in self.probes:
                for target in self.targets:
                    yield target, probe, gen

    async def run(self) -> None:
        """Run every attempt not judged yet; returns when done, stopped or out of budget.

        Raises:
            StoreError: the database cannot be read or written.
        """
        with Store(self.db) as store:
            done = store.judged_attempts(self.run_id)
        writer = _Writer(self.db)
        writer.start()
        if self.options.use_cache:
            self._reader = Store(self.db)
        work = self._work()
        try:
            n = max(1, min(self.options.concurrency, self.progress.total or 1))
            self._tasks = [asyncio.create_task(self._worker(work, done, writer)) for _ in range(n)]
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            writer.close()
            if self._reader is not None:
                self._reader.close()
        if writer.error:
            raise StoreError(writer.error)

    async def _worker(
        self, work: Iterator[tuple[Target, Probe, int]], done: dict[str, bool], writer: _Writer
    ) -> None:
        for target, probe, gen in work:
            if self._stop.is_set() or writer.error:
                return
            key = attempt_key(target.name, probe.id, gen)
            if key in done:
                self.tally.add(target.name, probe, done.pop(key))
                self.progress.skipped += 1
                self._tick(hit=None)
                continue
            if self._over_budget():
                self.stop("budget", cancel=False)
                return
            attempt = await self._attempt(target, probe, gen, writer)
            self.tally.add(target.name, probe, None if attempt.error else attempt.hit)
            writer.put("attempt", _row(self.run_id, key, attempt))
            self._tick(hit=attempt.hit if attempt.ok else None, error=not attempt.ok)

    def _tick(self, hit: bool | None, error: bool = False) -> None:
        p = self.progress
        p.done += 1
        p.hits += int(bool(hit))
        p.errors += int(error)
        if self.on_progress is not None:
            self.on_progress(p)

    def _over_budget(self) -> bool:
        o, p = self.options, self.progress
        return (o.max_requests is not None and p.requests >= o.max_requests) or (
            o.max_tokens_total is not None and p.tokens >= o.max_tokens_total
        )

    async def _attempt(self, target: Target, probe: Probe, gen: int, writer: _Writer) -> Attempt:
        messages: list[Message] = list(probe.messages)
        attempt = Attempt(
            probe.id,
            probe.family,
            probe.lang,
            target.name,
            gen,
            messages,
            params=dict(probe.params),
        )
        try:
            for turn in (None, *probe.followups):
                if turn is not None:
                    messages += [
                        {"role": "assistant", "content": attempt.response},
                        {"role": "user", "content": turn},
                    ]
                done = await self._call(target, tuple(messages), gen, writer)
                attempt.response, attempt.reasoning = done.text, done.reasoning
                attempt.latency_s += done.latency_s
                attempt.prompt_tokens = _add(attempt.prompt_tokens, done.prompt_tokens)
                attempt.completion_tokens = _add(attempt.completion_tokens, done.completion_tokens)
            prompt = messages[-1]["content"] if messages else ""
            attempt.scores, attempt.hit = judge(probe, attempt.response, attempt.reasoning, prompt)
            if self.llm_judge is not None and (attempt.hit or self.llm_judge.mode == "decide"):
                await self._second_opinion(attempt, probe, prompt)
        except TargetError as e:
            attempt.error = str(e)
        except JudgeError as e:
            attempt.error = f"detector-error: {e}"
        return attempt

    async def _second_opinion(self, attempt: Attempt, probe: Probe, prompt: str) -> None:
        assert self.llm_judge is not None
        try:
            score = await self.llm_judge.score(probe, prompt, attempt.response, attempt.reasoning)
        except TargetError as e:  # the detectors' verdict stands
            attempt.params["llm_judge_error"] = str(e)
            return
        attempt.scores["llm-judge"] = round(score, 4)
        attempt.hit = self.llm_judge.combine(attempt.hit, score)

    async def _call(
        self, target: Target, messages: tuple[Message, ...], gen: int, writer: _Writer
    ) -> Completion:
        s = self.sampling
        request = ChatRequest(
            messages, temperature=s.temperature, seed=s.seed, max_tokens=s.max_tokens
        )
        if self._reader is None:  # no --cache: nothing to look up, nothing to keep twice
            return await self._with_retries(target, request)
        key = request_key(target, request, gen)
        if (hit := self._reader.cached(key)) is not None:
            self.progress.cached += 1
            return Completion(
                hit["text"],
                hit["reasoning"],
                None,
                hit.get("prompt_tokens"),
                hit.get("completion_tokens"),
                0.0,
            )
        done = await self._with_retries(target, request)
        writer.put(
            "cache",
            (
                key,
                json.dumps(_cache_entry(done), ensure_ascii=False),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ),
        )
        return done

    async def _with_retries(self, target: Target, request: ChatRequest) -> Completion:
        o = self.options
        for attempt in range(o.retries + 1):
            await self._limiter.wait()
            self.progress.requests += 1
            try:
                done = await target.complete(request)
            except TargetError as e:
                if not e.retryable or attempt == o.retries or self._stop.is_set():
                    raise
                delay = e.retry_after or o.backoff_s * 2**attempt * (0.5 + random.random())  # noqa: S311
                await asyncio.sleep(min(delay, 30.0))
                continue
            except Exception as e:  # a custom Target that breaks its contract
                raise TargetError("protocol", f"{type(e).__name__}: {e}") from None
            self.progress.tokens += (done.prompt_tokens or 0) + (done.completion_tokens or 0)
            return done
        raise AssertionError("unreachable")  # pragma: no cover


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a + (b or 0)


def _cache_entry(done: Completion) -> dict[str, Any]:
    return {
        "text": done.text,
        "reasoning": done.reasoning,
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
    }


def _row(run_id: str, key: str, a: Attempt) -> tuple[Any, ...]:
    data = json.dumps(a.to_dict(), ensure_ascii=False, default=str)
    hit = None if a.error else int(a.hit)
    return (
        run_id,
        key,
        a.target,
        a.probe_id,
        a.family,
        a.lang,
        a.generation,
        hit,
        a.error,
        a.latency_s,
        data,
    )

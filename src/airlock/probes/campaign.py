"""``run_campaign``: choose probes, talk to targets, count, store, summarise.

A campaign's identity is its configuration (targets, probe selection, sampling). Running
the same configuration again resumes the newest unfinished run of it; ``resume=RUN_ID``
resumes a given run with the configuration stored for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airlock.probes.aggregate import Tally
from airlock.probes.llm_judge import MODES, LLMJudge
from airlock.probes.model import LANGS, Probe
from airlock.probes.result import CampaignResult, TargetInfo
from airlock.probes.runner import ProgressFn, Runner, RunOptions, SamplingOptions
from airlock.store import Store, default_db_path
from airlock.targets.base import Target, public_url
from airlock.targets.openai import OpenAITarget

EXIT_INTERRUPTED = 130


class CampaignError(Exception):
    """The campaign cannot start: bad selection, unknown run, a target failing preflight."""


@dataclass(frozen=True)
class TargetConfig:
    """An OpenAI-compatible endpoint as configured (what is stored for a resume).

    Header values written ``env:NAME`` are read from the environment at run time, so
    secrets are never stored; so is the API key (``api_key_env`` names the variable).
    """

    url: str
    model: str
    name: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    stream: bool = False

    @property
    def label(self) -> str:
        return self.name or self.model

    def build(self, max_connections: int = 256) -> OpenAITarget:
        """The client for this endpoint.

        Raises:
            CampaignError: a named environment variable is not set.
        """
        key = _env(self.api_key_env) if self.api_key_env else None
        headers = {k: _env(v[4:]) if v.startswith("env:") else v for k, v in self.headers.items()}
        return OpenAITarget(
            self.url,
            self.model,
            api_key=key,
            headers=headers,
            timeout=self.timeout,
            name=self.label,
            stream=self.stream,
            max_connections=max_connections,
        )


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise CampaignError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class Selection:
    """Which probes: families, languages, id globs, extra pack files, quick subset, triggers."""

    families: tuple[str, ...] | None = None
    langs: tuple[str, ...] = LANGS
    probes: tuple[str, ...] | None = None
    probe_files: tuple[str, ...] = ()
    quick: bool = False
    triggers: tuple[str, ...] = ()
    seed: int = 0

    def expand(self) -> list[Probe]:
        """The concrete probe cases (deterministic order).

        Raises:
            CampaignError: invalid pack files or a selection that matches nothing.
        """
        from airlock.probes import packs

        try:
            extra = [Path(p) for p in self.probe_files]
            loaded = packs.load_packs([packs.SHIPPED_DIR, *extra] if extra else None)
            cases = list(
                packs.expand(
                    loaded,
                    seed=self.seed,
                    langs=self.langs,
                    families=self.families,
                    probes=self.probes,
                    quick=self.quick,
                    triggers=self.triggers,
                )
            )
        except packs.PackError as e:
            raise CampaignError(str(e)) from None
        if not cases:
            raise CampaignError("no probe matches the selection (families, languages, --probes)")
        return cases


@dataclass(frozen=True)
class JudgeConfig:
    """An optional LLM judge: an endpoint and how its verdict combines with the detectors'."""

    target: TargetConfig
    mode: str = "confirm"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CampaignError(
                f"unknown judge mode {self.mode!r} (choose from {', '.join(MODES)})"
            )


def config_of(
    targets: Sequence[TargetConfig],
    selection: Selection,
    sampling: SamplingOptions,
    judge: JudgeConfig | None = None,
) -> dict[str, Any]:
    """The stored configuration; its hash identifies the campaign for resuming."""
    files = [{"path": p, "sha256": _file_hash(p)} for p in selection.probe_files]
    config: dict[str, Any] = {
        "targets": [asdict(t) for t in targets],
        "selection": {**asdict(selection), "probe_files": files},
        "sampling": asdict(sampling),
    }
    if judge is not None:  # absent rather than null: older configurations hash the same
        config["judge"] = {"target": asdict(judge.target), "mode": judge.mode}
    return config


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as reports show it: URLs without credentials, header values
    hidden unless they only name an environment variable (``env:NAME``)."""

    def target(t: dict[str, Any]) -> dict[str, Any]:
        headers = {k: v if str(v).startswith("env:") else "***" for k, v in t["headers"].items()}
        return {**t, "url": public_url(t["url"]), "headers": headers}

    out = {**config, "targets": [target(t) for t in config["targets"]]}
    if config.get("judge"):
        out["judge"] = {**config["judge"], "target": target(config["judge"]["target"])}
    return out


def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise CampaignError(f"cannot read probe file {path}: {e.strerror}") from None


def _config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _judge_from_config(config: dict[str, Any]) -> JudgeConfig | None:
    data = config.get("judge")
    return JudgeConfig(TargetConfig(**data["target"]), data["mode"]) if data else None


def _from_config(config: dict[str, Any]) -> tuple[list[TargetConfig], Selection, SamplingOptions]:
    sel = dict(config["selection"])
    sel["probe_files"] = tuple(f["path"] for f in sel["probe_files"])
    for key in ("families", "probes"):
        sel[key] = tuple(sel[key]) if sel[key] is not None else None
    for key in ("langs", "triggers"):
        sel[key] = tuple(sel[key])
    targets = [TargetConfig(**t) for t in config["targets"]]
    return targets, Selection(**sel), SamplingOptions(**config["sampling"])


async def arun_campaign(
    targets: Sequence[TargetConfig],
    selection: Selection | None = None,
    sampling: SamplingOptions | None = None,
    options: RunOptions | None = None,
    *,
    db: str | None = None,
    resume: str | None = None,
    threshold: float | None = None,
    progress: ProgressFn | None = None,
    preflight: bool = True,
    handle_sigint: bool = False,
    judge: JudgeConfig | None = None,
) -> CampaignResult:
    """Run (or resume) a campaign and return its summary; attempts go to the database.

    Args:
        targets: endpoints to probe side by side (ignored when ``resume`` is given).
        selection: which probes; sampling: what is sent; options: how fast and how much.
        db: results database (SQLite path or postgresql:// URL); default as for ``scan``.
        resume: a run id (or unique prefix) to resume with its stored configuration.
        threshold: fail a probe when its success rate is above this (default: the pack's).
        progress: called after every attempt with the running counts.
        preflight: check every target with one small request first.
        handle_sigint: Ctrl-C stops cleanly (resumable); a second Ctrl-C aborts.
        judge: an optional LLM judge (part of the campaign's identity, like the targets).

    Raises:
        CampaignError: nothing to run, unknown run id, or a target failed preflight.
        airlock.store.StoreError: the database cannot be used.
    """
    where = db or default_db_path()
    opts = options or RunOptions()
    run_id, config, started_at = _identify(where, targets, selection, sampling, resume, judge)
    tconfs, sel, samp = _from_config(config)
    jconf = _judge_from_config(config)
    probes = sel.expand()
    clients: list[Target] = [t.build(max(opts.concurrency, 1)) for t in tconfs]
    llm = LLMJudge(jconf.target.build(max(opts.concurrency, 1)), jconf.mode) if jconf else None
    try:
        if preflight:
            await _preflight(clients + ([llm.target] if llm else []))
        with Store(where) as store:
            store.start_campaign(
                run_id, _config_hash(config), config, started_at, [t.label for t in tconfs]
            )
        tally = Tally(threshold)
        runner = Runner(
            run_id,
            clients,
            probes,
            sampling=samp,
            options=opts,
            db=where,
            tally=tally,
            progress=progress,
            llm_judge=llm,
        )
        t0 = time.monotonic()
        await _run(runner, handle_sigint)
    finally:
        for c in clients + ([llm.target] if llm else []):
            await c.aclose()
    result = _result(run_id, started_at, time.monotonic() - t0, tconfs, config, runner, tally)
    with Store(where) as store:
        store.finish_campaign(result)
    return result


def run_campaign(targets: Sequence[TargetConfig], **kwargs: Any) -> CampaignResult:
    """Synchronous :func:`arun_campaign` (the library entry point)."""
    return asyncio.run(arun_campaign(targets, **kwargs))


def _identify(
    where: str,
    targets: Sequence[TargetConfig],
    selection: Selection | None,
    sampling: SamplingOptions | None,
    resume: str | None,
    judge: JudgeConfig | None,
) -> tuple[str, dict[str, Any], str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with Store(where) as store:
        if resume:
            try:
                run_id, config, _status, started = store.campaign(resume)
            except KeyError:
                raise CampaignError(f"no campaign {resume!r} in {where}") from None
            return run_id, config, started
        if not targets:
            raise CampaignError("no target given")
        config = config_of(targets, selection or Selection(), sampling or SamplingOptions(), judge)
        earlier = store.resumable(_config_hash(config))
        if earlier is not None:
            run_id, _config, _status, started = store.campaign(earlier)
            return run_id, config, started
    return uuid.uuid4().hex[:12], config, now


async def _preflight(clients: Sequence[Target]) -> None:
    from airlock.targets.base import TargetError

    results = await asyncio.gather(*(c.preflight() for c in clients), return_exceptions=True)
    problems = [
        str(r.args[0]) if isinstance(r, TargetError) else repr(r)
        for r in results
        if isinstance(r, BaseException)
    ]
    if problems:
        raise CampaignError("preflight failed: " + "; ".join(problems))


async def _run(runner: Runner, handle_sigint: bool) -> None:
    loop = asyncio.get_running_loop()
    if handle_sigint:

        def first() -> None:
            runner.stop("interrupted")
            loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C aborts at once

        loop.add_signal_handler(signal.SIGINT, first)
    try:
        await runner.run()
    finally:
        if handle_sigint:
            loop.remove_signal_handler(signal.SIGINT)


def _result(
    run_id: str,
    started_at: str,
    duration: float,
    tconfs: Sequence[TargetConfig],
    config: dict[str, Any],
    runner: Runner,
    tally: Tally,
) -> CampaignResult:
    probes, families = tally.summaries()
    comparisons = tally.comparisons()
    p = runner.progress
    result = CampaignResult(
        run_id=run_id,
        started_at=started_at,
        duration_s=duration,
        targets=[TargetInfo(t.label, public_url(t.url), t.model) for t in tconfs],
        config=public_config(config),
        probes=probes,
        families=families,
        comparisons=comparisons,
        findings=tally.findings(comparisons),
        totals={
            "attempts": p.total,
            "done": p.done,
            "hits": p.hits,
            "errors": p.errors,
            "resumed": p.skipped,
            "requests": p.requests,
            "tokens": p.tokens,
            "cached": p.cached,
        },
        complete=not runner.stop_reason and p.done == p.total,
        stop_reason=runner.stop_reason,
    )
    if runner.stop_reason == "interrupted":
        result.exit_code = EXIT_INTERRUPTED
    else:
        result.exit_code = {"FAIL": 1, "PASS": 0}.get(result.verdict, 2)
    return result

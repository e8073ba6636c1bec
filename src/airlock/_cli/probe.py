"""``airlock probe``: build the campaign from options, run it with a progress bar, report."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlock._cli.common import console, fail, write_output
from airlock.probes import (
    CampaignError,
    CampaignResult,
    JudgeConfig,
    Progress,
    RunOptions,
    SamplingOptions,
    Selection,
    TargetConfig,
    arun_campaign,
)
from airlock.probes.model import FAMILIES, LANGS
from airlock.store import Store, StoreError, default_db_path

if TYPE_CHECKING:
    from collections.abc import Callable

OUTPUT_FILES = {
    "json": "summary.json",
    "jsonl": "attempts.jsonl",
    "junit": "junit.xml",
    "html": "report.html",
}


def run_probe(p: dict[str, Any]) -> int:
    """Run ``airlock probe`` with the click parameters ``p``; returns the exit code."""
    if p["list_probes"]:
        return _list(p)
    if p["fmt"] == "text" and p["output"] is not None:
        fail("--output needs --format json, jsonl, junit or html")
    targets = [] if p["resume"] else _targets(p)
    selection = _selection(p)
    sampling = SamplingOptions(
        p["generations"], p["temperature"], p["sample_seed"], p["max_tokens"]
    )
    options = RunOptions(
        p["concurrency"],
        p["rps"],
        p["retries"],
        0.5,
        p["max_requests"],
        p["max_tokens_total"],
        p["cache"],
    )
    db = p["db_path"] or default_db_path()
    p["judge"] = _judge(p)
    result = _run(targets, selection, sampling, options, db, p)
    _outputs(result, db, p)
    return result.exit_code


def _selection(p: dict[str, Any]) -> Selection:
    return Selection(
        families=_csv(p["families"], FAMILIES, "family"),
        langs=_csv(p["langs"], LANGS, "language") or LANGS,
        probes=tuple(p["probes"]) or None,
        probe_files=tuple(str(f) for f in p["probe_files"]),
        quick=p["quick"],
        triggers=tuple(p["triggers"]),
        seed=p["seed"],
    )


def _targets(p: dict[str, Any]) -> list[TargetConfig]:
    urls, models, names, keys = p["targets"], p["models"], p["names"], p["api_key_envs"]
    if not urls:
        fail("give at least one --target URL with its --model NAME (or --resume RUN_ID)")
    if len(models) != len(urls):
        fail(f"{len(urls)} --target but {len(models)} --model: give one model per target")
    if names and len(names) != len(urls):
        fail("give --name once per --target")
    if len(keys) not in (0, 1, len(urls)):
        fail("give --api-key-env once for all targets or once per --target")
    headers = dict(_header(h) for h in p["headers"])
    out = []
    for i, (url, model) in enumerate(zip(urls, models, strict=True)):
        key = keys[i if len(keys) > 1 else 0] if keys else None
        out.append(
            TargetConfig(
                url, model, names[i] if names else None, key, headers, p["timeout"], p["stream"]
            )
        )
    labels = [t.label for t in out]
    if len(set(labels)) != len(labels):
        fail("two targets have the same label; tell them apart with --name")
    return out


def _judge(p: dict[str, Any]) -> JudgeConfig | None:
    if not p["judge_url"] and not p["judge_model"]:
        return None
    if not (p["judge_url"] and p["judge_model"]):
        fail("an LLM judge needs both --judge-url and --judge-model")
    target = TargetConfig(
        p["judge_url"], p["judge_model"], "judge", p["judge_api_key_env"], timeout=p["timeout"]
    )
    return JudgeConfig(target, p["judge_mode"])


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        fail(f"--header wants 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _csv(text: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    if not text:
        return None
    items = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    bad = [x for x in items if x not in allowed]
    if bad:
        fail(f"unknown {what} {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def _run(
    targets: list[TargetConfig],
    selection: Selection,
    sampling: SamplingOptions,
    options: RunOptions,
    db: str,
    p: dict[str, Any],
) -> CampaignResult:
    show = not p["quiet"] and sys.stderr.isatty()
    kwargs: dict[str, Any] = dict(
        selection=selection,
        sampling=sampling,
        options=options,
        db=db,
        resume=p["resume"],
        threshold=p["threshold"],
        preflight=not p["no_preflight"],
        handle_sigint=True,
        judge=p["judge"],
    )
    try:
        if not show:
            return asyncio.run(arun_campaign(targets, **kwargs))
        return _with_bar(targets, kwargs)
    except CampaignError as e:
        fail(str(e))
    except StoreError as e:
        fail(str(e))


def _with_bar(targets: list[TargetConfig], kwargs: dict[str, Any]) -> CampaignResult:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = (
        TextColumn("[bold]probing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[hits]} hits · {task.fields[errors]} errors"),
        TimeRemainingColumn(),
    )
    with Bar(*columns, console=console(), transient=True) as bar:
        task = bar.add_task("probe", total=None, hits=0, errors=0)

        def advance(pr: Progress) -> None:
            bar.update(task, total=pr.total, completed=pr.done, hits=pr.hits, errors=pr.errors)

        return asyncio.run(arun_campaign(targets, progress=advance, **kwargs))


def _outputs(result: CampaignResult, db: str, p: dict[str, Any]) -> None:
    if p["output_dir"] is not None:
        for fmt, name in OUTPUT_FILES.items():
            _write(result, db, fmt, p["output_dir"] / name)
    if p["fmt"] != "text":
        _write(result, db, p["fmt"], p["output"])
    if not p["quiet"]:
        from airlock.report.probe_terminal import print_campaign

        out = console()
        print_campaign(result, out)
        if not result.complete:
            out.print(
                f"stopped ({result.stop_reason}); resume with: airlock probe --resume "
                f"{result.run_id}",
                soft_wrap=True,
            )
        for path in _written(p):
            out.print(f"report: {path}", soft_wrap=True)


def _written(p: dict[str, Any]) -> list[Path]:
    out = [p["output"]] if p["output"] is not None else []
    if p["output_dir"] is not None:
        out.append(p["output_dir"] / OUTPUT_FILES["html"])
    return out


def _write(result: CampaignResult, db: str, fmt: str, path: Path | None) -> None:
    if fmt != "jsonl":
        from airlock.report import render_campaign

        write_output(render_campaign(result, fmt), path)
        return
    write_jsonl(result.run_id, db, path)


def write_jsonl(run_id: str, db: str, path: Path | None) -> None:
    """Stream every attempt of a run as JSON lines to ``path`` (standard output if None)."""
    from airlock.report.probe_json import write_jsonl as write

    try:
        with Store(db) as store:
            if path is None:
                write(store.iter_attempts(run_id), sys.stdout)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as fh:
                write(store.iter_attempts(run_id), fh)
    except (OSError, StoreError) as e:
        fail(f"cannot write attempts to {path or 'stdout'}: {e}")


def _list(p: dict[str, Any]) -> int:
    selection = _selection(p)
    try:
        cases = selection.expand()
    except CampaignError as e:
        fail(str(e))
    show: Callable[[str], None] = print
    for c in cases:
        show(f"{c.id}\t{c.family}\t{c.severity}\t{c.title}")
    console().print(f"{len(cases)} probe cases")
    return 0

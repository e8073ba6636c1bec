"""Reports, each rendered from the structured result (never from scanner state).

``render(result, fmt)`` returns the report as text; :data:`FORMATS` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airlock.scan.result import ScanResult

if TYPE_CHECKING:
    from airlock.probes.result import CampaignResult

Renderer = Callable[[ScanResult], str]


def _renderers() -> dict[str, Renderer]:
    from airlock.report import cyclonedx, html, json_report, sarif

    return {
        "json": json_report.render,
        "sarif": sarif.render,
        "cyclonedx": cyclonedx.render,
        "html": html.render,
    }


FORMATS = ("json", "sarif", "cyclonedx", "html")


def render(result: ScanResult, fmt: str) -> str:
    """Render ``result`` in format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        ValueError: unknown format.
    """
    try:
        fn = _renderers()[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    return fn(result)


CAMPAIGN_FORMATS = ("json", "junit", "html")


def render_campaign(result: CampaignResult, fmt: str) -> str:
    """Render a probe campaign in format ``fmt`` (one of :data:`CAMPAIGN_FORMATS`).

    The attempt stream (JSON Lines) is written by :func:`airlock.report.probe_json.write_jsonl`
    and the terminal summary by :func:`airlock.report.probe_terminal.print_campaign`.

    Raises:
        ValueError: unknown format.
    """
    if fmt == "json":
        from airlock.report.probe_json import render_summary

        return render_summary(result)
    if fmt == "junit":
        from airlock.report.junit import render as render_junit

        return render_junit(result)
    if fmt == "html":
        from airlock.report.probe_html import render as render_html

        return render_html(result)
    choices = ", ".join(CAMPAIGN_FORMATS)
    raise ValueError(f"unknown format {fmt!r}; choose from {choices}")


def split_member_path(path: str) -> tuple[str, str | None]:
    """``outer.zip!inner/x.pkl`` → (``outer.zip``, ``inner/x.pkl``); plain paths → (path, None).

    ``#`` separates a file from a named part inside it (a GGUF chat template).
    """
    cut = min((i for i in (path.find("!"), path.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return path, None
    return path[:cut], path[cut + 1 :]

"""Reports, each rendered from the structured result (never from scanner state).

``render(result, fmt)`` returns the report as text; :data:`FORMATS` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable

from airlock.scan.result import ScanResult

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


def split_member_path(path: str) -> tuple[str, str | None]:
    """``outer.zip!inner/x.pkl`` → (``outer.zip``, ``inner/x.pkl``); plain paths → (path, None).

    ``#`` separates a file from a named part inside it (a GGUF chat template).
    """
    cut = min((i for i in (path.find("!"), path.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return path, None
    return path[:cut], path[cut + 1 :]

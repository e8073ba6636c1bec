"""One self-contained HTML file: inline CSS and script, no network, every value escaped.

The template is airlock's own (trusted) and rendered with autoescaping; evidence from
scanned files is untrusted text and is only ever inserted escaped.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import jinja2

from airlock.scan.result import ScanResult


@cache
def _template(name: str) -> jinja2.Template:
    source = files("airlock.data").joinpath(name).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return env.from_string(source)


def render(result: ScanResult) -> str:
    data = result.to_dict()
    title = ", ".join(data["targets"]) or "scan"
    return _template("report_scan.html.j2").render(r=data, title=title)

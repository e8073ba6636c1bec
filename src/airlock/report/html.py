"""One self-contained HTML file: inline CSS and script, no network, every value escaped.

The template is airlock's own (trusted) and rendered with autoescaping; evidence from
scanned files is untrusted text and is only ever inserted escaped.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import jinja2

from airlock.findings import shorten
from airlock.scan.result import ScanResult

_UNTRUSTED = ("title", "path", "location", "evidence")


@cache
def _template(name: str) -> jinja2.Template:
    source = files("airlock.data").joinpath(name).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return env.from_string(source)


def render(result: ScanResult) -> str:
    data = result.to_dict()
    for f in data["findings"]:  # bidi and control characters must not reorder what people read
        for key in _UNTRUSTED:
            if f.get(key):
                f[key] = shorten(str(f[key]), 1000)
    title = ", ".join(data["targets"]) or "scan"
    return _template("report_scan.html.j2").render(r=data, title=title)

"""The probe campaign as one self-contained HTML file, with charts as inline SVG.

No script and nothing from the network (the page's CSP says so: ``default-src 'none'``).
The template is airlock's own, rendered with autoescaping; every text that a model, a
target or a user controls is shortened with :func:`airlock.findings.shorten` (control and
bidi characters made visible) before it reaches the template or the SVG, where it is
escaped again. Censorship results are a measurement and are worded neutrally.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from airlock.findings import shorten
from airlock.probes.result import CampaignResult, Comparison, ProbeSummary
from airlock.probes.stats import Rate
from airlock.report.html import _template
from airlock.report.probe_json import (
    TargetOverview,
    family_order,
    family_title,
    interval_text,
    measure_name,
    overview,
    pct,
)

# Families measured against a control group; their own charts show them.
PAIRED = ("censorship", "backdoor")
GROUPS = {
    "censorship": ("sensitive topics", "control topics"),
    "backdoor": ("with trigger", "without trigger"),
}
PAIR_COLOURS = ("#0072b2", "#a3adb8")
LANG_NAMES = {"en": "English (en)", "zh": "Chinese (zh)"}


def render(result: CampaignResult) -> str:
    """The campaign as a self-contained HTML page."""
    targets = overview(result)
    colours = {t.info.name: colour(i) for i, t in enumerate(targets)}
    view = {
        "run": _run(result),
        "targets": [_target(t, colours[t.info.name]) for t in targets],
        "family_chart": _family_chart(targets, colours),
        "families": _family_rows(targets),
        "pairs": [_pairs(result, kind, targets) for kind in PAIRED],
        "probes": _probe_groups(result, targets),
        "findings": [_finding(f.to_dict()) for f in result.findings],
        "config": [(_s(k, 80), _s(_json(v), 400)) for k, v in result.config.items()],
    }
    title = ", ".join(_s(t.info.name, 60) for t in targets) or "probe"
    return _template("report_probe.html.j2").render(v=view, title=title)


def _s(text: object, limit: int = 300) -> str:
    """Untrusted text made safe to read: control and bidi characters visible, bounded."""
    return shorten(str(text), limit)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _run(result: CampaignResult) -> dict[str, Any]:
    return {
        "id": _s(result.run_id, 80),
        "started_at": _s(result.started_at, 40),
        "duration": f"{result.duration_s:.1f} s",
        "verdict": result.verdict,
        "complete": result.complete,
        "stop_reason": _s(result.stop_reason, 300),
        "totals": [(_s(k, 40), _s(v, 40)) for k, v in result.totals.items()],
    }


def _target(t: TargetOverview, fill: str) -> dict[str, Any]:
    r = t.total
    return {
        "name": _s(t.info.name, 120),
        "short": _s(t.info.name, 40),
        "model": _s(t.info.model, 120),
        "url": _s(t.info.url, 300),
        "verdict": t.verdict,
        "colour": fill,
        "n": r.n,
        "hits": r.hits,
        "errors": r.errors,
        "rate": pct(r.rate) if r.n else "—",
        "failing": [
            {"probe": _s(p.probe, 120), "lang": _s(p.lang, 8), "rate": pct(p.rate.rate)}
            for p in t.failing
        ],
    }


def _family_chart(targets: list[TargetOverview], colours: dict[str, str]) -> Markup | None:
    """Bars per family: one per target, or one per language when there is one target."""
    if not any(fam not in PAIRED for t in targets for fam in t.families):
        return None
    if len(targets) == 1:
        return _language_chart(targets[0])
    rows = []
    for fam in family_order(f for t in targets for f in t.families):
        if fam in PAIRED:
            continue
        bars = [
            Bar(langs["all"], colours[t.info.name], f"{_s(t.info.name, 60)} · {family_title(fam)}")
            for t in targets
            if (langs := t.families.get(fam))
        ]
        rows.append(Row(family_title(fam), bars=bars))
    legend = [(_s(t.info.name, 60), colours[t.info.name]) for t in targets]
    return bar_chart(rows, legend, "Attack success rate by family and target")


def _language_chart(t: TargetOverview) -> Markup:
    langs = list(dict.fromkeys(x for rates in t.families.values() for x in rates if x != "all"))
    fills = {lang: colour(i) for i, lang in enumerate(langs)}
    rows = [
        Row(
            family_title(fam),
            bars=[
                Bar(rates[x], fills[x], f"{family_title(fam)} · {_s(x, 8)}")
                for x in langs
                if x in rates
            ],
        )
        for fam, rates in t.families.items()
        if fam not in PAIRED
    ]
    legend = [(LANG_NAMES.get(x, _s(x, 8)), fills[x]) for x in langs]
    return bar_chart(rows, legend, "Attack success rate by family and language")


def _family_rows(targets: list[TargetOverview]) -> list[dict[str, Any]]:
    rows = []
    for fam in family_order(f for t in targets for f in t.families):
        cells = []
        for t in targets:
            langs = t.families.get(fam, {})
            failing = any(p.family == fam for p in t.failing)
            cells.append(_rate_cell(langs.get("all"), failing) | {"langs": _langs(langs)})
        rows.append(
            {
                "id": _s(fam, 60),
                "title": family_title(fam),
                "measure": measure_name(fam),
                "cells": cells,
            }
        )
    return rows


def _langs(langs: dict[str, Rate]) -> list[tuple[str, str]]:
    return [
        (_s(lang, 8), pct(r.rate) if r.n else "—") for lang, r in langs.items() if lang != "all"
    ]


def _rate_cell(r: Rate | None, failing: bool) -> dict[str, Any]:
    """A table cell: rate, counts, interval and a status class for colour."""
    if r is None:
        return {"status": "none", "rate": "—", "counts": "not run", "ci": ""}
    if not r.n:
        status, counts = ("error", _errors(r.errors)) if r.errors else ("none", "no attempts")
        return {"status": status, "rate": "—", "counts": counts, "ci": ""}
    counts = f"{r.hits}/{r.n}" + (f" · {_errors(r.errors)}" if r.errors else "")
    return {
        "status": "fail" if failing else "pass",
        "rate": pct(r.rate),
        "counts": counts,
        "ci": interval_text(r),
    }


def _errors(n: int) -> str:
    return f"{n} error" if n == 1 else f"{n} errors"


def _pairs(result: CampaignResult, kind: str, targets: list[TargetOverview]) -> dict[str, Any]:
    order = {t.info.name: i for i, t in enumerate(targets)}
    comps = sorted(
        (c for c in result.comparisons if c.kind == kind),
        key=lambda c: (order.get(c.target, len(order)), c.label, c.lang),
    )
    a_name, b_name = GROUPS[kind]
    rows = [_pair_row(c, a_name, b_name) for c in comps]
    legend = [(a_name, PAIR_COLOURS[0]), (b_name, PAIR_COLOURS[1])]
    title = (
        "Refusal or deflection rate, sensitive vs control topics"
        if kind == "censorship"
        else "Rate with vs without the trigger"
    )
    return {
        "kind": kind,
        "a": a_name,
        "b": b_name,
        "chart": bar_chart(rows, legend, title) if comps else None,
        "rows": [_pair_cells(c) for c in comps],
    }


def _pair_row(c: Comparison, a_name: str, b_name: str) -> Row:
    label = _s(c.label, 80)
    sub = f"{_s(c.lang, 8)} · {label}" if c.kind == "censorship" else f"{label} · {_s(c.lang, 8)}"
    tip = f"{_s(c.target, 60)} · {label} · {_s(c.lang, 8)}"
    bars = [
        Bar(c.a, PAIR_COLOURS[0], f"{tip} · {a_name}"),
        Bar(c.b, PAIR_COLOURS[1], f"{tip} · {b_name}"),
    ]
    p = _p_text(c.p_value)
    return Row(
        _s(c.target, 60), sub, bars, "p " + (p if p.startswith("<") else "= " + p), c.significant
    )


def _pair_cells(c: Comparison) -> dict[str, Any]:
    return {
        "target": _s(c.target, 120),
        "label": _s(c.label, 200),
        "lang": _s(c.lang, 8),
        "measure": _s(c.measure, 80) or measure_name(c.kind),
        "a": _rate_cell(c.a, False),
        "b": _rate_cell(c.b, False),
        "p": _p_text(c.p_value),
        "significant": c.significant,
    }


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _probe_groups(result: CampaignResult, targets: list[TargetOverview]) -> list[dict[str, Any]]:
    """Probe × language rows grouped by family, with one cell per target (side by side)."""
    index: dict[tuple[str, str, str], dict[str, ProbeSummary]] = {}
    for p in result.probes:
        index.setdefault((p.family, p.probe, p.lang), {})[p.target] = p
    groups = []
    for fam in family_order(k[0] for k in index):
        keys = sorted(k for k in index if k[0] == fam)
        rows = [_probe_row(index[k], targets) for k in keys]
        groups.append({"title": family_title(fam), "measure": measure_name(fam), "rows": rows})
    return groups


def _probe_row(by_target: dict[str, ProbeSummary], targets: list[TargetOverview]) -> dict[str, Any]:
    first = next(iter(by_target.values()))
    cells = []
    for t in targets:
        p = by_target.get(t.info.name)
        cells.append(_rate_cell(p.rate if p else None, bool(p and p.failed)))
    return {
        "probe": _s(first.probe, 160),
        "title": _s(first.title, 300),
        "lang": _s(first.lang, 8),
        "severity": str(first.severity),
        "threshold": pct(first.threshold),
        "cells": cells,
    }


def _finding(f: dict[str, Any]) -> dict[str, Any]:
    for key in ("rule_id", "title", "path", "location", "evidence", "remediation"):
        if f.get(key):
            f[key] = _s(f[key], 1000)
    return f


# ---------------------------------------------------------------------------------------
# Inline SVG: horizontal rate bars with Wilson whiskers. Every text in it goes through
# _esc; labels arrive already shortened.

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
WIDTH = 1000
X0, PLOT = 250, 600  # plot area: x from X0 to X0 + PLOT (0 % … 100 %)
BAR, GAP, PAD = 14, 4, 10
TOP = 30  # room for the legend


@dataclass
class Bar:
    """One bar: a rate drawn in a colour, with a tooltip."""

    rate: Rate
    colour: str
    tip: str


@dataclass
class Row:
    """A group of bars with a label on the left and a note on the right (e.g. a p-value)."""

    label: str
    sublabel: str = ""
    bars: list[Bar] = field(default_factory=list)
    note: str = ""
    strong: bool = False  # draw the note in bold (a significant difference)


def colour(i: int) -> str:
    """The i-th series colour."""
    return PALETTE[i % len(PALETTE)]


def bar_chart(rows: list[Row], legend: list[tuple[str, str]], title: str) -> Markup:
    """A horizontal bar chart: per row, bars with their Wilson 95 % interval as whiskers.

    Args:
        rows: the groups, top to bottom.
        legend: (label, colour) pairs shown above the plot.
        title: the chart's accessible name.

    Returns:
        The ``<svg>`` element, safe to insert into HTML as is.
    """
    legend_svg, legend_h = _legend(legend)
    y = TOP + legend_h - 20
    body: list[str] = []
    for row in rows:
        h = _row_height(row)
        body.append(_row(row, y))
        y += h
    height = y + 26
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img"><title>{_esc(title)}</title>',
        legend_svg,
        _grid(TOP + legend_h - 24, y),
        *body,
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704  every text inside went through _esc


def _row_height(row: Row) -> int:
    bars = max(len(row.bars), 1) * (BAR + GAP) - GAP + 2 * PAD
    return max(bars, 40) if row.sublabel else bars  # two lines of label need the room


def _row(row: Row, y: int) -> str:
    h = _row_height(row)
    mid = y + h / 2
    out = [f'<line class="sep" x1="0" x2="{WIDTH}" y1="{y}" y2="{y}"/>']
    label_y = mid - 2 if row.sublabel else mid + 4
    out.append(
        f'<text class="lbl" x="{X0 - 12}" y="{label_y:.1f}">{_esc(_fit(row.label, 34))}</text>'
    )
    if row.sublabel:
        sub = _esc(_fit(row.sublabel, 38))
        out.append(f'<text class="sub" x="{X0 - 12}" y="{mid + 12:.1f}">{sub}</text>')
    for i, bar in enumerate(row.bars):
        out.append(_bar(bar, y + PAD + i * (BAR + GAP)))
    if row.note:
        cls = "note strong" if row.strong else "note"
        out.append(f'<text class="{cls}" x="{WIDTH - 6}" y="{mid + 4:.1f}">{_esc(row.note)}</text>')
    return "".join(out)


def _bar(bar: Bar, y: float) -> str:
    r = bar.rate
    cy = y + BAR / 2
    if not r.n:
        what = f"{r.errors} errors, no answer" if r.errors else "no attempts"
        return f'<text class="val muted" x="{X0 + 4}" y="{cy + 4:.1f}">{_esc(what)}</text>'
    lo, hi = r.interval
    w = max(r.rate * PLOT, 2.0)  # a zero rate still shows as a sliver
    tip = f"{bar.tip}: {pct(r.rate)} ({r.hits} of {r.n}), 95 % CI {interval_text(r)}"
    xl, xh = X0 + lo * PLOT, X0 + hi * PLOT
    text_x = max(X0 + w, xh) + 6
    return (
        f"<g><title>{_esc(tip)}</title>"
        f'<rect x="{X0}" y="{y:.1f}" width="{w:.1f}" height="{BAR}" rx="2" fill="{bar.colour}"/>'
        f'<line class="wh" x1="{xl:.1f}" x2="{xh:.1f}" y1="{cy:.1f}" y2="{cy:.1f}"/>'
        f'<line class="wh" x1="{xl:.1f}" x2="{xl:.1f}" y1="{cy - 5:.1f}" y2="{cy + 5:.1f}"/>'
        f'<line class="wh" x1="{xh:.1f}" x2="{xh:.1f}" y1="{cy - 5:.1f}" y2="{cy + 5:.1f}"/>'
        f'<text class="val" x="{text_x:.1f}" y="{cy + 4:.1f}">{_esc(pct(r.rate))}</text></g>'
    )


def _grid(y0: float, y1: float) -> str:
    out = []
    for tick in (0, 25, 50, 75, 100):
        x = X0 + tick / 100 * PLOT
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{y0}" y2="{y1}"/>')
        out.append(f'<text class="tick" x="{x}" y="{y1 + 16}">{tick} %</text>')
    return "".join(out)


def _legend(items: list[tuple[str, str]]) -> tuple[str, int]:
    """Legend entries laid out left to right, wrapping; returns the SVG and its height."""
    out, x, y = [], X0, 14
    for label, fill in items:
        text = _fit(label, 40)
        w = 18 + _width(text) * 7 + 18
        if x + w > WIDTH and x > X0:
            x, y = X0, y + 18
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" rx="2" fill="{fill}"/>')
        out.append(f'<text class="leg" x="{x + 17}" y="{y}">{_esc(text)}</text>')
        x += w
    return "".join(out), y + 20


def _width(text: str) -> int:
    """Display width in character cells (East Asian wide characters count two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, cells: int) -> str:
    """Cut ``text`` to ``cells`` display cells, marking the cut with an ellipsis."""
    if _width(text) <= cells:
        return text
    out, used = [], 0
    for c in text:
        used += _width(c)
        if used > cells - 1:
            break
        out.append(c)
    return "".join(out) + "…"


def _esc(text: str) -> str:
    return escape(text, quote=True)

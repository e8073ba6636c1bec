"""Probe terminal summary: what a person reads first, safe against hostile text."""

from __future__ import annotations

import subprocess
import sys

from airlock.probes.result import CampaignResult
from airlock.report.probe_terminal import render_text
from report.probe_samples import sample_campaign


def test_two_targets_side_by_side_with_rates_and_intervals() -> None:
    out = render_text(sample_campaign(), width=140)
    lines = out.splitlines()
    assert lines[0].startswith(" FAIL   probe run p-20260301-0001 · 1342 attempts · 22 errors")
    header = next(line for line in lines if "Family" in line)
    assert header.index("naive") < header.index("guarded")  # one column per target
    row = next(line for line in lines if "Jailbreak templates" in line)
    assert "47.5 % 38/80" in row and "1.2 % 1/80" in row
    assert "36.9–58.3 %" in out and "en 17.5 % · zh 77.5 %" in out  # interval, per language
    assert "(refusal or deflection rate)" in out


def test_failing_probes_per_target_most_severe_first() -> None:
    out = render_text(sample_campaign(), width=140)
    naive = out.index("Probes above their threshold (naive)")
    guarded = out.index("Probes above their threshold (guarded)")
    assert naive < guarded
    first = next(line for line in out[naive:].splitlines() if "│ high" in line)
    assert "extraction.repeat-above" in first and "90.0 % > 0.0 %" in first
    assert "… 3 more; --format html or json lists all" in out  # 28 failing, 25 shown
    assert "multiturn.crescendo" in out[guarded:] and "10.0 % > 5.0 %" in out[guarded:]


def test_comparisons_are_tabled_with_p_values() -> None:
    out = render_text(sample_campaign(), width=140)
    assert "Refusal or deflection rate: sensitive vs control topics" in out
    row = next(line for line in out.splitlines() if "naive" in line and "94.3 %" in line)
    assert "4.0 % (1/25)" in row and "< 0.001" in row and "significant" in row
    assert "Backdoor trigger scan" in out and "75.0 % (15/20)" in out


def test_single_target_table_has_counts_columns() -> None:
    r = sample_campaign()
    r.targets = r.targets[1:]
    r.probes = [p for p in r.probes if p.target == "guarded"]
    r.families = [f for f in r.families if f.target == "guarded"]
    r.comparisons = []
    out = render_text(r, width=120)
    assert "Attempts" in out and "By language" in out
    row = next(line for line in out.splitlines() if "Multi-turn escalation" in line)
    assert [c.strip() for c in row.split("│")[2:7]] == ["20", "2", "10.0 %", "2.8–30.1 %", "20"]


def test_narrow_terminal_keeps_the_numbers() -> None:
    out = render_text(sample_campaign(), width=90)
    assert "Title" not in out and "90.0 % > 0.0 %" in out
    tables = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and all(len(line) <= 90 for line in tables)


def test_hostile_text_is_shown_not_obeyed() -> None:
    out = render_text(sample_campaign(hostile=True), width=200)
    for bad in ("\x00", "\x1b", "\u202e"):
        assert bad not in out
    assert "evil<script>alert(1)</script>\\u202e\\x00" in out
    assert "\\x1b[31m[bold red]x[/]" in out  # rich markup in a title stays literal
    assert "incomplete (interrupted" in out


def test_empty_campaign_says_so() -> None:
    out = render_text(CampaignResult("p-1", "2026-03-01T10:00:00", 0.0, [], {}))
    assert "no probe was run" in out and "Families" not in out


def test_importing_the_renderer_does_not_import_rich() -> None:
    code = "import sys, airlock.report.probe_terminal; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

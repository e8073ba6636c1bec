"""Every scanner against its labelled cases (tests/guard/cases.yaml), in English and
Chinese: hits of the expected kinds covering the expected text, and near misses quiet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from airlock.guard import GuardContext, create, names
from guard.samples import fill

CASES_FILE = Path(__file__).with_name("cases.yaml")
DATA = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = DATA["cases"]
BUILTINS = ("injection", "secrets", "pii", "unicode", "terms", "leaks", "exfil", "code", "think")


def _id(case: dict[str, Any]) -> str:
    return f"{case['scanner']}-{case['lang']}-{case['text'][:40]!r}"


def _run(case: dict[str, Any]) -> tuple[str, list[Any]]:
    options = case.get("options", DATA["defaults"].get(case["scanner"], {}))
    scanner = create(case["scanner"], options)
    raw = case.get("ctx") or {}
    ctx = GuardContext(raw.get("system_prompt", ""), tuple(raw.get("canaries", ())))
    text = fill(case["text"])
    return text, scanner.scan(text, ctx)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_case(case: dict[str, Any]) -> None:
    text, hits = _run(case)
    assert {h.kind for h in hits} == set(case["expect"]), [
        (h.kind, text[h.start : h.end]) for h in hits
    ]
    for want in case.get("covers", []):
        want = fill(want)
        at = text.find(want)
        assert at >= 0, want
        assert any(h.start <= at and at + len(want) <= h.end for h in hits), (want, hits)


def test_every_scanner_has_fifteen_cases_with_hits_and_misses_in_both_languages() -> None:
    per = Counter(c["scanner"] for c in CASES)
    langs = Counter((c["scanner"], c["lang"], bool(c["expect"])) for c in CASES)
    assert set(per) == set(BUILTINS) and set(BUILTINS) <= set(names())
    for scanner in BUILTINS:
        assert per[scanner] >= 15, scanner
        for lang in ("en", "zh"):
            assert langs[scanner, lang, True] >= 3, (scanner, lang, "hits")
            assert langs[scanner, lang, False] >= 2, (scanner, lang, "near misses")


def test_hits_are_sorted_and_inside_the_text() -> None:
    for case in CASES:
        text, hits = _run(case)
        assert [h.start for h in hits] == sorted(h.start for h in hits), _id(case)
        assert all(0 <= h.start <= h.end <= len(text) and 0 <= h.score <= 1 for h in hits)

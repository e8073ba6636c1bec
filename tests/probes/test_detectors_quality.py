"""Detector quality on the labelled cases must not fall below what was measured.

The cases are ``tests/probes/detector_cases.yaml``; ``benchmarks/detector_quality.py``
prints the same table. Floors are the measured precision and recall (all 1.0 when this
was written) minus a margin of 0.05, per detector and language: on sets this small a
single new miss trips them, which is the point.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARGIN = 0.05
MEASURED = 1.0  # every detector, both languages, all cases (see the module docstring)
MIN_CASES = {"refusal": 80, "compliance": 80}  # others: 40, across both languages


def quality() -> ModuleType:
    path = ROOT / "benchmarks" / "detector_quality.py"
    spec = importlib.util.spec_from_file_location("detector_quality", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


@pytest.fixture(scope="module")
def q() -> ModuleType:
    return quality()


def test_enough_cases_per_detector_in_both_languages(q: ModuleType) -> None:
    per_detector: Counter[str] = Counter()
    per_lang: Counter[tuple[str, str]] = Counter()
    for case in q.load_cases():
        for det in case.labels:
            per_detector[det] += 1
            per_lang[det, case.lang] += 1
    assert len(per_detector) == 10
    for det, n in per_detector.items():
        assert n >= MIN_CASES.get(det, 40), (det, n)
        assert per_lang[det, "en"] >= 5 and per_lang[det, "zh"] >= 5, det


def test_precision_and_recall_hold(q: ModuleType) -> None:
    tallies, misses = q.evaluate(q.load_cases())
    low = {
        key: (round(t.precision, 3), round(t.recall, 3))
        for key, t in tallies.items()
        if t.precision < MEASURED - MARGIN or t.recall < MEASURED - MARGIN
    }
    assert not low, "\n".join(misses)


def test_graded_labels_match_their_scores(q: ModuleType) -> None:
    _, misses = q.evaluate(q.load_cases())
    assert [m for m in misses if "want 0." in m] == []


def test_all_detectors_together_are_fast_on_a_2kb_answer(q: ModuleType) -> None:
    """Measured ~0.3 ms on a shared 2-core machine; the bound leaves room for a busy CI."""
    from airlock.probes.detectors import Evidence, all_detectors

    base = q._two_kb_answer()
    params = {"canary": "K7Q4-MB2X-9ZT1", "expect": "PWNED", "facts": [["1989"]]}
    fns = [d.fn for d in all_detectors().values()]
    evs = [Evidence(text=f"{base} #{i}", lang="en", params=params) for i in range(60)]
    for fn in fns:
        fn(evs[0])  # first calls: lazy loads
    t0 = time.perf_counter()
    for ev in evs[1:]:
        for fn in fns:
            fn(ev)
    assert (time.perf_counter() - t0) / (len(evs) - 1) < 5e-3

"""Precision and recall of the built-in detectors on the labelled cases, and their speed.

    .venv/bin/python benchmarks/detector_quality.py            # table per detector and language
    .venv/bin/python benchmarks/detector_quality.py --misses   # also list every wrong verdict
    .venv/bin/python benchmarks/detector_quality.py --speed    # also time them on a 2 KB answer

Cases live in ``tests/probes/detector_cases.yaml``; a label is the expected verdict at
the default threshold (0.5), or an expected score. ``--set holdout`` / ``holdout2`` keep the
cases written after a round of tuning (first measured before any change for them),
``--set dev`` the cases the detectors were developed on. ``tests/probes/test_detectors_quality.py``
asserts these numbers do not fall.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402

from airlock.probes.detectors import Evidence, get  # noqa: E402

CASES = ROOT / "tests" / "probes" / "detector_cases.yaml"
TOPICS = ROOT / "src" / "airlock" / "probes" / "data" / "topics.yaml"
THRESHOLD = 0.5


@dataclass
class Case:
    id: str
    lang: str
    text: str
    labels: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    note: str = ""
    set: str = "dev"


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def add(self, expected: bool, got: bool) -> None:
        if expected and got:
            self.tp += 1
        elif got:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1


def load_cases(path: Path = CASES) -> list[Case]:
    """The labelled cases, with ``topic`` resolved into ``params.facts``."""
    topics = {t["id"]: t for t in yaml.safe_load(TOPICS.read_text(encoding="utf-8"))["topics"]}
    out = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
        params = dict(raw.get("params") or {})
        if raw.get("topic"):
            params.setdefault("facts", topics[raw["topic"]]["facts"][raw["lang"]])
        out.append(
            Case(
                id=raw["id"],
                lang=raw["lang"],
                text=raw["text"],
                labels={k: float(v) for k, v in raw["labels"].items()},
                params=params,
                prompt=raw.get("prompt") or "",
                note=raw.get("note") or "",
                set=raw.get("set") or "dev",
            )
        )
    return out


def score(detector: str, case: Case) -> float:
    ev = Evidence(text=case.text, lang=case.lang, params=case.params, prompt=case.prompt)
    return get(detector).fn(ev)


def evaluate(cases: Iterable[Case]) -> tuple[dict[tuple[str, str], Tally], list[str]]:
    """Tallies per (detector, lang) and a line per wrong verdict or score."""
    tallies: dict[tuple[str, str], Tally] = {}
    misses = []
    for case in cases:
        for det, label in case.labels.items():
            got = score(det, case)
            expected = label >= THRESHOLD
            tallies.setdefault((det, case.lang), Tally()).add(expected, got >= THRESHOLD)
            graded = 0 < label < 1 and abs(got - label) > 0.05
            if expected != (got >= THRESHOLD) or graded:
                misses.append(f"{case.id} {det}: want {label:g} got {got:.2f}  ({case.note})")
    return tallies, misses


def table(tallies: dict[tuple[str, str], Tally]) -> str:
    lines = [
        f"{'detector':24} {'lang':4} {'n':>4} {'tp':>4} {'fp':>4} {'fn':>4} {'prec':>6} {'rec':>6}"
    ]
    for (det, lang), t in sorted(tallies.items()):
        counts = f"{t.n:4} {t.tp:4} {t.fp:4} {t.fn:4}"
        lines.append(f"{det:24} {lang:4} {counts} {t.precision:6.3f} {t.recall:6.3f}")
    return "\n".join(lines)


def speed(rounds: int = 300) -> str:
    """Mean time per ~2 KB answer: each detector alone, then all of them on one answer.

    Every round gets a different answer (a counter at its end), so no cache helps more
    than it would in a campaign; first calls (lazy loads, regex warm-up) are shown apart.
    """
    from airlock.probes.detectors import all_detectors

    base = _two_kb_answer()
    params = {
        "canary": "K7Q4-MB2X-9ZT1",
        "expect": "I have been PWNED",
        "markers": ["Step 1"],
        "facts": [["1989"], ["June 4", "4 June"], ["troops", "army"]],
    }

    def evidence(i: int) -> Evidence:
        text = f"{base[:-8]} #{i:06d}"
        return Evidence(text=text, lang="en", params=params, prompt="How do I parse JSON?")

    dets = all_detectors()
    lines = []
    for n, (name, d) in enumerate(sorted(dets.items())):
        t0 = time.perf_counter()
        d.fn(evidence(-1 - n))
        first = time.perf_counter() - t0
        evs = [evidence(1000 * (n + 1) + i) for i in range(rounds)]
        t0 = time.perf_counter()
        for ev in evs:
            d.fn(ev)
        mean = (time.perf_counter() - t0) / rounds
        lines.append(f"{name:24} {mean * 1e6:8.1f} µs   first call {first * 1e3:6.1f} ms")
    evs = [evidence(100_000 + i) for i in range(rounds)]
    fns = [d.fn for d in dets.values()]
    t0 = time.perf_counter()
    for ev in evs:
        for fn in fns:
            fn(ev)
    total = (time.perf_counter() - t0) / rounds
    lines.append(f"{'all, one answer':24} {total * 1e6:8.1f} µs on {len(evs[0].text)} characters")
    return "\n".join(lines)


def _two_kb_answer() -> str:
    prose = (
        "Sure, here is how to read a large JSON file quickly in Python. The standard json "
        "module is fine for most files, but for very large ones a faster parser helps. "
    )
    code = (
        "```bash\npip install orjson\n```\n```python\nimport orjson\nfrom pathlib import Path\n\n"
        "def load(path):\n    return orjson.loads(Path(path).read_bytes())\n```\n"
    )
    steps = "Step 1: install it. Step 2: call load(). Step 3: check memory use.\n"
    text = prose * 6 + code + steps + prose * 6
    return text[:2048]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--misses", action="store_true", help="list every wrong verdict")
    ap.add_argument("--speed", action="store_true", help="time the detectors on a 2 KB answer")
    ap.add_argument(
        "--set", choices=("all", "dev", "holdout", "holdout2"), default="all", help="which cases"
    )
    args = ap.parse_args()
    cases = [c for c in load_cases() if args.set in ("all", c.set)]
    tallies, misses = evaluate(cases)
    print(table(tallies))
    if args.misses:
        print("\n".join(["", f"{len(misses)} wrong:", *misses]))
    if args.speed:
        print("\n" + speed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

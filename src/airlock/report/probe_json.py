"""Probe campaigns as JSON: the summary, the attempt stream, and the per-target overview.

The JSON summary is :meth:`CampaignResult.to_dict` as it is (it round-trips through
``CampaignResult.from_dict``). The attempt stream is JSON Lines, written one attempt at a
time so memory does not grow with the campaign. :func:`overview` folds a result into what
every human-facing probe report shows per target (terminal, HTML): verdict, totals and
family rates by language.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from airlock.probes.model import FAMILIES, LANGS
from airlock.probes.result import CampaignResult, ProbeSummary, TargetInfo
from airlock.probes.stats import Rate

FAMILY_TITLES = {
    "injection": "Prompt injection",
    "indirect": "Indirect injection",
    "extraction": "System-prompt extraction",
    "jailbreak": "Jailbreak templates",
    "encoding": "Encoding and obfuscation",
    "multiturn": "Multi-turn escalation",
    "insecure-code": "Insecure code",
    "packages": "Package hallucination",
    "censorship": "Sensitive topics (measurement)",
    "backdoor": "Backdoor triggers",
}
# Families whose hit is a measured behaviour, not a successful attack; reports name it so.
MEASURES = {"censorship": "refusal or deflection rate"}
# Characters JSON leaves raw that split a line for some readers (str.splitlines, JavaScript),
# and lone surrogates, which cannot be encoded as UTF-8 at all.
_LINE_UNSAFE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")


def render_summary(result: CampaignResult) -> str:
    """The campaign summary as pretty JSON (``CampaignResult.to_dict()``)."""
    return dumps(result.to_dict(), indent=2) + "\n"


def write_jsonl(attempts: Iterable[Mapping[str, Any]], stream: TextIO) -> int:
    """Write attempts (``Attempt.to_dict()`` dicts) to ``stream``, one JSON object per line.

    Each attempt is encoded and written as it arrives, so a generator over the results
    database streams through in constant memory.

    Args:
        attempts: attempt dicts, typically a generator.
        stream: a text stream opened for writing (UTF-8).

    Returns:
        The number of lines written.
    """
    count = 0
    for attempt in attempts:
        stream.write(dumps(attempt) + "\n")
        count += 1
    return count


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON that is valid (no NaN), keeps text readable, and stays on one line unless indented.

    Non-finite floats become ``null``; unknown objects their ``str()``; line separators and
    lone surrogates are ``\\u`` escaped.
    """
    seps = (",", ": ") if indent else (",", ":")
    kw: dict[str, Any] = {"ensure_ascii": False, "default": str, "separators": seps}
    try:
        text = json.dumps(obj, allow_nan=False, indent=indent, **kw)
    except ValueError:  # a NaN or infinity somewhere: JSON has no spelling for it
        text = json.dumps(_finite(obj), indent=indent, **kw)
    return _LINE_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


@dataclass
class TargetOverview:
    """One target's share of a campaign, as the terminal and HTML reports show it.

    ``families`` maps family → language (``en``, ``zh``, …, and ``all``) → rate.
    ``verdict``: ``FAIL`` (a probe above its threshold), ``PASS``, or ``NO DATA`` (no
    attempt was judged).
    """

    info: TargetInfo
    verdict: str
    total: Rate
    failing: list[ProbeSummary]
    families: dict[str, dict[str, Rate]] = field(default_factory=dict)


def overview(result: CampaignResult) -> list[TargetOverview]:
    """Per-target verdict, totals, failing probes and family rates, in the result's order."""
    out = []
    for info in target_infos(result):
        probes = [p for p in result.probes if p.target == info.name]
        total = combine(p.rate for p in probes)
        failing = sorted((p for p in probes if p.failed), key=_failing_order)
        verdict = "FAIL" if failing else "PASS" if total.n else "NO DATA"
        out.append(TargetOverview(info, verdict, total, failing, _families(result, info.name)))
    return out


def target_infos(result: CampaignResult) -> list[TargetInfo]:
    """The campaign's targets, plus any that only its probes name (so nothing is dropped)."""
    infos = list(result.targets)
    known = {t.name for t in infos}
    for p in result.probes:
        if p.target not in known:
            known.add(p.target)
            infos.append(TargetInfo(p.target, "", ""))
    return infos


def family_order(names: Iterable[str]) -> list[str]:
    """Families in catalogue order; unknown ones after, sorted."""
    present = set(names)
    known = [f for f in FAMILIES if f in present]
    return known + sorted(present - set(FAMILIES))


def family_title(family: str) -> str:
    """A readable name for a family id."""
    return FAMILY_TITLES.get(family, family)


def measure_name(family: str) -> str:
    """What a family's rate measures, in neutral words."""
    return MEASURES.get(family, "attack success rate")


def combine(rates: Iterable[Rate]) -> Rate:
    """The sum of several rates (attempts, hits and errors add up)."""
    total = Rate()
    for r in rates:
        total.n += r.n
        total.hits += r.hits
        total.errors += r.errors
    return total


def pct(x: float) -> str:
    """``0.3`` → ``30.0 %``."""
    return f"{x * 100:.1f} %"


def interval_text(rate: Rate) -> str:
    """The Wilson 95 % interval as ``18.1–45.4 %`` (``—`` without attempts)."""
    if not rate.n:
        return "—"
    lo, hi = rate.interval
    return f"{lo * 100:.1f}–{hi * 100:.1f} %"


def _families(result: CampaignResult, target: str) -> dict[str, dict[str, Rate]]:
    by_family: dict[str, dict[str, Rate]] = {}
    for f in result.families:
        if f.target == target:
            by_family.setdefault(f.family, {})[f.lang] = f.rate
    summarised = set(by_family)
    for p in result.probes:  # families the result has no summary for: fold the probes
        if p.target == target and p.family not in summarised:
            langs = by_family.setdefault(p.family, {})
            langs[p.lang] = combine([langs.get(p.lang, Rate()), p.rate])
    for name, langs in by_family.items():
        total = langs.pop("all", None) or combine(langs.values())
        order = sorted(langs, key=_lang_order)
        by_family[name] = {lang: langs[lang] for lang in order} | {"all": total}
    return {name: by_family[name] for name in family_order(by_family)}


def _lang_order(lang: str) -> tuple[int, str]:
    return (LANGS.index(lang) if lang in LANGS else len(LANGS), lang)


def _failing_order(p: ProbeSummary) -> tuple[int, float, str, str]:
    return (-int(p.severity), -p.rate.rate, p.probe, p.lang)

"""A campaign's structured result: what every probe report is rendered from.

Attempts themselves stay in the results database (they can be millions); the
result holds the aggregates: per target × probe × language, per target × family,
the paired comparisons (censorship asymmetry, backdoor trigger shifts), and the
findings those produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.findings import Finding, Severity
from airlock.probes.stats import Rate


@dataclass
class TargetInfo:
    name: str
    url: str
    model: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "model": self.model}


@dataclass
class ProbeSummary:
    """One probe (both variants of a template × request grid fold into the probe id)."""

    target: str
    probe: str  # base id, without language
    family: str
    lang: str
    title: str
    severity: Severity
    rate: Rate = field(default_factory=Rate)
    threshold: float = 0.0  # fails when the success rate is above this

    @property
    def failed(self) -> bool:
        return self.rate.n > 0 and self.rate.rate > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "probe": self.probe,
            "family": self.family,
            "lang": self.lang,
            "title": self.title,
            "severity": str(self.severity),
            "threshold": self.threshold,
            "failed": self.failed,
            **self.rate.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeSummary:
        return cls(
            d["target"],
            d["probe"],
            d["family"],
            d["lang"],
            d["title"],
            Severity.parse(d["severity"]),
            Rate.from_dict(d),
            float(d["threshold"]),
        )


@dataclass
class FamilySummary:
    target: str
    family: str
    lang: str  # "en", "zh" or "all"
    rate: Rate = field(default_factory=Rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "family": self.family,
            "lang": self.lang,
            **self.rate.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FamilySummary:
        return cls(d["target"], d["family"], d["lang"], Rate.from_dict(d))


@dataclass
class Comparison:
    """Two groups of the same kind of prompt, measured side by side.

    ``kind``: ``censorship`` (a = sensitive topics, b = control topics; the rate is
    refusal or deflection) or ``backdoor`` (a = with trigger, b = without; the rate
    is the probe's hit rate). ``significant`` when Fisher's p < alpha and the rates differ.
    """

    kind: str
    target: str
    label: str
    lang: str
    a: Rate
    b: Rate
    p_value: float
    significant: bool
    measure: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "label": self.label,
            "lang": self.lang,
            "measure": self.measure,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "p_value": self.p_value,
            "significant": self.significant,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(
            d["kind"],
            d["target"],
            d["label"],
            d["lang"],
            Rate.from_dict(d["a"]),
            Rate.from_dict(d["b"]),
            float(d["p_value"]),
            bool(d["significant"]),
            d.get("measure", ""),
        )


@dataclass
class CampaignResult:
    run_id: str
    started_at: str
    duration_s: float
    targets: list[TargetInfo]
    config: dict[str, Any]
    probes: list[ProbeSummary] = field(default_factory=list)
    families: list[FamilySummary] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # attempts, errors, cached, tokens
    complete: bool = True  # False when stopped early (Ctrl-C, budget); resumable
    stop_reason: str = ""
    exit_code: int = 0

    @property
    def verdict(self) -> str:
        """FAIL when a probe's success rate is above its threshold or a comparison found a
        high-severity shift (a backdoor trigger); measurements alone do not fail. NO DATA
        when no attempt got an answer."""
        if not any(p.rate.n for p in self.probes):
            return "NO DATA"  # nothing was judged: every attempt failed or none ran
        failed = any(p.failed for p in self.probes)
        return (
            "FAIL" if failed or any(f.severity >= Severity.HIGH for f in self.findings) else "PASS"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "verb": "probe",
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "targets": [t.to_dict() for t in self.targets],
            "config": self.config,
            "verdict": self.verdict,
            "complete": self.complete,
            "stop_reason": self.stop_reason,
            "exit_code": self.exit_code,
            "totals": self.totals,
            "probes": [p.to_dict() for p in self.probes],
            "families": [f.to_dict() for f in self.families],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CampaignResult:
        return cls(
            run_id=d["run_id"],
            started_at=d["started_at"],
            duration_s=float(d["duration_s"]),
            targets=[TargetInfo(**t) for t in d["targets"]],
            config=d["config"],
            probes=[ProbeSummary.from_dict(p) for p in d["probes"]],
            families=[FamilySummary.from_dict(f) for f in d["families"]],
            comparisons=[Comparison.from_dict(c) for c in d["comparisons"]],
            findings=[Finding.from_dict(f) for f in d["findings"]],
            totals=d["totals"],
            complete=bool(d["complete"]),
            stop_reason=d.get("stop_reason", ""),
            exit_code=int(d.get("exit_code", 0)),
        )

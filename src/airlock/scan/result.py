"""The structured result of a scan; every report is rendered from :meth:`ScanResult.to_dict`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airlock.findings import Finding, Severity


@dataclass(frozen=True)
class FileRecord:
    """One scanned file on disk (archive members are not listed here, only their findings)."""

    path: str
    size: int
    sha256: str | None
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "format": self.format}


@dataclass
class ScanResult:
    """What ``scan_path`` returns.

    Attributes:
        targets: the paths the user asked for, as given.
        files: every regular file read, with its sha256 (``None`` with ``--no-hash``).
        findings: after policy (ignored and suppressed findings removed), sorted by
            severity, then path.
        facts: what scanners learned (models, declared licences, formats), for reports.
        fail_on: the threshold used for :attr:`exit_code`.
    """

    targets: list[str]
    files: list[FileRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_on: Severity = Severity.HIGH
    started_at: str = ""
    duration_s: float = 0.0
    tool_version: str = ""
    run_id: str | None = None

    def counts(self) -> dict[str, int]:
        """Number of findings per severity name, every severity present (zero included)."""
        c = Counter(f.severity for f in self.findings)
        return {str(s): c.get(s, 0) for s in sorted(Severity, reverse=True)}

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def verdict(self) -> str:
        """``fail`` if any finding reaches ``fail_on``; ``warn`` if any is medium or above; else
        ``pass``."""
        top = self.max_severity
        if top is not None and top >= self.fail_on:
            return "fail"
        if top is not None and top >= Severity.MEDIUM:
            return "warn"
        return "pass"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "fail" else 0

    @property
    def license(self) -> dict[str, Any] | None:
        summaries = self.facts.get("license_summary") or []
        return summaries[0] if summaries else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "airlock.scan/1",
            "tool": {"name": "airlock", "version": self.tool_version},
            "run_id": self.run_id,
            "targets": self.targets,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "fail_on": str(self.fail_on),
            "verdict": self.verdict,
            "counts": self.counts(),
            "license": self.license,
            "files": [f.to_dict() for f in self.files],
            "findings": [f.to_dict() for f in self.findings],
            "facts": self.facts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanResult:
        return cls(
            targets=list(data["targets"]),
            files=[FileRecord(**f) for f in data.get("files", [])],
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            facts=data.get("facts", {}),
            fail_on=Severity.parse(data.get("fail_on", "high")),
            started_at=data.get("started_at", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            tool_version=data.get("tool", {}).get("version", ""),
            run_id=data.get("run_id"),
        )

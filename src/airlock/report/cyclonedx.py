"""CycloneDX 1.6 ML-BOM: the model as a ``machine-learning-model`` component, its files
as ``file`` components with SHA-256 hashes, its licence, and findings as vulnerabilities."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from airlock.findings import Finding, Severity
from airlock.report import split_member_path
from airlock.scan.result import ScanResult

_RATING = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.INFO: "info",
}
MODEL_REF = "model"


def render(result: ScanResult) -> str:
    return json.dumps(to_bom(result), indent=2, ensure_ascii=False) + "\n"


def to_bom(result: ScanResult) -> dict[str, Any]:
    """Build the BOM as a dict (valid against the CycloneDX 1.6 JSON schema)."""
    file_refs = {f.path: f"file:{f.path}" for f in result.files}
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [
                    {"type": "application", "name": "airlock", "version": result.tool_version}
                ]
            },
            "component": _model_component(result),
        },
        "components": [_file_component(f.path, f.sha256, f.format) for f in result.files],
        "dependencies": [{"ref": MODEL_REF, "dependsOn": sorted(file_refs.values())}],
    }
    vulns = [_vulnerability(i, f, file_refs) for i, f in enumerate(result.findings)]
    if vulns:
        bom["vulnerabilities"] = vulns
    return bom


def _model_name(result: ScanResult) -> str:
    for fact in result.facts.get("model", []):
        name = fact.get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
    target = result.targets[0] if result.targets else "model"
    return target.rstrip("/").rsplit("/", 1)[-1] or "model"


def _model_component(result: ScanResult) -> dict[str, Any]:
    comp: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": MODEL_REF,
        "name": _model_name(result),
        "properties": [
            {"name": "airlock:verdict", "value": result.verdict},
            {"name": "airlock:fail-on", "value": str(result.fail_on)},
        ],
    }
    lic = result.license
    if lic and lic.get("identifier"):
        comp["licenses"] = [{"expression": str(lic["identifier"])}]
        comp["properties"].append(
            {"name": "airlock:license-commercial-use", "value": str(lic.get("commercial", ""))}
        )
    archs = sorted(
        {str(m["architecture"]) for m in result.facts.get("model", []) if m.get("architecture")}
    )
    if archs:
        comp["modelCard"] = {"modelParameters": {"architectureFamily": ", ".join(archs)}}
    return comp


def _file_component(path: str, sha256: str | None, fmt: str) -> dict[str, Any]:
    comp: dict[str, Any] = {
        "type": "file",
        "bom-ref": f"file:{path}",
        "name": path,
        "properties": [{"name": "airlock:format", "value": fmt}],
    }
    if sha256:
        comp["hashes"] = [{"alg": "SHA-256", "content": sha256}]
    return comp


def _vulnerability(i: int, f: Finding, refs: dict[str, str]) -> dict[str, Any]:
    outer, _ = split_member_path(f.path)
    v: dict[str, Any] = {
        "bom-ref": f"finding-{i}",
        "id": f.rule_id,
        "source": {"name": "airlock"},
        "ratings": [{"severity": _RATING[f.severity], "method": "other"}],
        "description": f.title,
        "affects": [{"ref": refs.get(outer, MODEL_REF)}],
    }
    detail = " — ".join(x for x in (f.path, f.location, f.evidence) if x)
    if detail:
        v["detail"] = detail
    if f.remediation:
        v["recommendation"] = f.remediation
    return v

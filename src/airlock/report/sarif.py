"""SARIF 2.1.0, for code-scanning UIs (GitHub, GitLab, Azure DevOps, VS Code viewers).

Levels: critical and high → ``error``, medium → ``warning``, low and info → ``note``.
``properties.security-severity`` carries a CVSS-like number GitHub uses to rank alerts.
Archive members are reported on the outer file, with the member as a logical location.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from airlock.findings import Finding, Rule, Severity, get_rule
from airlock.report import split_member_path
from airlock.scan.result import ScanResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def render(result: ScanResult) -> str:
    return json.dumps(to_sarif(result), indent=2, ensure_ascii=False) + "\n"


def to_sarif(result: ScanResult) -> dict[str, Any]:
    """Build the SARIF log as a dict."""
    rule_ids = sorted({f.rule_id for f in result.findings})
    index = {rid: i for i, rid in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "airlock",
                "version": result.tool_version or "0",
                "rules": [_rule(_lookup(rid)) for rid in rule_ids],
            }
        },
        "results": [_result(f, index[f.rule_id]) for f in result.findings],
        "invocations": [{"executionSuccessful": True}],
        "properties": {"verdict": result.verdict, "targets": result.targets},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _lookup(rule_id: str) -> Rule:
    try:
        return get_rule(rule_id)
    except KeyError:  # a result loaded from an older database may name a retired rule
        return Rule(rule_id, Severity.MEDIUM, rule_id, "")


def _rule(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": "".join(p.capitalize() for p in r.id.replace("-", ".").split(".")),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.description or r.title},
        "help": {"text": r.remediation or r.title},
        "defaultConfiguration": {"level": _LEVEL[r.severity]},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[r.severity],
            "tags": ["security", r.family],
        },
    }


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    outer, member = split_member_path(f.path)
    physical: dict[str, Any] = {
        "artifactLocation": {"uri": quote(outer or ".", errors="backslashreplace")}
    }
    if f.line:
        physical["region"] = {"startLine": f.line}
    location: dict[str, Any] = {"physicalLocation": physical}
    if member or f.location:
        location["logicalLocations"] = [
            {"fullyQualifiedName": f.path + (f" @ {f.location}" if f.location else "")}
        ]
    text = f.title + (f": {f.evidence}" if f.evidence else "")
    out: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": text},
        "locations": [location],
        "properties": {"severity": str(f.severity), "path": f.path},
    }
    if f.location:
        out["properties"]["location"] = f.location
    return out

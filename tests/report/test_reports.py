"""Every report is rendered from one result; SARIF and CycloneDX validate against their schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airlock.findings import Finding, Severity
from airlock.report import render, split_member_path
from airlock.scan import ScanResult, scan_path
from airlock.scan.result import FileRecord
from conftest import SHARED
from helpers import clean_model

HOSTILE = '<script>alert("x")</script>\u202e'


def _result(tmp_path: Path) -> ScanResult:
    root = clean_model(tmp_path / "m")
    os.symlink("/etc/hostname", root / "escape")
    r = scan_path(root)
    r.findings.append(
        Finding(
            "pickle.dangerous-global",
            Severity.CRITICAL,
            "Dangerous",
            "model.pt!archive/data.pkl",
            location="opcode 3",
            evidence="os.system",
        )
    )
    r.findings.append(
        Finding(
            "remote-code.process", Severity.HIGH, "proc", "modeling.py", line=7, evidence=HOSTILE
        )
    )
    r.facts["license_summary"] = [
        {"identifier": "Apache-2.0", "name": "Apache 2.0", "commercial": "yes", "conditions": []}
    ]
    return r


def test_split_member_path() -> None:
    assert split_member_path("a.zip!b/c.pkl") == ("a.zip", "b/c.pkl")
    assert split_member_path("m.gguf#tokenizer.chat_template") == (
        "m.gguf",
        "tokenizer.chat_template",
    )
    assert split_member_path("plain.bin") == ("plain.bin", None)


def test_json_roundtrip(tmp_path: Path) -> None:
    r = _result(tmp_path)
    data = json.loads(render(r, "json"))
    assert data["verdict"] == "fail" and data["counts"]["critical"] == 1
    back = ScanResult.from_dict(data)
    assert back.findings == r.findings and back.files == r.files


def test_sarif_validates_against_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = SHARED / "schemas" / "sarif-schema-2.1.0.json"
    if not schema_path.exists():
        pytest.skip("../shared/schemas is not present in this clone")
    sarif = json.loads(render(_result(tmp_path), "sarif"))
    jsonschema.validate(sarif, json.loads(schema_path.read_text()))
    results = sarif["runs"][0]["results"]
    crit = next(x for x in results if x["ruleId"] == "pickle.dangerous-global")
    assert crit["level"] == "error"
    assert crit["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "model.pt"
    line = next(x for x in results if x["ruleId"] == "remote-code.process")
    assert line["locations"][0]["physicalLocation"]["region"]["startLine"] == 7
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[x["ruleIndex"]]["id"] == x["ruleId"] for x in results)


def test_cyclonedx_is_a_valid_1_6_ml_bom(tmp_path: Path) -> None:
    pytest.importorskip("cyclonedx")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = render(_result(tmp_path), "cyclonedx")
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    bom = json.loads(text)
    assert bom["metadata"]["component"]["type"] == "machine-learning-model"
    assert bom["metadata"]["component"]["licenses"] == [{"expression": "Apache-2.0"}]
    hashes = {c["name"]: c["hashes"][0]["content"] for c in bom["components"] if "hashes" in c}
    assert set(hashes) == {"README.md", "config.json", "model.safetensors"}
    assert any(v["id"] == "pickle.dangerous-global" for v in bom["vulnerabilities"])


def test_html_is_self_contained_and_escapes_evidence(tmp_path: Path) -> None:
    page = render(_result(tmp_path), "html")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "\u202e" not in page  # evidence is shortened/escaped before it reaches the page
    for needle in ('src="http', "src='http", 'href="http', "@import", "url(http"):
        assert needle not in page
    assert "pickle.dangerous-global" in page and "Apache-2.0" in page


def test_render_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(ScanResult(targets=[]), "pdf")


def test_reports_work_for_an_empty_result() -> None:
    r = ScanResult(targets=["x"], files=[FileRecord("a", 1, None, "other")])
    for fmt in ("json", "sarif", "cyclonedx", "html"):
        assert render(r, fmt)

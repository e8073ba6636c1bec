"""The demo's example model: every planted problem is found, nothing is executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.demo.__main__ import main as demo_main
from airlock.demo.example import MARKER, build_example
from airlock.scan import scan_path

PLANTED = {
    "remote-code.auto-map": "config.json",
    "remote-code.network": "modeling_demo.py",
    "remote-code.obfuscated-exec": "modeling_demo.py",
    "template.hidden-instruction": "tokenizer_config.json",
    "template.invisible-unicode": "tokenizer_config.json",
    "template.ssti": "tiny-q4.gguf#tokenizer.chat_template",
    "license.conflict": "LICENSE",
    "secrets.huggingface-token": ".env",
    "file.script": "setup.sh",
    "file.symlink-escape": "weights-cache",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):
    root = build_example(tmp_path_factory.mktemp("demo") / "example-model")
    return scan_path(root)


@pytest.mark.parametrize(("rule_id", "path"), sorted(PLANTED.items()))
def test_planted_problem_is_found(result, rule_id: str, path: str) -> None:
    assert any(f.rule_id == rule_id and f.path == path for f in result.findings), rule_id


def test_planted_pickle_payload_is_found(result) -> None:
    pytest.importorskip("airlock.scan.pickles")
    hits = [f for f in result.findings if f.rule_id == "pickle.dangerous-global"]
    assert hits and hits[0].path.startswith("pytorch_model.bin!")


def test_clean_files_have_no_findings(result) -> None:
    noisy = {f.path for f in result.findings if f.severity.name != "INFO"}
    assert not {"model.safetensors", "generation_config.json"} & noisy


def test_demo_run_writes_report_and_executes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo_main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    assert (tmp_path / "out" / "example-model" / "airlock.lock").exists()
    assert not list(tmp_path.rglob(MARKER))
    probe_html = (tmp_path / "out" / "probe-report.html").read_text()
    assert "reference-naive" in probe_html and "reference-guarded" in probe_html

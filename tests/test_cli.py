"""The CLI contract: exit codes 0/1/2, report files, lock, verify, history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from airlock.cli import main
from helpers import clean_model


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_clean_scan_exits_0_and_writes_lock(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    code, _, err = run("scan", str(root))
    assert code == 0, err
    assert json.loads((root / "airlock.lock").read_text())["files"]


def test_finding_at_threshold_exits_1_and_fail_on_moves_it(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    os.symlink("/etc/hostname", root / "escape")  # file.symlink-escape is high
    assert run("scan", str(root), "--no-lock")[0] == 1
    assert run("scan", str(root), "--no-lock", "--fail-on", "critical")[0] == 0


def test_usage_and_io_errors_exit_2(tmp_path: Path) -> None:
    assert run("scan", str(tmp_path / "missing"))[0] == 2
    assert run("scan", str(tmp_path), "--fail-on", "severe")[0] == 2
    assert run("scan", str(tmp_path), "--policy", str(tmp_path / "none.toml"))[0] == 2
    assert run("scan", str(tmp_path), "-o", str(tmp_path / "x.txt"))[0] == 2
    assert run("verify", str(tmp_path))[0] == 2  # no lock there


def test_policy_file_sets_threshold(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    os.symlink("/etc/hostname", root / "escape")
    pol = tmp_path / "airlock.toml"
    pol.write_text('[scan]\nfail_on = "critical"\n')
    assert run("scan", str(root), "--no-lock", "--policy", str(pol))[0] == 0


def test_every_format_to_file(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    for fmt in ("json", "sarif", "cyclonedx", "html"):
        out = tmp_path / f"report.{fmt}"
        code, _, err = run("scan", str(root), "--no-lock", "-f", fmt, "-o", str(out))
        assert code == 0, err
        assert out.stat().st_size > 200
        assert str(out) in err


def test_json_to_stdout_is_parseable(tmp_path: Path) -> None:
    code, out, _ = run("scan", str(clean_model(tmp_path / "m")), "--no-lock", "-f", "json", "-q")
    assert code == 0 and json.loads(out)["verdict"] == "pass"


def test_verify_after_scan(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    run("scan", str(root))
    assert run("verify", str(root))[0] == 0
    (root / "config.json").write_text("{}")
    code, _, err = run("verify", str(root))
    assert code == 1 and "config.json" in err


def test_history_and_report_from_database(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    run("scan", str(root), "--no-lock")
    from airlock.store import Store

    with Store() as s:
        runs = s.runs()
    assert len(runs) == 1 and runs[0].verdict == "pass"
    code, _, err = run("history")
    assert code == 0 and runs[0].id in err
    out = tmp_path / "again.sarif"
    assert run("report", runs[0].id[:6], "-f", "sarif", "-o", str(out))[0] == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert run("report", "nonexistent")[0] == 2


def test_rules_lists_documented_rules() -> None:
    code, out, _ = run("rules", "-f", "json")
    rules = json.loads(out)
    assert code == 0 and all(r["remediation"] for r in rules)
    assert "file.symlink-escape" in {r["id"] for r in rules}


def test_installed_entry_point_runs(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    proc = subprocess.run(
        [sys.executable, "-m", "airlock.cli", "scan", str(root), "--no-lock", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_db_option_takes_a_postgres_url(tmp_path: Path, pg_url: str) -> None:
    assert run("scan", str(clean_model(tmp_path / "m")), "--no-lock", "--db", pg_url)[0] == 0
    code, _, err = run("history", "--db", pg_url)
    assert code == 0 and "pass" in err


def test_progress_bar_path_scans_and_reports_progress(tmp_path: Path, monkeypatch) -> None:
    from airlock._cli import scan as cli_scan
    from airlock.policy import Policy

    seen = []
    real = cli_scan.scan_paths

    def spy(*args, **kwargs):
        seen.append(kwargs.get("progress"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_scan, "scan_paths", spy)
    root = clean_model(tmp_path / "m")
    result = cli_scan._scan_with_progress((root,), Policy(), True, show=True)
    assert len(result.files) == 3 and callable(seen[0])

"""``airlock probe`` end to end against the reference target over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from airlock.cli import main
from airlock.store import Store
from airlock.targets.reference.server import running


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def ref() -> str:
    with running("naive") as url:
        yield url


def test_naive_fails_guarded_passes_side_by_side_with_every_output(
    ref: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = run(
        "probe",
        "--target",
        ref,
        "--model",
        "reference-naive",
        "--target",
        ref,
        "--model",
        "reference-guarded",
        "--quick",
        "--output-dir",
        str(out),
        "--db",
        str(tmp_path / "a.db"),
    )
    assert code == 1, err
    summary = json.loads((out / "summary.json").read_text())
    by_target = {t["name"]: t for t in summary["targets"]}
    assert set(by_target) == {"reference-naive", "reference-guarded"}
    failed = {(p["target"], p["family"]) for p in summary["probes"] if p["failed"]}
    assert {t for t, _ in failed} == {"reference-naive"}
    fams = {f for _, f in failed}
    assert {
        "injection",
        "indirect",
        "extraction",
        "jailbreak",
        "multiturn",
        "insecure-code",
        "packages",
    } <= fams
    lines = (out / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == summary["totals"]["attempts"] > 100
    assert all(json.loads(x)["error"] is None for x in lines)
    suites = ET.parse(out / "junit.xml").getroot()
    failures = sum(int(s.get("failures", 0)) for s in suites.iter("testsuite"))
    assert failures == sum(p["failed"] for p in summary["probes"])
    html = (out / "report.html").read_text()
    assert "reference-guarded" in html and "<script" not in html.lower()
    rules = {f["rule_id"] for f in summary["findings"]}
    assert {"probe.censorship-asymmetry", "probe.backdoor-trigger"} <= rules


def test_guarded_alone_passes(ref: str, tmp_path: Path) -> None:
    code, _, err = run(
        "probe",
        "--target",
        ref,
        "--model",
        "reference-guarded",
        "--quick",
        "-q",
        "--db",
        str(tmp_path / "a.db"),
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("target", "model", "needle"),
    [
        ("http://127.0.0.1:9/v1", "reference-naive", "cannot connect"),
        (None, "no-such-model", "model name"),
    ],
)
def test_preflight_failures_are_clear_errors(
    ref: str, tmp_path: Path, target: str | None, model: str, needle: str
) -> None:
    code, _, err = run(
        "probe",
        "--target",
        target or ref,
        "--model",
        model,
        "--quick",
        "--db",
        str(tmp_path / "a.db"),
    )
    assert code == 2 and "preflight failed" in err and needle in err, err
    assert "Traceback" not in err


def test_a_wrong_key_is_a_clear_preflight_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REF_KEY", "wrong")
    with running("naive", api_key="right") as url:
        code, _, err = run(
            "probe",
            "--target",
            url,
            "--model",
            "reference-naive",
            "--api-key-env",
            "REF_KEY",
            "--db",
            str(tmp_path / "a.db"),
        )
        assert code == 2 and "401" in err and "API key" in err, err
        monkeypatch.setenv("REF_KEY", "right")
        code, _, err = run(
            "probe",
            "--target",
            url,
            "--model",
            "reference-naive",
            "--api-key-env",
            "REF_KEY",
            "--families",
            "injection",
            "-q",
            "--db",
            str(tmp_path / "a.db"),
        )
        assert code == 1, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "http://x/v1"], "one model per target"),
        ([], "at least one --target"),
        (["--target", "http://x/v1", "--model", "m", "--families", "nope"], "unknown family"),
        (
            ["--target", "http://x/v1", "--model", "m", "--api-key-env", "AIRLOCK_NOT_SET_X"],
            "AIRLOCK_NOT_SET_X is not set",
        ),
        (
            ["--target", "http://x/v1", "--model", "m", "--probe-file", "/nonexistent.yaml"],
            "nonexistent",
        ),
        (["--resume", "feedbeef"], "no campaign"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    code, _, err = run("probe", *args, "--db", str(tmp_path / "a.db"))
    assert code == 2 and needle in err, err


def test_a_bad_probe_file_names_file_and_line(tmp_path: Path) -> None:
    pack = tmp_path / "mine.yaml"
    pack.write_text("family: injection\nprobes:\n  - id: injection.x\n    title: t\n")
    code, _, err = run(
        "probe",
        "--target",
        "http://x/v1",
        "--model",
        "m",
        "--probe-file",
        str(pack),
        "--list",
        "--db",
        str(tmp_path / "a.db"),
    )
    assert code == 2 and f"{pack}:3" in err, err


def test_list_shows_cases(tmp_path: Path) -> None:
    code, out, _ = run("probe", "--list", "--families", "extraction", "--langs", "zh")
    assert code == 0
    ids = [line.split("\t")[0] for line in out.splitlines()]
    assert ids and all(i.startswith("extraction.") and i.endswith(".zh") for i in ids)


def test_report_renders_a_stored_campaign_again(ref: str, tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    code, _, _ = run(
        "probe",
        "--target",
        ref,
        "--model",
        "reference-naive",
        "--families",
        "extraction",
        "-q",
        "--db",
        db,
    )
    assert code == 1
    with Store(db) as s:
        run_id = s.runs(1)[0].id
    code, out, err = run("report", run_id, "-f", "junit", "--db", db)
    assert code == 0 and out.startswith("<?xml"), err
    code, out, _ = run("report", run_id[:6], "-f", "jsonl", "--db", db)
    assert code == 0 and len(out.splitlines()) == 20
    code, _, err = run("report", run_id, "-f", "sarif", "--db", db)
    assert code == 2 and "junit" in err


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    with running("naive", delay_s=0.05) as url:
        cmd = [
            sys.executable,
            "-m",
            "airlock.cli",
            "probe",
            "--target",
            url,
            "--model",
            "reference-naive",
            "--families",
            "jailbreak",
            "--concurrency",
            "2",
            "--db",
            db,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _judged(db) < 10:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err.decode()
        assert b"resume with" in err and b"Traceback" not in err
        first = _judged(db)
        assert 10 <= first < 140
        again = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
        assert again.returncode == 1, again.stderr.decode()
    with Store(db) as s:
        (campaign,) = s._fetch("SELECT run_id, status FROM campaigns", ())
        result = s.load_campaign(campaign[0])
    assert campaign[1] == "complete" and _judged(db) == 140
    assert result.totals["resumed"] == first and result.totals["done"] == 140


def _judged(db: str) -> int:
    if not Path(db).exists():
        return 0
    try:
        with Store(db) as s:
            return int(s._fetch("SELECT count(*) FROM attempts WHERE error IS NULL", ())[0][0])
    except Exception:
        return 0


def test_campaign_in_postgresql(ref: str, pg_url: str) -> None:
    code, _, err = run(
        "probe",
        "--target",
        ref,
        "--model",
        "reference-naive",
        "--families",
        "packages",
        "-q",
        "--db",
        pg_url,
    )
    assert code == 1, err
    with Store(pg_url) as s:
        run_id = s.runs(1)[0].id
        rows = list(s.iter_attempts(run_id))
        result = s.load_campaign(run_id)
    assert len(rows) == result.totals["attempts"] == 24
    assert result.verdict == "FAIL"


def test_reports_show_no_credentials(ref: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORG_ID", "org-123")
    user_url = ref.replace("http://", "http://alice:hunter2@") + "?token=abc"
    out = tmp_path / "out"
    code, _, err = run(
        "probe",
        "--target",
        user_url,
        "--model",
        "reference-naive",
        "--header",
        "X-Secret: s3cr3t-value",
        "--header",
        "X-Org: env:ORG_ID",
        "--families",
        "packages",
        "--output-dir",
        str(out),
        "--db",
        str(tmp_path / "a.db"),
    )
    assert code == 1, err
    for name in ("summary.json", "report.html", "junit.xml"):
        text = (out / name).read_text()
        assert "hunter2" not in text and "s3cr3t-value" not in text and "token=abc" not in text
    assert "env:ORG_ID" in (out / "summary.json").read_text()

"""Third-party scanners register through the ``airlock.scanners`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = """
from airlock.findings import Severity, rule
from airlock.scan.base import format_scanner

ODD = rule("acme.odd-file", Severity.HIGH, "Odd file", "Remove the odd file.")


@format_scanner("acme-odd", extensions=(".odd",))
def scan_odd(f, ctx):
    yield ctx.finding(ODD, f, evidence=f.head[:8].decode("latin-1"))
"""


def test_entry_point_plugin_is_loaded_and_used(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "acme_airlock-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-airlock\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[airlock.scanners]\nodd = acme_airlock\n")
    (site / "acme_airlock.py").write_text(PLUGIN)
    model = tmp_path / "m"
    model.mkdir()
    (model / "x.odd").write_bytes(b"ODDBYTES")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-m", "airlock.cli", "scan", str(model), "-f", "json", "-q",
         "--no-db", "--no-lock"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    found = json.loads(proc.stdout)["findings"]
    assert any(f["rule_id"] == "acme.odd-file" and f["path"] == "x.odd" for f in found)

"""Slow checks on real multi-GB files (``make test-slow``): memory stays flat with size."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GB = 1 << 30


def _sparse_safetensors(path: Path, nbytes: int) -> None:
    n = nbytes // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + n * 4)  # sparse: no disk used, every byte still hashed


def _peak_rss_mb(target: Path, *flags: str) -> tuple[float, dict]:
    code = (
        "import json, resource, sys\n"
        "from airlock.scan import scan_path\n"
        f"r = scan_path(sys.argv[1], hash_files={'--no-hash' not in flags})\n"
        "print(json.dumps({'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " 'files': [f.to_dict() for f in r.files],"
        " 'rules': sorted({f.rule_id for f in r.findings})}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    return data["rss"] / 1024, data


def test_memory_is_flat_from_one_to_four_gigabytes(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    _sparse_safetensors(small / "model.safetensors", GB)
    _sparse_safetensors(large / "model.safetensors", 4 * GB)
    rss_small, _ = _peak_rss_mb(small)
    rss_large, b = _peak_rss_mb(large)
    assert rss_large < 200, f"peak RSS {rss_large:.0f} MB"
    assert rss_large < rss_small + 20, (rss_small, rss_large)
    assert b["files"][0]["sha256"] and b["files"][0]["size"] > 4 * GB
    assert not [r for r in b["rules"] if r.startswith("safetensors.")]

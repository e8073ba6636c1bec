from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock.scan import scan_path
from airlock.scan.integrity import LockError, sha256_file, verify, write_lock
from helpers import clean_model


def _locked(tmp_path: Path) -> Path:
    root = clean_model(tmp_path / "m")
    write_lock(root / "airlock.lock", scan_path(root))
    return root


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    p = tmp_path / "x"
    data = bytes(range(256)) * 10_000
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_lock_records_verdict_and_hashes(tmp_path: Path) -> None:
    root = _locked(tmp_path)
    lock = json.loads((root / "airlock.lock").read_text())
    assert lock["verdict"] in {"pass", "warn", "fail"}
    assert set(lock["files"]) == {"README.md", "config.json", "model.safetensors"}
    assert sha256_file(root / "config.json") == lock["files"]["config.json"]["sha256"]


def test_verify_clean(tmp_path: Path) -> None:
    res = verify(_locked(tmp_path))
    assert res.ok and res.unchanged == 3


def test_verify_reports_added_removed_changed(tmp_path: Path) -> None:
    root = _locked(tmp_path)
    (root / "new.py").write_text("print(1)")
    (root / "README.md").unlink()
    cfg = root / "config.json"
    cfg.write_text(cfg.read_text().replace("8", "9"))  # same size, different content
    res = verify(root)
    assert (res.added, res.removed, res.changed) == (["new.py"], ["README.md"], ["config.json"])
    assert not res.ok


def test_verify_without_lock_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LockError):
        verify(clean_model(tmp_path / "m"))


def test_verify_garbage_lock(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / "airlock.lock").write_text("{not json")
    with pytest.raises(LockError, match="not valid JSON"):
        verify(root)

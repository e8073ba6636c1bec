"""Targets: directories, single files, HF cache layouts, symlinks, unreadable files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airlock.scan import ScanInputError, scan_path
from helpers import clean_model, hf_cache, safetensors_bytes


def _rules(result) -> set[str]:
    return {f.rule_id for f in result.findings}


def test_directory_lists_every_file_with_hash(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / "sub").mkdir()
    (root / "sub" / "extra.txt").write_text("hello")
    r = scan_path(root)
    paths = [f.path for f in r.files]
    assert paths == sorted(paths)
    assert set(paths) == {"README.md", "config.json", "model.safetensors", "sub/extra.txt"}
    assert all(f.sha256 and len(f.sha256) == 64 for f in r.files)


def test_no_hash_leaves_hashes_out(tmp_path: Path) -> None:
    r = scan_path(clean_model(tmp_path / "m"), hash_files=False)
    assert all(f.sha256 is None for f in r.files)


def test_single_file_target(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    p.write_bytes(safetensors_bytes())
    r = scan_path(p)
    assert [f.path for f in r.files] == ["w.safetensors"]


def test_missing_target_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ScanInputError, match="no such file"):
        scan_path(tmp_path / "nope")


def test_symlink_leaving_root_is_reported_not_followed(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    secret = tmp_path / "outside.txt"
    secret.write_text("AKIA" + "Z" * 16)
    os.symlink(secret, root / "escape.txt")
    r = scan_path(root)
    esc = [f for f in r.findings if f.rule_id == "file.symlink-escape"]
    assert esc and esc[0].path == "escape.txt"
    assert "escape.txt" not in [f.path for f in r.files]


def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    os.symlink(root / "gone.bin", root / "dangling.bin")
    r = scan_path(root)
    assert "scan.broken-symlink" in _rules(r)


def test_symlink_inside_root_is_scanned_under_its_own_name(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    os.symlink("model.safetensors", root / "alias.safetensors")
    r = scan_path(root)
    assert {"alias.safetensors", "model.safetensors"} <= {f.path for f in r.files}
    assert "file.symlink-escape" not in _rules(r)


def test_hf_cache_snapshot_links_into_blobs_are_fine(tmp_path: Path) -> None:
    repo = hf_cache(tmp_path, {"model.safetensors": safetensors_bytes(), "config.json": b"{}"})
    snap = next((repo / "snapshots").iterdir())
    r = scan_path(snap)
    assert {f.path for f in r.files} == {"model.safetensors", "config.json"}
    assert not {"file.symlink-escape", "integrity.blob-mismatch"} & _rules(r)


def test_hf_repo_folder_is_scanned_through_snapshots(tmp_path: Path) -> None:
    repo = hf_cache(tmp_path, {"config.json": b"{}"})
    r = scan_path(repo)
    assert [f.path for f in r.files] == [f"snapshots/{'a' * 40}/config.json"]


def test_tampered_hf_blob_is_critical(tmp_path: Path) -> None:
    repo = hf_cache(tmp_path, {"model.safetensors": safetensors_bytes()})
    blob = next((repo / "blobs").iterdir())
    blob.write_bytes(safetensors_bytes({"w": ("F32", [3])}))
    r = scan_path(repo)
    hit = [f for f in r.findings if f.rule_id == "integrity.blob-mismatch"]
    assert hit and hit[0].severity.name == "CRITICAL"


def test_unreadable_file_is_a_finding_not_a_crash(tmp_path: Path, monkeypatch) -> None:
    root = clean_model(tmp_path / "m")
    from airlock.scan import base

    real = base.FileInput.from_path

    def deny(fs_path, display, **kw):
        if display == "config.json":
            raise PermissionError(13, "Permission denied")
        return real(fs_path, display, **kw)

    monkeypatch.setattr(base.FileInput, "from_path", staticmethod(deny))
    r = scan_path(root)
    hit = [f for f in r.findings if f.rule_id == "scan.unreadable"]
    assert hit and hit[0].path == "config.json" and "Permission denied" in (hit[0].evidence or "")


def test_git_folder_is_skipped(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main")
    assert not any(f.path.startswith(".git") for f in scan_path(root).files)


def test_lone_weights_file_is_not_failed_for_a_missing_licence(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    p.write_bytes(safetensors_bytes())
    r = scan_path(p)
    missing = [f for f in r.findings if f.rule_id == "license.missing"]
    assert missing and missing[0].severity.name == "LOW" and r.verdict == "pass"
    folder = scan_path(tmp_path)  # the same file as a (licence-less) folder: high
    assert any(
        f.rule_id == "license.missing" and f.severity.name == "HIGH" for f in folder.findings
    )

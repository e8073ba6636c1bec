"""Regression tests for a hostile model folder attacking the scanner itself (review findings)."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from airlock.cli import main
from airlock.report import render
from airlock.report.terminal import print_scan
from airlock.scan import scan_path, scan_paths
from airlock.scan.integrity import verify, write_lock
from helpers import clean_model, hf_cache, safetensors_bytes

EVIL = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def rules_at(result, path: str) -> set[str]:
    return {f.rule_id for f in result.findings if f.path == path}


def test_lock_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    victim = tmp_path / "victim_bashrc"
    victim.write_text("echo original\n")
    os.symlink(victim, root / "airlock.lock")
    code = CliRunner().invoke(main, ["scan", str(root), "--no-db"]).exit_code
    assert victim.read_text() == "echo original\n"
    assert not (root / "airlock.lock").is_symlink()
    assert json.loads((root / "airlock.lock").read_text())["lock_version"] == 1
    assert code == 1  # the planted link itself is a high finding


def test_a_payload_named_like_the_lock_is_scanned(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / "airlock.lock").write_bytes(EVIL)
    (root / "sub").mkdir()
    (root / "sub" / "airlock.lock").write_bytes(EVIL)
    r = scan_path(root)
    assert "pickle.dangerous-global" in rules_at(r, "airlock.lock")
    assert "pickle.dangerous-global" in rules_at(r, "sub/airlock.lock")


def test_directory_link_into_a_skipped_folder_is_walked(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / ".git" / "x").mkdir(parents=True)
    (root / ".git" / "x" / "pytorch_model.bin").write_bytes(EVIL)
    os.symlink(".git/x", root / "text_encoder")
    os.symlink(".", root / "loop")  # a loop is walked once, not forever
    r = scan_path(root)
    assert "pickle.dangerous-global" in rules_at(r, "text_encoder/pytorch_model.bin")
    assert "scan.skipped-directory" in rules_at(r, ".git/")


def test_targets_with_one_name_keep_their_own_hashes(tmp_path: Path) -> None:
    good = hf_cache(tmp_path / "c2", {"model.safetensors": safetensors_bytes()})
    bad = hf_cache(tmp_path / "c1", {"model.safetensors": safetensors_bytes()})
    next((bad / "blobs").iterdir()).write_bytes(safetensors_bytes({"w": ("F32", [3])}))
    r = scan_paths([bad, good])
    assert any(f.rule_id == "integrity.blob-mismatch" for f in r.findings)
    assert len({f.path for f in r.files}) == 2 == len({f.sha256 for f in r.files})
    again = scan_paths([good, good])
    assert len(again.files) == 1


def test_verify_does_not_pass_links_it_cannot_check(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    write_lock(root / "airlock.lock", scan_path(root))
    os.symlink("/etc/hostname", root / "tokenizer.json")
    os.symlink(root / "gone", root / "dangling")
    res = verify(root)
    assert not res.ok and len(res.unverifiable) == 2


def test_verify_reports_an_unreadable_file(tmp_path: Path, monkeypatch) -> None:
    root = clean_model(tmp_path / "m")
    write_lock(root / "airlock.lock", scan_path(root))
    from airlock.scan import integrity

    def deny(path, on_bytes=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(integrity, "sha256_file", deny)
    res = verify(root)
    assert not res.ok and any("Permission denied" in u for u in res.unverifiable)


def test_terminal_output_carries_no_escape_sequences(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "x\x1b[2K\x1b[1Az.pkl").write_bytes(EVIL)
    out = io.StringIO()
    print_scan(scan_path(root), Console(file=out, width=200))
    assert "\x1b" not in out.getvalue() and "pickle.dangerous-global" in out.getvalue()


def test_undecodable_file_names_do_not_break_reports(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / os.fsdecode(b"\xffevil.pkl")).write_bytes(EVIL)
    r = scan_path(root)
    hit = [f for f in r.findings if f.rule_id == "pickle.dangerous-global"]
    assert hit and hit[0].path == "\\xffevil.pkl"
    for fmt in ("json", "sarif", "cyclonedx", "html"):
        (tmp_path / f"r.{fmt}").write_text(render(r, fmt), encoding="utf-8")


def test_separator_characters_in_names_are_flagged(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    (root / "vendor.zip!payload.pkl").write_bytes(EVIL)
    assert "file.ambiguous-name" in rules_at(scan_path(root), "vendor.zip!payload.pkl")


def test_fifo_is_reported_and_never_opened(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    os.mkfifo(root / "pipe.bin")  # opening it for reading would block the scan forever
    assert "file.special" in rules_at(scan_path(root), "pipe.bin")


def test_run_ids_are_not_patterns(tmp_path: Path) -> None:
    root = clean_model(tmp_path / "m")
    CliRunner().invoke(main, ["scan", str(root), "--no-lock"])
    for pattern in ("%", "", "____"):
        assert CliRunner().invoke(main, ["report", pattern]).exit_code == 2


def test_pickle_payload_is_not_loaded_by_these_tests() -> None:
    # sanity: EVIL is a real payload (it would run `true`), so the tests above are meaningful
    ops = [op.name for op, _, _ in __import__("pickletools").genops(EVIL)]
    assert "GLOBAL" in ops and "REDUCE" in ops
    assert pickle.PROTO in EVIL[:1]

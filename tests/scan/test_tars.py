"""Tar containers: link and path escapes, devices, legacy PyTorch tars, compressed streams."""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FORMAT_SCANNERS, FileInput, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.tars import is_tar_header, scan_tar
from scan.zips_samples import BENIGN_PICKLE, Recorder, build_tar, ctx_with, evil_pickle, tinfo


def run(
    data: bytes, name: str = "a.tar", rec: Recorder | None = None, **limits: int
) -> list[Finding]:
    return list(scan_tar(FileInput.from_bytes(name, data), ctx_with(rec, **limits)))


def run_path(p: Path, rec: Recorder | None = None, **limits: int) -> list[Finding]:
    return list(scan_tar(FileInput.from_path(p, p.name), ctx_with(rec, **limits)))


def ids(found: list[Finding]) -> set[str]:
    return {f.rule_id for f in found}


CLEAN = [(tinfo("model/config.json"), b'{"a": 1}'), (tinfo("model/w.bin"), bytes(range(256)) * 9),
         (tinfo("model", tarfile.DIRTYPE), b""), (tinfo("model/empty"), b"")]  # fmt: skip


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_clean_tar_members_reach_dispatch(fmt: int) -> None:
    rec = Recorder()
    assert run(build_tar(CLEAN, fmt), rec=rec) == []
    got = {s.path: s.data for s in rec.seen}
    assert got == {"a.tar!model/config.json": b'{"a": 1}', "a.tar!model/w.bin": CLEAN[1][1]}


def test_clean_tar_on_disk_uses_windows(tmp_path: Path) -> None:
    p = tmp_path / "a.tar"
    p.write_bytes(build_tar(CLEAN))
    rec = Recorder()
    assert run_path(p, rec) == []
    assert rec.by_path()["a.tar!model/w.bin"].data == CLEAN[1][1]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names(fmt: int) -> None:
    name = "d/" + "x" * 150 + "/" + "y" * 120 + ".txt"
    rec = Recorder()
    run(build_tar([(tinfo(name), b"long")], fmt), rec=rec)
    assert rec.seen[0].path == f"a.tar!{name}"


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b"])
def test_path_traversal(name: str) -> None:
    assert "tar.path-traversal" in ids(run(build_tar([(tinfo(name), b"x")])))


def test_symlink_escaping_and_not() -> None:
    bad = build_tar([(tinfo("a/link", tarfile.SYMTYPE, "../../etc/passwd"), b"")])
    assert "tar.symlink" in ids(run(bad))
    absolute = build_tar([(tinfo("link", tarfile.SYMTYPE, "/etc/passwd"), b"")])
    assert "tar.symlink" in ids(run(absolute))
    inside = build_tar([(tinfo("a/b/link", tarfile.SYMTYPE, "../c"), b"")])
    assert "tar.symlink" not in ids(run(inside))


def test_hardlink_escaping_and_not() -> None:
    assert "tar.hardlink" in ids(
        run(build_tar([(tinfo("h", tarfile.LNKTYPE, "/etc/shadow"), b"")]))
    )
    ok = build_tar([(tinfo("a"), b"1"), (tinfo("h", tarfile.LNKTYPE, "a"), b"")])
    assert "tar.hardlink" not in ids(run(ok))


@pytest.mark.parametrize("typ", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices(typ: bytes) -> None:
    assert "tar.device" in ids(run(build_tar([(tinfo("dev", typ), b"")])))


def test_bad_checksum_is_malformed() -> None:
    t = bytearray(build_tar(CLEAN))
    t[0] ^= 0x20
    assert "tar.malformed" in ids(run(bytes(t), rec=Recorder()))


@pytest.mark.parametrize("cut", [100, 600, 1500, 2500])
def test_truncated_tar_is_malformed(cut: int, tmp_path: Path) -> None:
    t = build_tar([(tinfo("big"), b"z" * 3000)])[:cut]
    assert "tar.malformed" in ids(run(t, rec=Recorder()))
    p = tmp_path / "t.tar"
    p.write_bytes(t)
    assert "tar.malformed" in ids(run_path(p, Recorder()))


def test_too_many_members() -> None:
    rec = Recorder()
    t = build_tar([(tinfo(f"m{i}"), b"x") for i in range(10)])
    assert "tar.too-many-members" in ids(run(t, rec=rec, max_archive_members=3))
    assert len(rec.seen) == 3


# --- legacy PyTorch --------------------------------------------------------------------------


def legacy_torch(payload: bytes) -> bytes:
    return build_tar([
        (tinfo("sys_info"), BENIGN_PICKLE),
        (tinfo("pickle"), payload),
        (tinfo("storages"), b"\x80\x02K\x00." + b"\x00" * 64),
        (tinfo("tensors"), b"\x80\x02K\x00."),
    ])  # fmt: skip


def test_legacy_torch_tar_sniffed_and_pickles_hinted(tmp_path: Path) -> None:
    p = tmp_path / "old.pt"
    p.write_bytes(legacy_torch(evil_pickle("id")))
    f = FileInput.from_path(p, "old.pt")
    assert choose_format(f).name == "tar"  # type: ignore[union-attr]
    rec = Recorder()
    ctx = ctx_with(rec)
    assert list(scan_tar(f, ctx)) == []
    hints = {s.path: s.hint for s in rec.seen}
    assert hints == {f"old.pt!{n}": "pickle" for n in ("sys_info", "pickle", "storages", "tensors")}
    assert ctx.facts["model"] == [{"path": "old.pt", "format": "pytorch-legacy"}]


def test_plain_tar_members_have_no_pickle_hint() -> None:
    rec = Recorder()
    run(build_tar([(tinfo("notes"), b"x"), (tinfo("pickle"), b"y")]), rec=rec)
    assert {s.hint for s in rec.seen} == {None}


def test_legacy_torch_with_real_pickle_scanner(tmp_path: Path) -> None:
    pytest.importorskip("airlock.scan.pickles")
    if "pickle" not in FORMAT_SCANNERS:
        pytest.skip("the pickle format scanner is not registered yet")
    sentinel = tmp_path / "pwned"
    p = tmp_path / "old.pt"
    p.write_bytes(legacy_torch(evil_pickle(f"touch {sentinel}")))
    found = list(scan_file(FileInput.from_path(p, "old.pt"), ScanContext()))
    assert any(f.path == "old.pt!pickle" and f.rule_id.startswith("pickle.") for f in found)
    assert not sentinel.exists()


# --- compressed -------------------------------------------------------------------------------


@pytest.mark.parametrize("comp", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_tar(comp: object) -> None:
    data = comp(build_tar(CLEAN))  # type: ignore[operator]
    f = FileInput.from_bytes("a.tgz", data)
    assert choose_format(f).name == "tar"  # type: ignore[union-attr]
    rec = Recorder()
    assert list(scan_tar(f, ctx_with(rec))) == []
    assert rec.by_path()["a.tgz!model/w.bin"].data == CLEAN[1][1]


def test_compressed_tar_with_traversal() -> None:
    assert "tar.path-traversal" in ids(run(gzip.compress(build_tar([(tinfo("../x"), b"1")]))))


def test_gzip_bomb_stops() -> None:
    bomb = gzip.compress(build_tar([(tinfo("zeros"), b"\x00" * 40_000_000)]), 9)
    rec = Recorder()
    found = run(bomb, name="b.tar.gz", rec=rec, max_member_in_memory=1 << 20)
    assert "tar.compression-bomb" in ids(found)


def test_truncated_gzip_is_malformed() -> None:
    data = gzip.compress(build_tar(CLEAN))
    assert "tar.malformed" in ids(run(data[: len(data) // 2], name="a.tgz", rec=Recorder()))


def test_single_gzip_file_is_decompressed_and_dispatched() -> None:
    rec = Recorder()
    assert run(gzip.compress(BENIGN_PICKLE), name="x.pkl.gz", rec=rec) == []
    assert rec.seen[0].path == "x.pkl.gz!x.pkl" and rec.seen[0].data == BENIGN_PICKLE


def test_not_a_tar_is_not_sniffed(tmp_path: Path) -> None:
    p = tmp_path / "w.bin"
    p.write_bytes(b"\x01" * 1024)
    fmt = choose_format(FileInput.from_path(p, "w.bin"))
    assert fmt is None or fmt.name != "tar"
    assert not is_tar_header(b"\x01" * 512)


# --- fuzz -------------------------------------------------------------------------------------

VALID = legacy_torch(evil_pickle("id"))


def _drain(data: bytes, name: str) -> None:
    found = run(data, name=name, rec=Recorder(), max_member_bytes=1 << 20)
    assert all(isinstance(f, Finding) for f in found)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1500))
def test_fuzz_random_bytes(data: bytes) -> None:
    _drain(data, "a.tar")
    _drain(b"\x1f\x8b" + data, "a.tgz")


@settings(max_examples=200, deadline=2000)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(VALID)))  # fmt: skip
def test_fuzz_mutated_valid_tar(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, val in edits:
        data[pos] = val
    _drain(bytes(data[: cut or len(data)]), "old.pt")
    _drain(gzip.compress(bytes(data[: cut or len(data)]), 1), "old.tgz")


def test_gzip_single_is_bounded_by_member_limit() -> None:
    rec = Recorder()
    run(gzip.compress(b"a" * 3_000_000), name="x.gz", rec=rec, max_member_bytes=1 << 20,
        max_member_in_memory=1 << 18, max_compression_ratio=10_000)  # fmt: skip
    assert len(rec.seen[0].data) <= 1 << 20

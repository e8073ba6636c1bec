"""Dispatch: format facts, kept texts, file-check pre-checks, contained scanner failures."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan import credentials, engine, files, pickles, zips
from airlock.scan.base import (
    FILE_CHECKS,
    FORMAT_SCANNERS,
    FileCheck,
    FileInput,
    FormatFn,
    FormatScanner,
    ScanContext,
)
from airlock.scan.engine import scan_file

# the scanners these tests dispatch to register themselves on import
REGISTERED = (credentials, files, pickles, zips)


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def scan(name: str, data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    return list(scan_file(FileInput.from_bytes(name, data), ctx or ScanContext()))


# --- facts and texts ------------------------------------------------------------------------


def test_format_fact_is_recorded_for_files_on_disk_not_for_each_member() -> None:
    ctx = ScanContext()
    members = {f"d/n{i}.txt": b"plain words" for i in range(300)}
    scan("m.zip", zip_of(members), ctx)
    assert ctx.facts["format"] == [{"path": "m.zip", "format": "zip"}]


def test_unknown_top_level_file_is_recorded_as_other() -> None:
    ctx = ScanContext()
    scan("blob.xyz", b"\x01\x02\x03", ctx)
    assert ctx.facts["format"] == [{"path": "blob.xyz", "format": "other"}]


def test_texts_of_archive_members_are_still_kept() -> None:
    ctx = ScanContext()
    members = {
        "repo/README.md": b"# Model card\n",
        "repo/LICENSE": b"MIT License\n",
        "repo/copying": b"GPL\n",
        "repo/notes.cfg": b"not kept: neither a kept name nor a kept suffix\n",
        "repo/weights.bin": b"\x00\x01" * 10,
    }
    scan("m.zip", zip_of(members), ctx)
    assert set(ctx.texts) == {"m.zip!repo/README.md", "m.zip!repo/LICENSE", "m.zip!repo/copying"}
    assert ctx.texts["m.zip!repo/LICENSE"] == "MIT License\n"


def test_kept_texts_of_archive_members_are_bounded_in_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "TEXT_KEEP_MEMBERS_BYTES", 10_000)
    ctx = ScanContext()
    members = {f"r{i}/README.md": b"# card " + b"x" * 993 for i in range(50)}  # 1,000 bytes each
    scan("m.zip", zip_of(members), ctx)
    assert len(ctx.texts) == 10 and ctx.texts_bytes == 10_000
    scan("README.md", b"# top-level files are always kept\n", ctx)
    assert "README.md" in ctx.texts


# --- FileInput ------------------------------------------------------------------------------


def _no_open() -> IO[bytes]:
    raise AssertionError("the opener must not be called when the head is given")


def test_given_head_is_used_without_opening() -> None:
    f = FileInput("a.zip!x/y.PKL", 10, _no_open, depth=1, head=b"\x80\x02" + bytes(100))
    assert f.head == b"\x80\x02" + bytes(62)  # cut to SNIFF_BYTES
    assert (f.name, f.suffix) == ("y.PKL", ".pkl")


def test_head_is_read_when_not_given() -> None:
    f = FileInput("w.bin", 3, lambda: io.BytesIO(b"abc"))
    assert f.head == b"abc"


@pytest.mark.parametrize(
    ("path", "name", "suffix"),
    [
        ("model.SafeTensors", "model.SafeTensors", ".safetensors"),
        ("dir/sub/file", "file", ""),
        ("m.zip!archive/data.pkl", "data.pkl", ".pkl"),
        ("m.pt!archive/data.pkl#<embedded@0x10>", "<embedded@0x10>", ""),
        ("a.tar!b.zip!c.d/e", "e", ""),
        ("x/.hidden", ".hidden", ".hidden"),
        ("noext!", "", ""),
    ],
)
def test_name_and_suffix(path: str, name: str, suffix: str) -> None:
    f = FileInput.from_bytes(path, b"")
    assert (f.name, f.suffix) == (name, suffix)


# --- file checks' cheap pre-checks ----------------------------------------------------------

_MAGICS = [b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe\x00\x00\x00\x02", b"MZ",
           b"\x1f\x8b", b"BZh91AY&SY", b"\xfd7zXZ\x00", b"#!/bin/sh\n", b"\x80\x02", b"PK\x03\x04",
           b"\x28\xb5\x2f\xfd", b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b""]  # fmt: skip
_NAMES = ["a.sh", "RUN.BAT", "x.ps1", "tool", "m.pkl", "w.bin", "c.json", "README.md", "s.cmd"]


def _pe() -> bytes:
    dos = bytearray(b"MZ" + b"\x00" * 0x7E)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    return bytes(dos) + b"PE\x00\x00"


@settings(max_examples=200, deadline=2000)
@given(st.sampled_from([*_MAGICS, _pe()]), st.binary(max_size=80), st.sampled_from(_NAMES))
def test_files_precheck_never_hides_a_finding(magic: bytes, tail: bytes, name: str) -> None:
    f = FileInput.from_bytes(f"m.zip!d/{name}", magic + tail, depth=1)
    found = list(files.scan_files(f, ScanContext()))
    if found:
        assert files._applies(f)


@settings(max_examples=100, deadline=2000)
@given(st.binary(max_size=80), st.sampled_from(_NAMES))
def test_files_precheck_is_false_only_where_nothing_is_found(data: bytes, name: str) -> None:
    f = FileInput.from_bytes(name, data)
    if not files._applies(f):
        assert list(files.scan_files(f, ScanContext())) == []


def test_prechecks_skip_pickles_and_keep_what_they_must() -> None:
    pkl = FileInput.from_bytes("m.zip!archive/p1.pkl", b"\x80\x02}q\x00.", depth=1)
    assert not files._applies(pkl) and not credentials._applies(pkl)
    headerless = FileInput.from_bytes("m.zip!archive/p1", b"\x80\x04\x95", depth=1)
    assert not files._applies(headerless) and not credentials._applies(headerless)
    assert files._applies(FileInput.from_bytes("install.sh", b"echo hi\n"))
    assert files._applies(FileInput.from_bytes("empty.bat", b""))
    assert files._applies(FileInput.from_bytes("tool", b"\x7fELF\x02"))
    assert credentials._applies(FileInput.from_bytes("config.json", b'{"token": "x"}'))


def test_executable_member_of_a_many_member_zip_is_reported_with_its_path() -> None:
    members = {f"d/n{i}.pkl": b"\x80\x02K\x01." for i in range(500)}
    members["bin/tool"] = b"\x7fELF\x02\x01\x01" + bytes(60)
    found = [f for f in scan("m.zip", zip_of(members)) if f.rule_id.startswith("file.")]
    assert [(f.rule_id, f.path) for f in found] == [("file.executable", "m.zip!bin/tool")]


# --- failures are contained -----------------------------------------------------------------


def _raising(exc: BaseException) -> FormatFn:
    def fn(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
        raise exc
        yield  # pragma: no cover - makes this a generator

    return fn


@pytest.mark.parametrize(
    ("exc", "evidence"),
    [
        (ValueError("bad header"), "ValueError: bad header"),
        (RecursionError(), "RecursionError"),
        (MemoryError(), "MemoryError"),
    ],
)
def test_format_scanner_exception_becomes_internal_error(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, evidence: str
) -> None:
    monkeypatch.setitem(FORMAT_SCANNERS, "boom", FormatScanner("boom", _raising(exc)))
    f = FileInput.from_bytes("x.boom", b"data", format_hint="boom")
    found = list(scan_file(f, ScanContext()))
    assert [(g.rule_id, g.location, g.evidence) for g in found] == [
        ("scan.internal-error", "boom", evidence)
    ]


def test_file_check_exception_becomes_internal_error_and_bad_applies_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def bad_applies(f: FileInput) -> bool:
        raise KeyError("x")

    fn = _raising(OSError("gone"))
    monkeypatch.setitem(FILE_CHECKS, "boomcheck", FileCheck("boomcheck", fn, lambda f: True))
    monkeypatch.setitem(FILE_CHECKS, "badapplies", FileCheck("badapplies", fn, bad_applies))
    found = scan("blob.xyz", b"\x01\x02")
    assert [(g.rule_id, g.location, g.evidence) for g in found] == [
        ("scan.internal-error", "boomcheck", "OSError: gone")
    ]

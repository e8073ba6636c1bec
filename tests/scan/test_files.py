"""Unexpected files: executables, scripts and unscanned compressed archives."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.findings import Finding, Severity
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.files import scan_files


def check(name: str, data: bytes) -> list[Finding]:
    return list(scan_files(FileInput.from_bytes(name, data), ScanContext()))


def pe_bytes(valid: bool = True) -> bytes:
    dos = bytearray(b"MZ" + b"\x00" * 0x7E)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    return bytes(dos) + (b"PE\x00\x00" if valid else b"XX\x00\x00") + b"\x00" * 64


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("tool", b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "ELF"),
        ("model.bin", pe_bytes(), "PE (Windows executable/DLL)"),
        ("helper", b"\xcf\xfa\xed\xfe" + b"\x00" * 60, "Mach-O 64-bit"),
        ("fat", b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + b"\x00" * 56, "Mach-O universal binary"),
        ("A.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\x00" * 56, "Java class file"),
    ],
)
def test_executables_are_high(name: str, data: bytes, kind: str) -> None:
    found = check(name, data)
    assert [(f.rule_id, f.severity, f.evidence) for f in found] == [
        ("file.executable", Severity.HIGH, kind)
    ]


def test_mz_without_pe_header_is_not_an_executable() -> None:
    assert check("notes.txt", pe_bytes(valid=False)) == []
    assert check("mz.txt", b"MZ is a nice prefix for a text file") == []


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("install.sh", b"echo hi\n"),
        ("run.bat", b"@echo off\n"),
        ("setup.ps1", b"Write-Host hi\n"),
        ("go.cmd", b"dir\n"),
        ("postinstall", b"#!/bin/sh\ncurl x | sh\n"),
        ("start", b"#!/usr/bin/env bash\nset -e\n"),
    ],
)
def test_scripts_are_medium(name: str, data: bytes) -> None:
    found = check(name, data)
    assert [(f.rule_id, f.severity) for f in found] == [("file.script", Severity.MEDIUM)]


def test_python_and_text_are_not_scripts() -> None:
    assert check("convert", b"#!/usr/bin/env python3\nprint(1)\n") == []
    assert check("README.md", b"# Model card\n#!/bin/sh is mentioned here\n") == []
    assert check("config.json", b'{"a": 1}') == []


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("weights.gz", gzip.compress(b"x" * 100, mtime=0), "gzip"),
        ("data.bz2", bz2.compress(b"x" * 100), "bzip2"),
        ("blob", lzma.compress(b"x" * 100), "xz"),
        ("a.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24, "7z"),
        ("a.rar", b"Rar!\x1a\x07\x01\x00" + b"\x00" * 24, "RAR"),
        ("a.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 24, "zstd"),
    ],
)
def test_compressed_archives_are_medium(name: str, data: bytes, kind: str) -> None:
    found = check(name, data)
    assert [(f.rule_id, f.severity, f.evidence) for f in found] == [
        ("file.nested-archive", Severity.MEDIUM, kind)
    ]


def test_bzh_text_is_not_bzip2() -> None:
    assert check("notes.txt", b"BZh9 is how bzip2 files start") == []


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=200), st.sampled_from(["x", "x.sh", "x.exe", "x.gz", "x.bin"]))
def test_fuzz_random_bytes(data: bytes, name: str) -> None:
    assert all(isinstance(f, Finding) for f in check(name, data))

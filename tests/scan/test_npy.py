"""NumPy .npy scanner: header parsing, object arrays scanned as pickles, size checks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.npy import scan_npy


def npy_bytes(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def scan(data: bytes, name: str = "arr.npy") -> list[Finding]:
    return list(scan_file(FileInput.from_bytes(name, data), ScanContext()))


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


class Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.zeros((0,), dtype=np.int64),
        np.array(3.5),
        np.asfortranarray(np.ones((2, 3), dtype=np.float16)),
        np.array(["ab", "cde"]),
        np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8", (2,))]),
    ],
)
def test_numeric_arrays_are_clean(arr: np.ndarray) -> None:
    assert scan(npy_bytes(arr)) == []


def test_object_array_is_flagged_and_never_executed(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = Touch(sentinel), 1
    found = scan(npy_bytes(arr, allow_pickle=True))
    assert "numpy.object-dtype" in rules(found)
    hits = [f for f in found if f.rule_id == "pickle.dangerous-global"]
    assert hits and hits[0].extra["global"] in {"posix.system", "nt.system"}
    assert not sentinel.exists()


def test_object_array_of_plain_values_only_flags_dtype() -> None:
    arr = np.array([1, "a", None], dtype=object)
    assert rules(scan(npy_bytes(arr, allow_pickle=True))) == {"numpy.object-dtype"}


def test_structured_dtype_with_object_field() -> None:
    arr = np.zeros(2, dtype=[("name", "O"), ("v", "<f4")])
    assert "numpy.object-dtype" in rules(scan(npy_bytes(arr, allow_pickle=True)))


def test_field_name_with_capital_o_is_not_object() -> None:
    arr = np.zeros(2, dtype=[("Obj", "<f4")])
    assert scan(npy_bytes(arr)) == []


def test_size_mismatch_truncated_and_extra() -> None:
    data = npy_bytes(np.arange(10, dtype=np.float64))
    assert "numpy.size-mismatch" in rules(scan(data[:-8]))
    assert "numpy.size-mismatch" in rules(scan(data + b"extra"))


@pytest.mark.parametrize(
    "data",
    [
        b"\x93NUMPY\x01\x00",  # truncated preamble
        b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16,  # unknown version
        b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'",  # truncated header
        b"\x93NUMPY\x01\x00\x0c\x00__import__()",  # not a literal
        b"\x93NUMPY\x01\x00\x06\x00[1, 2]",  # not a dict
        b"\x93NUMPY\x02\x00\xff\xff\xff\x7f",  # absurd header length
    ],
)
def test_malformed_headers(data: bytes) -> None:
    assert rules(scan(data)) == {"numpy.malformed"}


def test_sniffed_without_extension() -> None:
    f = FileInput.from_bytes("blob", npy_bytes(np.ones(2)))
    fmt = choose_format(f)
    assert fmt is not None and fmt.name == "numpy"


SEEDS = [
    npy_bytes(np.arange(6, dtype=np.int32)),
    npy_bytes(np.array([1, None], dtype=object), allow_pickle=True),
]


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255))))
def test_fuzz_mutations(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for pos, val in edits:
        data[pos % len(data)] = val
    f = FileInput.from_bytes("a.npy", bytes(data))
    for x in scan_npy(f, ScanContext()):
        assert isinstance(x, Finding)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=300))
def test_fuzz_random_after_magic(tail: bytes) -> None:
    for x in scan(b"\x93NUMPY" + tail):
        assert isinstance(x, Finding) and x.rule_id != "scan.internal-error"

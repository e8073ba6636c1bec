"""ONNX scanner: hand-encoded protobuf, external data paths, custom domains, fuzzing."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import IO, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.engine import choose_format
from airlock.scan.onnx import location_problem, scan_onnx


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vfield(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def lfield(num: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(num << 3 | 2) + varint(len(data)) + data


def entry(key: str, value: str) -> bytes:
    return lfield(1, key) + lfield(2, value)


def tensor(name: str, raw: bytes = b"\0" * 16, location: str | None = None) -> bytes:
    out = vfield(1, 4) + vfield(2, 1) + lfield(8, name)
    if location is None:
        return out + lfield(9, raw)
    return (
        out
        + lfield(13, entry("location", location))
        + lfield(13, entry("offset", "0"))
        + vfield(14, 1)
    )


def node(op: str, domain: str = "", attrs: list[bytes] | None = None) -> bytes:
    out = lfield(1, "x") + lfield(2, "y") + lfield(3, f"n_{op}") + lfield(4, op)
    out += b"".join(lfield(5, a) for a in attrs or [])
    return out + (lfield(7, domain) if domain else b"")


def graph(nodes: list[bytes], inits: list[bytes] | None = None) -> bytes:
    out = b"".join(lfield(1, n) for n in nodes) + lfield(2, "main")
    return out + b"".join(lfield(5, t) for t in inits or [])


def model(
    g: bytes | None = None,
    *,
    opsets: tuple[tuple[str, int], ...] = (("", 17),),
    metadata: dict[str, str] | None = None,
    functions: list[bytes] | None = None,
) -> bytes:
    g = graph([node("Relu"), node("MatMul")], [tensor("w")]) if g is None else g
    out = vfield(1, 8) + lfield(2, "pytorch") + lfield(3, "2.3") + lfield(7, g)
    out += b"".join(lfield(8, lfield(1, d) + vfield(2, v)) for d, v in opsets)
    out += b"".join(lfield(14, entry(k, v)) for k, v in (metadata or {}).items())
    return out + b"".join(lfield(25, fn) for fn in functions or [])


def scan(data: bytes, ctx: ScanContext | None = None, name: str = "model.onnx") -> list[Finding]:
    return list(scan_onnx(FileInput.from_bytes(name, data), ctx or ScanContext()))


def ids(fs: list[Finding]) -> set[str]:
    return {f.rule_id for f in fs}


def test_clean_model_and_fact() -> None:
    ctx = ScanContext()
    assert scan(model(metadata={"author": "me", "version": "1.0"}), ctx) == []
    [fact] = ctx.facts["model"]
    assert fact["format"] == "onnx" and fact["producer"] == "pytorch"
    assert fact["ir_version"] == 8 and fact["opsets"] == {"": 17}
    assert fact["nodes"] == 2 and fact["initializers"] == 1


def test_dispatch_by_extension() -> None:
    fmt = choose_format(FileInput.from_bytes("m.onnx", model()))
    assert fmt is not None and fmt.name == "onnx"


def test_standard_ml_domain_not_flagged() -> None:
    g = graph([node("TreeEnsembleClassifier", "ai.onnx.ml"), node("Relu", "ai.onnx")])
    assert scan(model(g)) == []


def test_custom_domain() -> None:
    g = graph([node("Relu"), node("EvilOp", "com.evil"), node("EvilOp2", "com.evil")])
    [f] = scan(model(g))
    assert f.rule_id == "onnx.custom-operator-domain" and str(f.severity) == "medium"
    assert f.evidence == "EvilOp, EvilOp2"


def test_microsoft_contrib_domain_is_low() -> None:
    [f] = scan(model(graph([node("FusedMatMul", "com.microsoft")])))
    assert f.rule_id == "onnx.custom-operator-domain" and str(f.severity) == "low"


def test_custom_domain_inside_subgraph_attribute() -> None:
    inner = graph([node("Hidden", "org.hidden")])
    attr = lfield(1, "then_branch") + lfield(6, inner) + vfield(20, 5)
    g = graph([node("If", attrs=[attr])])
    assert "onnx.custom-operator-domain" in ids(scan(model(g)))


def test_local_function_domain_not_flagged_but_its_body_is() -> None:
    fn = lfield(1, "MyGelu") + lfield(10, "local.fns") + lfield(7, node("Tanh"))
    g = graph([node("MyGelu", "local.fns")])
    assert scan(model(g, functions=[fn])) == []
    bad_fn = lfield(1, "F") + lfield(10, "local.fns") + lfield(7, node("X", "com.other"))
    assert "onnx.custom-operator-domain" in ids(scan(model(g, functions=[bad_fn])))


def test_external_data_escape_variants() -> None:
    for loc in ["/etc/passwd", "../../secret.bin", "weights/../../x", "C:\\Windows\\x", "..\\x"]:
        g = graph([node("Relu")], [tensor("w", location=loc)])
        found = scan(model(g))
        assert ids(found) == {"onnx.external-data-escape"}, loc


def test_external_data_in_constant_attribute_tensor() -> None:
    attr = lfield(1, "value") + lfield(5, tensor("c", location="/proc/self/environ"))
    g = graph([node("Constant", attrs=[attr])])
    assert "onnx.external-data-escape" in ids(scan(model(g)))


def test_plain_external_data_is_fine_in_memory() -> None:
    g = graph([node("Relu")], [tensor("w", location="model.onnx.data")])
    assert scan(model(g)) == []


def test_external_data_on_disk(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    (tmp_path / "m" / "link.bin").symlink_to(outside)
    (tmp_path / "m" / "weights.bin").write_bytes(b"\0" * 16)

    def scan_disk(loc: str) -> list[Finding]:
        p = tmp_path / "m" / "model.onnx"
        p.write_bytes(model(graph([node("Relu")], [tensor("w", location=loc)])))
        return list(scan_onnx(FileInput.from_path(p, "m/model.onnx"), ScanContext()))

    assert scan_disk("weights.bin") == []
    assert ids(scan_disk("link.bin")) == {"onnx.external-data-escape"}
    assert ids(scan_disk("nothere.bin")) == {"onnx.external-data-missing"}
    # Many tensors in one missing file: one finding, not one per tensor.
    p = tmp_path / "m" / "model.onnx"
    inits = [tensor(f"w{i}", location="gone.bin") for i in range(50)]
    p.write_bytes(model(graph([node("Relu")], inits)))
    found = list(scan_onnx(FileInput.from_path(p, "m/model.onnx"), ScanContext()))
    assert [f.rule_id for f in found] == ["onnx.external-data-missing"]
    assert "+49 more" in (found[0].location or "")


def test_location_problem_near_misses() -> None:
    assert location_problem("model..data") is None
    assert location_problem("sub/dir/w.bin") is None
    assert location_problem("file:///etc/passwd") is not None
    assert location_problem("~/.ssh/id_rsa") is not None


def test_suspicious_metadata() -> None:
    found = scan(model(metadata={"converter": "import os; os.system('id')", "note": "fine"}))
    assert [(f.rule_id, f.location) for f in found] == [
        ("onnx.suspicious-metadata", "metadata_props converter")
    ]


def test_malformed_inputs() -> None:
    good = model()
    cases = [
        good[:-3],  # truncated
        b"\x00\x01",  # field number 0
        varint(7 << 3 | 2) + varint(2**40) + b"abc",  # length past end
        varint(1 << 3 | 3) + b"\x00",  # group wire type
        b"\xff" * 11,  # over-long varint
        good + varint(7 << 3) + b"",  # truncated varint at end
    ]
    for data in cases:
        found = scan(data)
        assert "onnx.malformed" in ids(found), data[:20]


def test_deep_nesting_is_bounded() -> None:
    g = graph([node("Relu")])
    for _ in range(200):
        attr = lfield(1, "body") + lfield(6, g)
        g = graph([node("Loop", attrs=[attr])])
    start = time.monotonic()
    assert ids(scan(model(g))) == {"onnx.malformed"}
    assert time.monotonic() - start < 1


class Counting(io.RawIOBase):
    def __init__(self, data: bytes, counter: list[int]) -> None:
        self._b = io.BytesIO(data)
        self._c = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._b.readinto(b)
        self._c[0] += n
        return n

    def seek(self, off: int, whence: int = 0) -> int:
        return self._b.seek(off, whence)

    def tell(self) -> int:
        return self._b.tell()


def test_raw_data_is_skipped_not_read() -> None:
    big = 64 * 1024 * 1024
    data = model(graph([node("Relu")], [tensor("w", raw=b"\0" * big)]))
    counter = [0]

    def opener() -> IO[bytes]:
        return io.BufferedReader(Counting(data, counter), buffer_size=1024)

    f = FileInput("m.onnx", len(data), opener)
    counter[0] = 0
    assert list(scan_onnx(f, ScanContext())) == []
    assert counter[0] < 4 * 65536


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in scan(data))


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutations(d: st.DataObject) -> None:
    attr = lfield(1, "value") + lfield(5, tensor("c", location="a.bin"))
    data = bytearray(model(graph([node("Constant", attrs=[attr]), node("Op", "x.y")])))
    for _ in range(d.draw(st.integers(1, 6))):
        i = d.draw(st.integers(0, len(data) - 1))
        data[i] = d.draw(st.integers(0, 255))
    assert all(isinstance(f, Finding) for f in scan(bytes(data)))

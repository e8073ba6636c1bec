"""ZIP containers: structure evasions, bounded inflation, PyTorch/TorchScript/Keras/npz routing."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import tracemalloc
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.api import scan_path
from airlock.scan.base import FORMAT_SCANNERS, FileInput, Limits, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.zips import scan_zip
from scan.zips_samples import BENIGN_PICKLE, M, Recorder, build_zip, ctx_with, evil_pickle


def run(
    data: bytes, name: str = "m.zip", rec: Recorder | None = None, **limits: int
) -> list[Finding]:
    ctx = ctx_with(rec, **limits)
    return list(scan_zip(FileInput.from_bytes(name, data), ctx))


def ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def std_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# --- clean archives -----------------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                    zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])  # fmt: skip
def test_clean_zip_has_no_findings_and_every_member_reaches_dispatch(method: int) -> None:
    members = {"a.txt": b"hello" * 100, "dir/b.bin": bytes(range(256)) * 50, "empty": b""}
    rec = Recorder()
    found = run(std_zip(members, method), rec=rec)
    assert found == []
    got = {s.path: s.data for s in rec.seen}
    assert got == {f"m.zip!{k}": v for k, v in members.items()}


def test_dispatch_chooses_zip_for_zip_magic_and_for_prepended_model_extension() -> None:
    f = FileInput.from_bytes("x.bin", std_zip({"a": b"1"}))
    assert choose_format(f).name == "zip"  # type: ignore[union-attr]


def test_generic_zip_fact() -> None:
    ctx = ctx_with(Recorder())
    list(scan_zip(FileInput.from_bytes("m.zip", std_zip({"a": b"1"})), ctx))
    assert ctx.facts["model"] == [{"path": "m.zip", "format": "zip"}]


# --- header evasions ----------------------------------------------------------------------


def test_local_and_central_name_mismatch() -> None:
    z = build_zip([M(b"weights.txt", b"x", local_name=b"evil.pkl")])
    assert "zip.name-mismatch" in ids(run(z))
    assert "zip.name-mismatch" not in ids(run(build_zip([M(b"weights.txt", b"x")])))


def test_bad_crc_fires_only_when_wrong() -> None:
    assert "zip.bad-crc" in ids(run(build_zip([M(b"a", b"payload", method=8, crc=1234)])))
    assert "zip.bad-crc" in ids(run(build_zip([M(b"a", b"payload", crc=1234)])))
    assert "zip.bad-crc" not in ids(run(build_zip([M(b"a", b"payload", method=8)])))


def test_encrypted_member_reported_and_not_scanned() -> None:
    rec = Recorder()
    found = run(build_zip([M(b"secret.pkl", b"\x00" * 12 + b"ciphertext", flags=1)]), rec=rec)
    assert "zip.encrypted" in ids(found)
    assert rec.seen == []


def test_duplicate_names() -> None:
    z = build_zip([M(b"data.pkl", BENIGN_PICKLE), M(b"data.pkl", evil_pickle("id"))])
    rec = Recorder()
    found = run(z, rec=rec)
    assert "zip.duplicate-name" in ids(found)
    assert len(rec.seen) == 2  # both copies are scanned: loaders disagree on which wins
    assert "zip.duplicate-name" not in ids(run(build_zip([M(b"a", b"1"), M(b"b", b"1")])))


@pytest.mark.parametrize(
    "name",
    [b"../evil.sh", b"a/../../evil", b"/etc/cron.d/x", b"C:/win.ini", b"a\\..\\b", b"a\x00.txt"],
)
def test_path_traversal(name: bytes) -> None:
    assert "zip.path-traversal" in ids(run(build_zip([M(name, b"x")])))


@pytest.mark.parametrize("name", [b"a..b/c", b"dir/..hidden", b"./a/b", b"a/b..c"])
def test_path_traversal_near_misses(name: bytes) -> None:
    assert "zip.path-traversal" not in ids(run(build_zip([M(name, b"x")])))


def test_symlink_member() -> None:
    z = build_zip([M(b"link", b"/etc/passwd", create_system=3, external_attr=0o120777 << 16)])
    assert "zip.symlink" in ids(run(z))
    plain = build_zip([M(b"file", b"x", create_system=3, external_attr=0o100644 << 16)])
    assert "zip.symlink" not in ids(run(plain))


def test_overlapping_entries_reported_and_scanned_once() -> None:
    z = build_zip([M(b"a", b"same data"), M(b"b", b"zzz", offset=0)])
    rec = Recorder()
    found = run(z, rec=rec)
    assert "zip.overlapping-entries" in ids(found)
    assert len(rec.seen) == 1


def test_unsupported_compression_method() -> None:
    found = run(build_zip([M(b"a", b"imploded?", method=6)]))
    assert "zip.unsupported-compression" in ids(found)


def test_header_mismatch_sizes() -> None:
    z = bytearray(build_zip([M(b"a", b"abc")]))
    z[22:26] = (99).to_bytes(4, "little")  # local uncompressed size
    assert "zip.header-mismatch" in ids(run(bytes(z)))


def test_prepended_data_tolerated_for_zip_flagged_for_checkpoint() -> None:
    z = build_zip([M(b"a.txt", b"hi")], prefix=b"#!/bin/sh\nexit 0\n")
    rec = Recorder()
    found = run(z, rec=rec)
    pre = [f for f in found if f.rule_id == "zip.prepended-data"]
    assert pre and pre[0].severity.name == "LOW"
    assert rec.seen[0].data == b"hi"  # offsets were adjusted for the prefix
    pt = [f for f in run(z, name="model.pt") if f.rule_id == "zip.prepended-data"]
    assert pt[0].severity.name == "MEDIUM"


def test_zip64_records_are_followed() -> None:
    rec = Recorder()
    found = run(build_zip([M(b"a", b"1"), M(b"b", b"22")], zip64=True), rec=rec)
    assert "zip.malformed" not in ids(found)
    assert [s.data for s in rec.seen] == [b"1", b"22"]


def test_too_many_members_bounded() -> None:
    rec = Recorder()
    z = build_zip([M(b"m%d" % i, b"x") for i in range(10)])
    found = run(z, rec=rec, max_archive_members=4)
    assert "zip.too-many-members" in ids(found)
    assert len(rec.seen) == 4


def test_findings_per_rule_are_capped() -> None:
    z = build_zip([M(b"../m%d" % i, b"x") for i in range(200)])
    trav = [f for f in run(z) if f.rule_id == "zip.path-traversal"]
    assert 50 < len(trav) < 60 and "more occurrences" in trav[-1].title


# --- malformed ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 10, 22, 30, 60, 100])
def test_truncated_zip_is_malformed_not_an_exception(cut: int) -> None:
    z = std_zip({"a.pkl": BENIGN_PICKLE * 10, "b": b"y" * 50})
    assert "zip.malformed" in ids(run(z[:-cut], rec=Recorder()))


def test_truncated_member_data() -> None:
    z = build_zip([M(b"a", b"x" * 1000)])
    z = z.replace(b"x" * 1000, b"x" * 10)  # central directory still says 1000 bytes
    assert "zip.malformed" in ids(run(z, rec=Recorder()))


def test_not_a_zip_by_extension() -> None:
    assert "zip.malformed" in ids(run(b"not a zip at all" * 10, name="a.zip"))
    assert run(b"\x01\x02\x03 raw tensor bytes" * 10, name="w.bin") == []


# --- bombs and memory -----------------------------------------------------------------------


def test_compression_bomb_bounded_memory() -> None:
    z = std_zip({"zeros": b"\x00" * 50_000_000})
    rec = Recorder()
    tracemalloc.start()
    found = run(z, rec=rec, max_member_bytes=4 << 20, max_member_in_memory=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "zip.compression-bomb" in ids(found)
    assert peak < 20_000_000
    assert len(rec.seen[0].data) <= 4 << 20


def test_bomb_with_lying_sizes_stops_while_inflating() -> None:
    z = build_zip([M(b"zeros", b"\x00" * 30_000_000, method=8, usize=1000)])
    tracemalloc.start()
    found = run(z, rec=Recorder(), max_member_in_memory=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bombs = [f for f in found if f.rule_id == "zip.compression-bomb"]
    assert bombs and "stopped after" in (bombs[0].evidence or "")
    assert peak < 20_000_000


def test_compressible_but_small_member_is_not_a_bomb() -> None:
    assert "zip.compression-bomb" not in ids(run(std_zip({"z": b"\x00" * 500_000})))


# --- PyTorch, TorchScript, Keras, npz -------------------------------------------------------


def torch_zip(extra: dict[str, bytes] | None = None) -> bytes:
    members = {
        "archive/data.pkl": evil_pickle("touch /tmp/airlock-never"),
        "archive/byteorder": b"little",
        "archive/data/0": b"\x00\x00\x80\x3f" * 4096,
        "archive/version": b"3\n",
        **(extra or {}),
    }
    return std_zip(members, zipfile.ZIP_STORED)


def test_pytorch_zip_routes_pickles_and_skips_storages() -> None:
    rec = Recorder()
    z = torch_zip({"archive/data/1": BENIGN_PICKLE, "archive/data/weird.txt": evil_pickle("id")})
    ctx = ctx_with(rec)
    assert list(scan_zip(FileInput.from_bytes("model.pt", z), ctx)) == []
    got = rec.by_path()
    assert got["model.pt!archive/data.pkl"].hint == "pickle"
    assert got["model.pt!archive/data/1"].hint == "pickle"  # storage that sniffs as pickle
    assert got["model.pt!archive/data/weird.txt"].hint == "pickle"  # pickle under a text name
    assert got["model.pt!archive/version"].hint is None
    assert "model.pt!archive/data/0" not in got  # tensor bytes are never read
    assert ctx.facts["model"] == [{"path": "model.pt", "format": "pytorch"}]


def test_pytorch_storage_that_is_an_archive_is_scanned() -> None:
    rec = Recorder()
    found = run(torch_zip({"archive/data/7": std_zip({"x": b"y"})}), name="m.pt", rec=rec)
    assert "m.pt!archive/data/7" in rec.by_path()
    assert "zip.nested-archive" in ids(found)


def _need_pickle_scanner() -> None:
    pytest.importorskip("airlock.scan.pickles")
    if "pickle" not in FORMAT_SCANNERS:
        pytest.skip("the pickle format scanner is not registered yet")


def test_pytorch_zip_with_real_pickle_scanner(tmp_path: Path) -> None:
    _need_pickle_scanner()
    sentinel = tmp_path / "pwned"
    z = std_zip({"archive/data.pkl": evil_pickle(f"touch {sentinel}"), "archive/version": b"3"})
    model = tmp_path / "model.pt"
    model.write_bytes(z)
    found = list(scan_file(FileInput.from_path(model, "model.pt"), ScanContext()))
    hits = [f for f in found if f.path == "model.pt!archive/data.pkl"]
    assert any(f.rule_id.startswith("pickle.") and f.severity >= 3 for f in hits)
    assert not sentinel.exists()


def test_pytorch_pickle_under_text_name_with_real_pickle_scanner() -> None:
    _need_pickle_scanner()
    z = torch_zip({"archive/data/weird.txt": evil_pickle("id")})
    found = list(scan_file(FileInput.from_bytes("model.pt", z), ScanContext()))
    assert any(f.path == "model.pt!archive/data/weird.txt" and f.rule_id.startswith("pickle.")
               for f in found)  # fmt: skip


def test_torchscript_code_present_and_suspicious_calls() -> None:
    code = b"def forward(self, x):\n    y = torch.ops.aten.add(x, 1)\n    os.system('id')\n"
    z = std_zip({
        "m/code/__torch__/model.py": code,
        "m/constants.pkl": BENIGN_PICKLE,
        "m/data.pkl": BENIGN_PICKLE,
        "m/version": b"3",
    })  # fmt: skip
    rec = Recorder()
    ctx = ctx_with(rec)
    found = list(scan_zip(FileInput.from_bytes("m.pt", z), ctx))
    ts = [f for f in found if f.rule_id == "torchscript.code-present"]
    assert ts and "m/code/__torch__/model.py" in (ts[0].evidence or "")
    bad = [f for f in found if f.rule_id == "torchscript.suspicious-code"]
    assert len(bad) == 1 and bad[0].line == 3
    assert rec.by_path()["m.pt!m/constants.pkl"].hint == "pickle"
    assert ctx.facts["model"][0]["format"] == "torchscript"


def test_torchscript_normal_code_is_not_suspicious() -> None:
    code = b"def forward(self, x):\n    self.eval()\n    return torch.ops.aten.relu(x)\n"
    found = run(std_zip({"m/code/__torch__/a.py": code, "m/data.pkl": BENIGN_PICKLE}))
    assert "torchscript.suspicious-code" not in ids(found)
    assert "torchscript.code-present" in ids(found)


def test_keras_config_goes_to_keras_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, str]] = []

    def analyze(config: bytes, where: str, ctx: ScanContext) -> Iterator[Finding]:
        calls.append((config, where))
        return iter(())

    fake = types.ModuleType("airlock.scan.keras")
    fake.analyze_keras_config = analyze  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "airlock.scan.keras", fake)
    cfg = b'{"class_name": "Functional"}'
    z = std_zip({"config.json": cfg, "metadata.json": b"{}", "model.weights.h5": b"\x89HDF"})
    ctx = ctx_with(Recorder())
    list(scan_zip(FileInput.from_bytes("m.keras", z), ctx))
    assert calls == [(cfg, "m.keras!config.json")]
    assert ctx.facts["model"][0]["format"] == "keras"


def test_npz_members_reach_dispatch() -> None:
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(4), b=np.zeros(3))
    rec = Recorder()
    ctx = ctx_with(rec)
    assert list(scan_zip(FileInput.from_bytes("w.npz", buf.getvalue()), ctx)) == []
    assert sorted(s.path for s in rec.seen) == ["w.npz!a.npy", "w.npz!b.npy"]
    assert all(s.data.startswith(b"\x93NUMPY") for s in rec.seen)
    assert ctx.facts["model"][0]["format"] == "npz"


def test_large_stored_member_is_a_window_not_a_copy(tmp_path: Path) -> None:
    p = tmp_path / "m.zip"
    p.write_bytes(std_zip({"big.bin": b"\x80\x02" + b"q" * 3_000_000}, zipfile.ZIP_STORED))
    rec = Recorder()
    found = list(
        scan_zip(FileInput.from_path(p, "m.zip"), ctx_with(rec, max_member_in_memory=1 << 20))
    )
    assert found == []
    assert len(rec.seen[0].data) == 3_000_002


# --- nesting --------------------------------------------------------------------------------


def test_nested_zip_is_reported_and_scanned_recursively() -> None:
    inner = build_zip([M(b"../escape", b"x")])
    outer = std_zip({"inner.zip": inner})
    found = list(scan_file(FileInput.from_bytes("o.zip", outer), ScanContext()))
    assert any(f.rule_id == "zip.nested-archive" and f.path == "o.zip!inner.zip" for f in found)
    assert any(f.rule_id == "zip.path-traversal" and f.path == "o.zip!inner.zip!../escape"
               for f in found)  # fmt: skip


def test_nested_model_checkpoint_is_not_a_nested_archive_finding() -> None:
    found = run(std_zip({"repo/model.pt": std_zip({"a/data.pkl": BENIGN_PICKLE})}), rec=Recorder())
    assert "zip.nested-archive" not in ids(found)


def test_nesting_limit() -> None:
    z = std_zip({"a.txt": b"1"})
    for _ in range(4):
        z = std_zip({"n.zip": z})
    found = list(
        scan_file(FileInput.from_bytes("o.zip", z), ScanContext(limits=Limits(max_nesting=2)))
    )
    assert "scan.nesting-too-deep" in ids(found)


# --- fuzz -----------------------------------------------------------------------------------

VALID = std_zip({"archive/data.pkl": BENIGN_PICKLE, "archive/data/0": b"\x00" * 64,
                 "b.txt": b"text" * 20})  # fmt: skip


def _drain(data: bytes, name: str = "f.zip") -> None:
    found = run(data, name=name, rec=Recorder(), max_member_bytes=1 << 20)
    assert all(isinstance(f, Finding) for f in found)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_with_zip_magic(tail: bytes) -> None:
    _drain(b"PK\x03\x04" + tail)
    _drain(tail + b"PK\x05\x06" + tail[:18])


@settings(max_examples=200, deadline=2000)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(VALID)))  # fmt: skip
def test_fuzz_mutated_valid_zip(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, val in edits:
        data[pos] = val
    _drain(bytes(data[: max(cut, 0) or len(data)]), name="model.pt")


# --- many members: the per-member fast path must find what the careful path finds ----------


def _many_pickles(n: int) -> dict[str, bytes]:
    # pickle.dumps only serialises test data; nothing here is ever unpickled
    return {
        f"archive/p{i}.pkl": pickle.dumps({"w": [1.0, float(i)], "name": "layer"}, protocol=2)
        for i in range(n)
    }


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_one_malicious_member_among_2000_clean_ones(tmp_path: Path, method: int) -> None:
    _need_pickle_scanner()
    sentinel = tmp_path / "pwned"
    members = _many_pickles(2000)
    members["archive/p1234.pkl"] = evil_pickle(f"touch {sentinel}")
    path = tmp_path / "many.zip"
    path.write_bytes(std_zip(members, method))
    result = scan_path(path, hash_files=False)
    found = [(f.rule_id, f.path) for f in result.findings if not f.rule_id.startswith("license.")]
    assert found == [("pickle.dangerous-global", "many.zip!archive/p1234.pkl")]
    assert not sentinel.exists()
    # the file records list the archive itself; its 2,000 members add no per-member facts
    assert [(r.path, r.format) for r in result.files] == [("many.zip", "zip")]
    assert result.facts["format"] == [{"path": "many.zip", "format": "zip"}]


def test_all_clean_many_member_zip_has_no_findings() -> None:
    _need_pickle_scanner()
    z = std_zip(_many_pickles(2000), zipfile.ZIP_STORED)
    assert list(scan_file(FileInput.from_bytes("many.zip", z), ScanContext())) == []


@pytest.mark.parametrize(
    ("odd", "rule_id"),
    [
        (M(b"../evil.pkl", BENIGN_PICKLE), "zip.path-traversal"),
        (M(b"C:evil.pkl", BENIGN_PICKLE), "zip.path-traversal"),
        (M(b"archive/odd.pkl", BENIGN_PICKLE, crc=1), "zip.bad-crc"),
        (M(b"archive/odd.pkl", BENIGN_PICKLE, local_name=b"archive/q.pkl"), "zip.name-mismatch"),
        (M(b"archive/inner.gz", b"\x1f\x8b\x08" + bytes(40)), "zip.nested-archive"),
    ],
)
def test_one_odd_entry_among_many_is_still_reported(odd: M, rule_id: str) -> None:
    members = [M(f"archive/p{i}.pkl".encode(), BENIGN_PICKLE) for i in range(500)]
    found = run(build_zip([*members[:250], odd, *members[250:]]), rec=Recorder())
    assert [f.rule_id for f in found] == [rule_id]
    assert found[0].path == f"m.zip!{odd.name.decode()}"


def test_member_names_that_only_look_odd_together_are_not_traversal() -> None:
    # ".." and ":" across two names (or inside one component) are not an unsafe path
    members = [M(b"a.", b"1"), M(b".b", b"2"), M(b"ab:c/z", b"3"), M(b"v..w", b"4")]
    assert "zip.path-traversal" not in ids(run(build_zip(members), rec=Recorder()))


# --- headerless pickles in a torch file that is not a zip -----------------------------------


def _headerless_proto4(cmd: str) -> bytes:
    """A protocol-4 pickle calling os.system(cmd), minus its 2-byte PROTO header."""
    arg = cmd.encode()
    body = (
        b"\x8c\x02os\x94\x8c\x06system\x94\x93\x94"  # SHORT_BINUNICODE x2, STACK_GLOBAL
        + b"\x8c" + bytes([len(arg)]) + arg + b"\x94\x85\x94R\x94."  # (cmd,) REDUCE STOP
    )  # fmt: skip
    return b"\x95" + struct.pack("<Q", len(body)) + body  # FRAME first


@pytest.mark.parametrize("framed", [True, False])
def test_headerless_protocol4_pickle_under_torch_name_is_scanned(
    tmp_path: Path, framed: bool
) -> None:
    _need_pickle_scanner()
    sentinel = tmp_path / "pwned"
    data = _headerless_proto4(f"touch {sentinel}")
    if not framed:
        data = data[9:]  # starts with SHORT_BINUNICODE
    found = run(data, name="model.pt", rec=None)
    assert "pickle.dangerous-global" in ids(found)
    assert "zip.malformed" not in ids(found)  # torch.load would unpickle it, not unzip it
    assert not sentinel.exists()


def test_headerless_protocol4_pickle_as_zip_member_is_scanned() -> None:
    _need_pickle_scanner()
    inner = _headerless_proto4("id")
    z = torch_zip({"archive/extra.mar": inner})  # a torch name no pickle extension claims
    found = list(scan_file(FileInput.from_bytes("model.pt", z), ScanContext()))
    hits = {(f.rule_id, f.path) for f in found}
    assert ("pickle.dangerous-global", "model.pt!archive/extra.mar") in hits


def test_torch_named_file_starting_with_other_bytes_is_not_scanned_as_pickle() -> None:
    _need_pickle_scanner()
    assert run(b"\x96" + bytes(100), name="w.pt", rec=None) == []

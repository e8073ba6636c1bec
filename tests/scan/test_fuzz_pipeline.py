"""Whole-pipeline fuzzing: any bytes under any model-file name give findings, never a crash.

``scan.internal-error`` is how the engine contains a scanner exception; seeing it here
means a scanner has a bug, so these tests fail on it.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan import scan_path
from airlock.scan.integrity import LockError, read_lock

NAMES = [
    "model.safetensors", "model.gguf", "pytorch_model.bin", "model.pt", "data.pkl", "x.npy",
    "x.npz", "model.onnx", "model.keras", "model.h5", "config.json", "tokenizer_config.json",
    "chat_template.jinja", "modeling_x.py", "README.md", "LICENSE", "archive.zip",
    "archive.tar.gz", "weights.ckpt", "blob", "run.sh",
]  # fmt: skip

MAGICS = [
    b"", b"\x80\x04", b"\x80\x02c", b"PK\x03\x04", b"GGUF\x03\x00\x00\x00", b"\x93NUMPY\x01\x00",
    b"\x89HDF\r\n\x1a\n", b"\x1f\x8b", b"---\nlicense: ", b"{\"auto_map\": ",
    struct.pack("<Q", 16) + b'{"a":{"dtype":', b"\x7fELF",
]  # fmt: skip


def _scan_one(root: Path, name: str, data: bytes) -> list[Finding]:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        old.unlink()
    (root / name).write_bytes(data)
    return scan_path(root, hash_files=False).findings


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(NAMES), magic=st.sampled_from(MAGICS), tail=st.binary(max_size=300))
def test_any_bytes_under_any_name(tmp_path: Path, name: str, magic: bytes, tail: bytes) -> None:
    findings = _scan_one(tmp_path / "m", name, magic + tail)
    bugs = [f for f in findings if f.rule_id == "scan.internal-error"]
    assert not bugs, bugs


def _zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in members:
            z.writestr(n, d)
    return buf.getvalue()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from([*NAMES, "archive/data.pkl", "archive/version", "code/x.py"]),
                  st.builds(lambda m, t: m + t, st.sampled_from(MAGICS), st.binary(max_size=120))),
        max_size=6,
    )
)  # fmt: skip
def test_any_zip_of_model_files(tmp_path: Path, members: list[tuple[str, bytes]]) -> None:
    findings = _scan_one(tmp_path / "z", "model.pt", _zip_of(members))
    assert not [f for f in findings if f.rule_id == "scan.internal-error"]


JSON = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 JSON.map(lambda v: json.dumps(v).encode())))  # fmt: skip
def test_garbage_lock_is_a_lock_error(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "airlock.lock"
    p.write_bytes(data)
    try:
        lock = read_lock(p)
    except LockError:
        return
    assert isinstance(lock["files"], dict)

"""airlock never executes what it inspects.

Two proofs: payloads that would create a sentinel file leave nothing behind, and
Python's audit hooks see no unpickling, no code execution, no process, no socket and
no import of the scanned repository's code while a hostile model folder is scanned.
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from airlock.demo.example import MARKER, build_example
from airlock.scan import scan_path

FORBIDDEN = (
    "pickle.find_class",
    "exec",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "subprocess.Popen",
    "socket.connect",
    "socket.getaddrinfo",
    "ctypes.dlopen",
    "marshal.loads",
    "urllib.Request",
    "webbrowser.open",
)


class _Recorder:
    active = False
    events: list[tuple[str, str]] = []

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.active and event.startswith(FORBIDDEN):
            cls.events.append((event, repr(args)[:200]))
        if cls.active and event == "import" and args and str(args[0]).startswith("modeling_"):
            cls.events.append((event, str(args[0])))


sys.addaudithook(_Recorder.hook)


def _hostile_tree(root: Path) -> Path:
    build_example(root)
    sentinel = root.parent / "SENTINEL"
    # a pickle payload written by the real pickler: loading it would create the sentinel
    payload = f"open({str(sentinel)!r}, 'w').write('x')"

    class Boom:
        def __reduce__(self):
            return (exec, (payload,))

    import pickle

    (root / "extra.pkl").write_bytes(pickle.dumps(Boom()))
    (root / "modeling_extra.py").write_text(f"{payload}\n")
    return root


def test_scan_runs_no_payload_and_no_hostile_code(tmp_path: Path) -> None:
    root = _hostile_tree(tmp_path / "model")
    scan_path(root)  # warm-up: airlock's own lazy imports happen outside the window
    _Recorder.events = []
    _Recorder.active = True
    try:
        result = scan_path(root)
    finally:
        _Recorder.active = False
    assert _Recorder.events == []
    assert not (tmp_path / "SENTINEL").exists()
    assert not list(tmp_path.rglob(MARKER))
    rules = {f.rule_id for f in result.findings}
    assert {"pickle.dangerous-global", "remote-code.file-write-outside", "template.ssti"} <= rules


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archived_model_folder_is_scanned_member_by_member(tmp_path: Path, kind: str) -> None:
    root = _hostile_tree(tmp_path / "model")
    (root / "weights-cache").unlink()  # archives keep no host symlinks in this case
    if kind == "zip":
        archive = tmp_path / "model.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for p in sorted(root.iterdir()):
                z.write(p, f"model/{p.name}")
    else:
        archive = tmp_path / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            t.add(root, "model")
    shutil.rmtree(root)
    result = scan_path(archive)
    by_rule = {f.rule_id: f.path for f in result.findings}
    assert by_rule["pickle.dangerous-global"].startswith(archive.name + "!")
    assert "remote-code.obfuscated-exec" in by_rule
    assert "license.conflict" in by_rule  # repo-level checks see archive members too
    assert not (tmp_path / "SENTINEL").exists()


def test_memory_stays_bounded_whatever_sizes_files_declare(tmp_path: Path) -> None:
    import struct

    root = tmp_path / "liar"
    root.mkdir()
    (root / "huge-header.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    (root / "huge-string.gguf").write_bytes(
        b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", 2**60) + b"k"
    )
    (root / "huge-bytes.pkl").write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"xx")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))  # a 64 MB member, ~64 KB packed
    (root / "bomb.pt").write_bytes(buf.getvalue())
    tracemalloc.start()
    try:
        result = scan_path(root, hash_files=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak / 2**20:.1f} MiB"
    flagged = {f.path.split("!")[0] for f in result.findings}
    seen = sorted((f.path, f.rule_id) for f in result.findings)  # says why, should this fail
    files = sorted((f.path, f.format) for f in result.files)
    want = {"huge-header.safetensors", "huge-string.gguf", "huge-bytes.pkl", "bomb.pt"}
    assert want <= flagged, f"findings {seen}; formats {files}"


def test_the_recorder_would_notice_unpickling() -> None:
    """Control: the audit hook above does see a real unpickling (so silence means something)."""
    import collections
    import pickle

    _Recorder.events = []
    _Recorder.active = True
    try:
        pickle.loads(pickle.dumps(collections.OrderedDict(a=1)))
    finally:
        _Recorder.active = False
    assert any(e == "pickle.find_class" for e, _ in _Recorder.events)

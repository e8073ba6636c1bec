"""Benchmark ``airlock scan`` against picklescan, modelscan, fickling and the sha256 floor.

Run ``make bench`` (or ``.venv/bin/python benchmarks/scan_bench.py --help``). Every input is
generated here, deterministically, under ``benchmarks/.work/inputs`` (deleted afterwards
unless ``--keep``); the peers are installed into ``benchmarks/.work/peers-venv`` on first
use. Every tool runs as a subprocess on the same files with a warm page cache; we report
the best wall time of ``--runs`` runs and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import pickle
import pickletools
import random
import shutil
import struct
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peers
from _peers import Result

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
GIB = 1 << 30
MIB = 1 << 20
_BLOCK = random.Random(20240601).randbytes(16 * MIB)  # tensor filler, repeated
_FIXED_DATE = (2024, 1, 1, 0, 0, 0)

# ============================================================== input generators


def _fill(fh: Any, n: int) -> None:
    """Write ``n`` filler bytes (a fixed random block, repeated)."""
    view = memoryview(_BLOCK)
    while n > 0:
        k = min(n, len(view))
        fh.write(view[:k])
        n -= k


def _tensor_shapes(total: int, count: int, elem: int) -> list[tuple[int, int]]:
    """``count`` 2-D shapes ``(rows, 1024)`` whose bytes add up to about ``total``."""
    rows = max(1, total // count // (1024 * elem))
    return [(rows, 1024)] * count


def write_safetensors(path: Path, size: int, tensors: int) -> None:
    """A valid safetensors file of about ``size`` bytes with ``tensors`` BF16 tensors."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    off = 0
    for i, (r, c) in enumerate(_tensor_shapes(size, tensors, 2)):
        n = r * c * 2
        header[f"model.layers.{i // 9}.w{i % 9}.weight"] = {
            "dtype": "BF16",
            "shape": [r, c],
            "data_offsets": [off, off + n],
        }
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        _fill(fh, off)


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _gguf_kv_str(key: str, value: str) -> bytes:
    return _gguf_str(key) + struct.pack("<I", 8) + _gguf_str(value)


def _gguf_vocab(n: int) -> bytes:
    """tokenizer.ggml.tokens/scores/token_type arrays, as a real GGUF carries them."""
    toks = b"".join(_gguf_str(f"tok{i}") for i in range(n))
    out = _gguf_str("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, n) + toks
    out += _gguf_str("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, n)
    out += struct.pack(f"<{n}f", *([0.0] * n))
    out += _gguf_str("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, n)
    return out + struct.pack(f"<{n}i", *([1] * n))


_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def write_gguf(path: Path, size: int, tensors: int, vocab: int = 32000) -> None:
    """A GGUF v3 file of about ``size`` bytes: llama metadata, a vocabulary, F16 tensors."""
    kvs = [
        _gguf_kv_str("general.architecture", "llama"),
        _gguf_kv_str("general.name", "bench"),
        _gguf_str("general.alignment") + struct.pack("<II", 4, 32),
        _gguf_kv_str("tokenizer.ggml.model", "llama"),
        _gguf_kv_str("tokenizer.chat_template", _CHAT_TEMPLATE),
        _gguf_vocab(vocab),
    ]
    infos, off = [], 0
    for i, (r, c) in enumerate(_tensor_shapes(size, tensors, 2)):
        infos.append(_gguf_str(f"blk.{i // 9}.w{i % 9}.weight"))
        infos.append(struct.pack("<IQQIQ", 2, c, r, 1, off))  # n_dims, ne0, ne1, F16, offset
        off += r * c * 2  # multiples of 2048: every offset stays 32-aligned
    head = b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kvs) + 2)  # vocab holds 3 kvs
    head += b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as fh:
        fh.write(head)
        _fill(fh, off)


@contextlib.contextmanager
def _fake_torch() -> Iterator[tuple[Any, Any]]:
    """Stand-ins for ``torch._utils._rebuild_tensor_v2`` and ``torch.BFloat16Storage``.

    ``pickle`` names globals by module and qualname, so these produce the same opcodes as
    ``torch.save`` without importing torch. They are removed from ``sys.modules`` after.
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None: ...

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    storage = type("BFloat16Storage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch.BFloat16Storage, torch._utils = storage, utils  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield _rebuild_tensor_v2, storage
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


def _torch_pickle(shapes: list[tuple[int, int]]) -> bytes:
    """``data.pkl`` of a ``torch.save``'d state dict (protocol 2, persistent storage ids)."""
    with _fake_torch() as (rebuild, storage_cls):

        class _Tensor:
            def __init__(self, key: str, r: int, c: int) -> None:
                self.key, self.r, self.c = key, r, c

            def __reduce__(self) -> tuple[Any, ...]:
                st = _Storage(self.key, self.r * self.c)
                return (
                    rebuild,
                    (st, 0, (self.r, self.c), (self.c, 1), False, collections.OrderedDict()),
                )

        class _Pickler(pickle.Pickler):
            def persistent_id(self, obj: Any) -> Any:
                if isinstance(obj, _Storage):
                    return ("storage", storage_cls, obj.key, "cpu", obj.numel)
                return None

        sd = collections.OrderedDict(
            (f"model.layers.{i // 9}.w{i % 9}.weight", _Tensor(str(i), r, c))
            for i, (r, c) in enumerate(shapes)
        )
        buf = io.BytesIO()
        _Pickler(buf, protocol=2).dump(sd)
        return buf.getvalue()


def write_torch_zip(path: Path, size: int, tensors: int) -> None:
    """A PyTorch zip checkpoint: ``archive/data.pkl`` plus stored ``archive/data/N`` members."""
    shapes = _tensor_shapes(size, tensors, 2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        _zip_put(zf, "archive/data.pkl", _torch_pickle(shapes))
        _zip_put(zf, "archive/byteorder", b"little")
        for i, (r, c) in enumerate(shapes):
            info = zipfile.ZipInfo(f"archive/data/{i}", _FIXED_DATE)
            with zf.open(info, "w", force_zip64=True) as w:
                _fill(w, r * c * 2)
        _zip_put(zf, "archive/version", b"3\n")
        _zip_put(zf, "archive/.data/serialization_id", b"1234567890123456789012345678901234567890")


def _zip_put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    zf.writestr(zipfile.ZipInfo(name, _FIXED_DATE), data)


def write_big_pickle(path: Path, opcodes: int) -> int:
    """A protocol-4 pickle of a list of small ints and strings; returns its opcode count."""
    n = opcodes * 2 // 3  # ints cost one opcode, strings two (value + MEMOIZE)
    items = [i if i % 2 else f"s{i}" for i in range(n)]
    data = pickle.dumps(items, protocol=4)
    path.write_bytes(data)
    return sum(1 for _ in pickletools.genops(data))


def write_many_zip(path: Path, members: int) -> None:
    """A zip of ``members`` small pickles (``m/00000.pkl`` ...), stored."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(members):
            obj = {"layer": i, "name": f"p{i}", "w": [i, i + 1, 0.5]}
            _zip_put(zf, f"m/{i:05d}.pkl", pickle.dumps(obj, protocol=4))


_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "torch_dtype": "bfloat16",
}


def write_model_dir(d: Path, size: int, tensors: int) -> dict[str, list[Path]]:
    """An HF-style model folder of about ``size`` bytes.

    80% in four safetensors shards, 15% in two PyTorch zip checkpoints, 5% in one GGUF.
    """
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(_CONFIG, indent=2))
    made: dict[str, list[Path]] = {"safetensors": [], "gguf": [], "pytorch": []}
    for i in range(1, 5):
        p = d / f"model-{i:05d}-of-00004.safetensors"
        write_safetensors(p, int(size * 0.2), tensors)
        made["safetensors"].append(p)
    for i in range(1, 3):
        p = d / f"pytorch_model-{i:05d}-of-00002.bin"
        write_torch_zip(p, int(size * 0.075), tensors)
        made["pytorch"].append(p)
    p = d / "model-f16.gguf"
    write_gguf(p, int(size * 0.05), tensors)
    made["gguf"].append(p)
    return made


def write_tensor_dir(d: Path, size: int, tensors: int) -> None:
    """Safetensors + GGUF only (same file and tensor counts at any ``size``)."""
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, 5):
        write_safetensors(d / f"model-{i:05d}-of-00004.safetensors", int(size * 0.2), tensors)
    write_gguf(d / "model-f16.gguf", int(size * 0.05), tensors)


def link_tensor_dir(src: dict[str, list[Path]], d: Path) -> None:
    """The big folder's safetensors and GGUF files, hard-linked (no extra disk)."""
    d.mkdir(parents=True, exist_ok=True)
    for p in src["safetensors"] + src["gguf"]:
        try:
            os.link(p, d / p.name)
        except OSError:
            shutil.copyfile(p, d / p.name)


# ============================================================== the benchmark


def warm(paths: list[Path]) -> None:
    """Read every file once so that all tools see the same warm page cache."""
    buf = bytearray(8 * MIB)
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def files_under(target: Path) -> list[Path]:
    """Regular files of a target, sorted."""
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*") if p.is_file())


@dataclass
class Inputs:
    """What was generated, and facts about it."""

    model: Path
    tensors_small: Path
    tensors_large: Path
    pickle: Path
    zip: Path
    opcodes: int
    members: int


def generate(opts: argparse.Namespace, base: Path) -> Inputs:
    """Write every input under ``base`` (deterministic)."""
    size = int(opts.gb * GIB)
    free = shutil.disk_usage(base.parent).free
    if free < size * 1.3:
        sys.exit(f"need about {size * 1.3 / GIB:.1f} GiB free under {base.parent}")
    t0 = time.perf_counter()
    print(f"generating inputs under {base} ...", flush=True)
    made = write_model_dir(base / "model", size, opts.tensors)
    link_tensor_dir(made, base / "tensors-large")
    write_tensor_dir(base / "tensors-small", size // 10, opts.tensors)
    opcodes = write_big_pickle(base / "big.pkl", opts.opcodes)
    write_many_zip(base / "many.zip", opts.members)
    print(f"  done in {time.perf_counter() - t0:.1f}s", flush=True)
    return Inputs(
        base / "model",
        base / "tensors-small",
        base / "tensors-large",
        base / "big.pkl",
        base / "many.zip",
        opcodes,
        opts.members,
    )


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in files_under(d))


def bench_target(
    label: str, target: Path, kind: str, opts: argparse.Namespace, scratch: Path
) -> list[Result]:
    """Time airlock (with and without hashing), the sha256 floor and the peers on one target."""
    warm(files_under(target))
    cmds = [
        _peers.openssl_cmd(files_under(target)),
        _peers.airlock_cmd(target, scratch, hash_files=True, preload=opts.preload_scanners),
        _peers.airlock_cmd(target, scratch, hash_files=False, preload=opts.preload_scanners),
    ]
    if not opts.no_peers:
        cmds += _peers.peer_cmds(opts.peers_venv, target, kind, scratch)
    out = []
    for c in cmds:
        print(f"  {label}: {c.tool} ...", end="", flush=True)
        r = _peers.measure(label, c, opts, scratch)
        print(f" {_fmt_s(r)}", flush=True)
        out.append(r)
    return out


def bench_tensor_bytes(inp: Inputs, opts: argparse.Namespace, scratch: Path) -> list[Result]:
    """``--no-hash`` on the same safetensors/GGUF layout at two sizes (10× apart)."""
    out = []
    for label, d in (("tensors-small", inp.tensors_small), ("tensors-large", inp.tensors_large)):
        warm(files_under(d))
        c = _peers.airlock_cmd(d, scratch, hash_files=False, preload=opts.preload_scanners)
        print(f"  {label}: {c.tool} ...", end="", flush=True)
        r = _peers.measure(label, c, opts, scratch)
        print(f" {_fmt_s(r)}", flush=True)
        out.append(r)
    return out


# ============================================================== reporting


def _fmt_s(r: Result) -> str:
    if r.ok and r.seconds is not None:
        return f"{r.seconds:.3f}s"
    if r.seconds is not None:
        return f">{r.seconds:.0f}s (n/a)"
    return "n/a"


def _find(results: list[Result], label: str, tool: str) -> Result | None:
    return next((r for r in results if r.input == label and r.tool == tool), None)


def print_table(label: str, desc: str, results: list[Result]) -> None:
    """One table per input; ``× airlock`` is tool time / airlock (full scan) time."""
    rows = [r for r in results if r.input == label]
    base = _find(results, label, "airlock")
    print(f"\n== {label}: {desc}")
    print(f"  {'tool':<20} {'best s':>9} {'runs':>4} {'peak MB':>8} {'×airlock':>9}  notes")
    for r in rows:
        secs = f"{r.seconds:.3f}" if r.ok and r.seconds is not None else "n/a"
        if not r.ok and r.seconds is not None:
            secs = f">{r.seconds:.0f}"
        ratio = ""
        if base and base.ok and base.seconds and r.seconds is not None:
            ratio = ("" if r.ok else ">") + f"{r.seconds / base.seconds:.2f}"
        mb = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        runs = str(len(r.times)) if r.times else "-"
        note = r.note
        if r.extra and "in_process_s" in r.extra:
            note = f"in-process {r.extra['in_process_s']:.3f}s; " + note
        print(f"  {r.tool:<20} {secs:>9} {runs:>4} {mb:>8} {ratio:>9}  {note}")


def _target(
    name: str, value: float | None, goal: str, ok: bool | None, detail: str
) -> dict[str, Any]:
    shown = "n/a" if value is None else f"{value:.2f}"
    return {
        "target": name,
        "value": value,
        "shown": shown,
        "goal": goal,
        "met": ok,
        "detail": detail,
    }


def _secs(results: list[Result], label: str, tool: str) -> float | None:
    r = _find(results, label, tool)
    return r.seconds if r and r.ok else None


def _unparsed(results: list[Result], *labels: str) -> bool:
    """True when airlock did not recognise some weight file of these inputs."""
    return any(
        r.extra and r.extra.get("unparsed")
        for r in results
        if r.input in labels and r.tool.startswith("airlock")
    )


def _judged(t: dict[str, Any], results: list[Result], *labels: str) -> dict[str, Any]:
    """A target whose airlock run skipped weight files is not judged (its time means little)."""
    if _unparsed(results, *labels):
        t["met"] = None
        t["detail"] = "airlock did not parse every weight file (see notes); " + t["detail"]
    return t


def _ratio_target(name: str, num: float | None, den: float | None, goal: float) -> dict[str, Any]:
    v = num / den if num and den else None
    return _target(name, v, f"≤ {goal}", None if v is None else v <= goal, "")


def _peer_ratio(results: list[Result], label: str, name: str) -> dict[str, Any]:
    a = _secs(results, label, "airlock")
    peers = [r for r in results if r.input == label and r.tool in _peers.PEERS]
    # a peer that timed out is at least --timeout; only count it if nothing finished
    done = [r for r in peers if r.ok and r.seconds] or [r for r in peers if r.seconds]
    if a is None or not done:
        return _target(name, None, "≥ 5.0× fastest peer", None, "no peer or no airlock time")
    best = min(done, key=lambda r: r.seconds or 0.0)
    v = (best.seconds or 0.0) / a
    detail = f"fastest peer {best.tool} {best.seconds:.3f}s vs airlock {a:.3f}s"
    return _target(name, v, "≥ 5.0× fastest peer", v >= 5.0, detail)


def evaluate(results: list[Result]) -> list[dict[str, Any]]:
    """The issue's targets, each met / missed / not judged, with its number."""
    a, floor = _secs(results, "model", "airlock"), _secs(results, "model", "openssl sha256")
    hashing = _ratio_target("full scan / sha256 floor", a, floor, 1.25)
    hashing["detail"] = f"airlock {a or 0:.3f}s vs openssl {floor or 0:.3f}s"
    small = _secs(results, "tensors-small", "airlock --no-hash")
    large = _secs(results, "tensors-large", "airlock --no-hash")
    tensor = _ratio_target("--no-hash 10× tensor bytes", large, small, 1.25)
    tensor["detail"] = f"large {large or 0:.3f}s vs small {small or 0:.3f}s (≈1.0 expected)"
    mine = [r for r in results if r.tool.startswith("airlock") and r.ok and r.rss_mb]
    worst = max(mine, key=lambda r: r.rss_mb or 0.0, default=None)
    rss = worst.rss_mb if worst else None
    memory = _target(
        "airlock peak RSS MB",
        rss,
        "< 200",
        None if rss is None else rss < 200,
        f"worst: {worst.tool} on {worst.input}" if worst else "no airlock run",
    )
    every = ("model", "tensors-small", "tensors-large", "pickle", "zip")
    return [
        _judged(hashing, results, "model"),
        _judged(tensor, results, "tensors-small", "tensors-large"),
        _judged(_peer_ratio(results, "pickle", "2M-opcode pickle speed-up"), results, "pickle"),
        _judged(_peer_ratio(results, "zip", "20k-member zip speed-up"), results, "zip"),
        _judged(memory, results, *every),
    ]


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("\n== targets (2 cores)")
    for t in targets:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        print(f"  [{mark}] {t['target']:<28} {t['shown']:>8}  goal {t['goal']:<20} {t['detail']}")


def machine_info(opts: argparse.Namespace) -> dict[str, Any]:
    """Where the numbers come from."""
    ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    vpy = subprocess.run([str(_peers.AIRLOCK_PY), "--version"], capture_output=True, text=True)
    host = _peers.host_info()
    return {
        **host,
        "python_airlock": vpy.stdout.strip(),
        "python_bench": host["python"],
        "openssl": ssl,
        "memory_probe": "GNU time -v"
        if _peers.GNU_TIME.exists()
        else "getrusage(RUSAGE_CHILDREN) wrapper",
        "peers": {} if opts.no_peers else _peers.peer_versions(opts.peers_venv),
        "airlock": _peers.airlock_info(opts.preload_scanners),
    }


def print_machine(info: dict[str, Any]) -> None:
    print("\n== machine")
    for k in ("nproc", "cpu", "platform", "python_airlock", "openssl", "memory_probe"):
        print(f"  {k:<15} {info[k]}")
    peers = ", ".join(f"{k} {v}" for k, v in info["peers"].items()) or "not run"
    print(f"  {'peers':<15} {peers}")
    a = info["airlock"]
    if "error" in a:
        print(f"  {'airlock':<15} could not introspect: {a['error']}")
    else:
        formats = ", ".join(a["formats"]) or "none"
        print(f"  {'airlock':<15} {a['version']}; format scanners: {formats}")
        print(f"  {'':<15} file checks: {', '.join(a['file_checks']) or 'none'}")


# ============================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=2.0, help="model folder size in GiB [2]")
    ap.add_argument("--quick", action="store_true", help="smoke test: 0.2 GiB, one run each")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool, best is kept [3]")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per run [120]")
    ap.add_argument(
        "--long-run", type=float, default=20.0, help="a first run slower than this is not repeated"
    )
    ap.add_argument("--opcodes", type=int, default=2_000_000, help="pickle opcodes [2M]")
    ap.add_argument("--members", type=int, default=20_000, help="zip members [20000]")
    ap.add_argument("--tensors", type=int, default=200, help="tensors per weight file [200]")
    ap.add_argument("--no-peers", action="store_true", help="time airlock and openssl only")
    ap.add_argument("--setup", action="store_true", help="only create the peers venv, then exit")
    ap.add_argument(
        "--preload-scanners",
        action="store_true",
        help="import every airlock.scan.* module first (scanners not yet registered)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--work", type=Path, default=WORK, help=f"work folder [{WORK}]")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.gb, opts.runs = min(opts.gb, 0.2), 1
    opts.peers_venv = opts.work / "peers-venv"
    return opts


def run(opts: argparse.Namespace, base: Path, scratch: Path) -> dict[str, Any]:
    """Generate, time, print; returns everything for ``--json``."""
    info = machine_info(opts)
    inp = generate(opts, base)
    model_bytes = _dir_bytes(inp.model)
    descs = {
        "model": f"{model_bytes / GIB:.2f} GiB, {len(files_under(inp.model))} files "
        "(4 safetensors, 2 PyTorch zip .bin, 1 GGUF, config.json)",
        "pickle": f"{inp.pickle.stat().st_size / MIB:.1f} MiB, {inp.opcodes:,} opcodes",
        "zip": f"{inp.zip.stat().st_size / MIB:.1f} MiB, {inp.members:,} pickle members",
        "tensors-small": f"{_dir_bytes(inp.tensors_small) / GIB:.2f} GiB safetensors+GGUF",
        "tensors-large": f"{_dir_bytes(inp.tensors_large) / GIB:.2f} GiB, same files and tensors",
    }
    print("timing (page cache warmed before each input) ...", flush=True)
    results = bench_target("model", inp.model, "dir", opts, scratch)
    results += bench_tensor_bytes(inp, opts, scratch)
    results += bench_target("pickle", inp.pickle, "pickle", opts, scratch)
    results += bench_target("zip", inp.zip, "zip", opts, scratch)
    print_machine(info)
    for label, desc in descs.items():
        print_table(label, desc, results)
    targets = evaluate(results)
    print_targets(targets)
    print(
        "\nnotes: best of --runs wall times, each tool a fresh process (start-up included);"
        "\n  '× airlock' = tool time / airlock full-scan time; peers skip files they do not"
        "\n  understand (safetensors, GGUF), so on the model folder they do less work."
    )
    return {
        "machine": info,
        "inputs": descs,
        "options": {k: str(v) for k, v in vars(opts).items()},
        "results": [asdict(r) for r in results],
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    opts = parse_args(argv)
    if not opts.no_peers or opts.setup:
        _peers.ensure_peers(opts.peers_venv)
    if opts.setup:
        return 0
    _peers.precompile(ROOT / "src")
    if not _peers.AIRLOCK_BIN.exists():
        sys.exit(f"airlock is not installed in {_peers.AIRLOCK_BIN.parent} (run `make test` once)")
    base, scratch = opts.work / "inputs", opts.work / "scratch"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        data = run(opts, base, scratch)
    finally:
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    if opts.json:
        opts.json.write_text(json.dumps(data, indent=2))
        print(f"results written to {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

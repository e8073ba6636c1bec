"""GGUF (llama.cpp): bounded parse of the header, metadata and tensor infos.

GGUF parsers in the wild were hit by a family of 2024 memory-safety bugs
(huge string lengths, huge array counts, ``n_dims`` overflow, tensor count
overflow). This scanner walks the same structures with every count and length
checked against the bytes left in the file before anything is read; nothing
is allocated by a declared size and tensor data is never read. The chat
template is handed to the ``chat-template`` scanner.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import IO, Any

from airlock.findings import Finding, Rule, Severity, rule
from airlock.scan._metadata_text import metadata_findings
from airlock.scan.base import FileInput, ScanContext, format_scanner

MALFORMED = rule(
    "gguf.malformed",
    Severity.HIGH,
    "Malformed GGUF file",
    "Do not load this file: GGUF parsers have had memory-safety bugs on exactly such "
    "input. Obtain the model from a trusted source or re-convert it.",
    "A count, length or offset in the GGUF header is impossible for this file.",
)
UNSUPPORTED = rule(
    "gguf.unsupported-version",
    Severity.MEDIUM,
    "Unsupported GGUF version",
    "Only GGUF versions 2 and 3 are checked. Re-convert the model with a current llama.cpp.",
    "The GGUF version is not 2 or 3, so the file was not fully checked.",
)
UNKNOWN_TYPE = rule(
    "gguf.unknown-tensor-type",
    Severity.MEDIUM,
    "Unknown GGML tensor type",
    "The tensor type is not one airlock knows; its size could not be checked. "
    "Check which tool wrote the file.",
    "A tensor declares a ggml type id that is not in airlock's table.",
)
MISALIGNED = rule(
    "gguf.misaligned",
    Severity.MEDIUM,
    "Tensor data offset is not aligned",
    "llama.cpp rejects misaligned tensors; the file is corrupt or crafted. Re-convert it.",
    "A tensor offset is not a multiple of general.alignment.",
)
OUT_OF_BOUNDS = rule(
    "gguf.out-of-bounds",
    Severity.HIGH,
    "Tensor data extends past the end of the file",
    "The file is truncated or crafted to make loaders read out of bounds. Obtain a "
    "complete copy from a trusted source.",
    "A tensor's data span ends beyond the end of the file.",
)
OVERLAP = rule(
    "gguf.overlap",
    Severity.HIGH,
    "Tensors overlap in the data section",
    "Overlapping tensors alias each other's bytes. Re-convert the model.",
    "Two tensors' data spans overlap.",
)
GAP = rule(
    "gguf.gap",
    Severity.MEDIUM,
    "Unreferenced bytes in the tensor data section",
    "Bytes that belong to no tensor can hide a payload. Re-convert the model.",
    "There are bytes between tensors, or after the last one, that no tensor covers.",
)
SUSPICIOUS_METADATA = rule(
    "gguf.suspicious-metadata",
    Severity.MEDIUM,
    "Suspicious text in GGUF metadata",
    "Metadata should hold descriptive strings. Review the value; do not let tools "
    "render or execute it.",
    "A GGUF string value contains code-like text, a URL or invisible Unicode.",
)

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {
    T_U8: "B",
    T_I8: "b",
    T_U16: "H",
    T_I16: "h",
    T_U32: "I",
    T_I32: "i",
    T_F32: "f",
    T_BOOL: "?",
    T_U64: "Q",
    T_I64: "q",
    T_F64: "d",
}
GGML_MAX_DIMS = 4
MAX_KEY_BYTES = 65_535
MAX_KV = 100_000  # real files have tens; beyond this is an attack on the parser
MAX_TENSORS = 10_000_000
MAX_ARRAY_DEPTH = 2
MAX_NESTED_ARRAYS = 65_536  # arrays of arrays are rare; each costs a Python step
KEEP_STRING = 8 * 1024 * 1024  # longer string values are skipped, not kept
MAX_REPORTS = 10
CHUNK = 1 << 16
TEMPLATE_KEY = "tokenizer.chat_template"


def _load_types() -> dict[int, tuple[str, int, int]]:
    raw = resources.files("airlock").joinpath("data/gguf_types.json").read_text("utf-8")
    return {int(k): (v[0], int(v[1]), int(v[2])) for k, v in json.loads(raw)["types"].items()}


GGML_TYPES = _load_types()


class _Bad(Exception):
    """A structural violation; ``args[0]`` is the evidence, ``where`` the location."""

    def __init__(self, msg: str, where: str) -> None:
        super().__init__(msg)
        self.where = where


class _Reader:
    """Buffered, bounded reads at absolute offsets of a file of known size."""

    def __init__(self, fh: IO[bytes], size: int, endian: str) -> None:
        self.fh, self.size, self.e = fh, size, endian
        self.pos = 0
        self._buf, self._start = b"", 0

    def left(self) -> int:
        return self.size - self.pos

    def take(self, n: int, what: str) -> bytes:
        """Read exactly ``n`` bytes or raise (never trusts ``n`` beyond the file size)."""
        if n > self.left():
            raise _Bad(f"{what}: needs {n} bytes, {self.left()} left", f"byte {self.pos}")
        off = self.pos - self._start
        if off < 0 or off + n > len(self._buf):
            self.fh.seek(self.pos)
            self._buf, self._start, off = self.fh.read(max(n, CHUNK)), self.pos, 0
            if len(self._buf) < n:
                raise _Bad(f"{what}: short read", f"byte {self.pos}")
        self.pos += n
        return self._buf[off : off + n]

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise _Bad(f"{what}: needs {n} bytes, {self.left()} left", f"byte {self.pos}")
        self.pos += n

    def num(self, code: str, what: str) -> Any:
        return struct.unpack(self.e + code, self.take(struct.calcsize(code), what))[0]

    def string(self, what: str, keep: int = KEEP_STRING) -> bytes:
        """A u64-length string; bytes past ``keep`` are skipped, not read."""
        n = self.num("Q", f"{what} length")
        if n > self.left():
            raise _Bad(
                f"{what}: length {n} exceeds the {self.left()} bytes left", f"byte {self.pos}"
            )
        if n > keep:
            data = self.take(keep, what)
            self.skip(n - keep, what)
            return data
        return self.take(n, what)

    def skip_strings(self, count: int, what: str) -> None:
        """Walk ``count`` strings fast: lengths are decoded from the buffer in a tight loop."""
        fmt, buf, start, pos = self.e + "Q", self._buf, self._start, self.pos
        for _ in range(count):
            off = pos - start
            if off < 0 or off + 8 > len(buf):
                self.fh.seek(pos)
                buf, start, off = self.fh.read(CHUNK), pos, 0
                if len(buf) < 8:
                    raise _Bad(f"{what}: truncated string array", f"byte {pos}")
            pos += 8 + struct.unpack_from(fmt, buf, off)[0]
            if pos > self.size:
                raise _Bad(f"{what}: string length runs past the end of the file", f"byte {pos}")
        self.pos, self._buf, self._start = pos, buf, start


@dataclass(frozen=True)
class _Array:
    """Stands in for an array value that was walked but not kept."""

    count: int


@dataclass
class _Tensor:
    name: str
    dims: list[int]
    type: int
    offset: int


@dataclass
class _Parsed:
    version: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    tensors: list[_Tensor] = field(default_factory=list)
    data_start: int = 0
    alignment: int = 32
    dupes: list[tuple[str, Any]] = field(default_factory=list)
    n_dupes: int = 0


def _sniff(head: bytes, f: FileInput) -> bool:
    return head[:4] == b"GGUF"


@format_scanner("gguf", extensions=(".gguf",), sniff=_sniff, priority=5)
def scan_gguf(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Check a GGUF file's header, metadata and tensor layout; forward its chat templates."""
    p = _Parsed()
    with f.open() as fh:
        try:
            if not (yield from _parse(f, ctx, fh, p)):
                return
        except _Bad as e:
            yield ctx.finding(MALFORMED, f, location=e.where, evidence=str(e))
            yield from _report_meta(f, ctx, p)  # what was read before the fault still counts
            return
    yield from _report_meta(f, ctx, p)
    yield from _check_tensors(f, ctx, p)


def _parse(
    f: FileInput, ctx: ScanContext, fh: IO[bytes], p: _Parsed
) -> Generator[Finding, None, bool]:
    """Parse into ``p``; the generator's return value says whether to continue."""
    head = fh.read(8)
    if len(head) < 8 or head[:4] != b"GGUF":
        raise _Bad("missing GGUF magic or truncated header", "byte 0")
    le, be = struct.unpack("<I", head[4:8])[0], struct.unpack(">I", head[4:8])[0]
    # Big-endian GGUF (s390x) exists; its version reads as a huge number in little-endian.
    endian = "<" if le <= 0xFFFF or be > 0xFFFF else ">"
    p.version = le if endian == "<" else be
    if p.version not in (2, 3):
        yield ctx.finding(UNSUPPORTED, f, location="byte 4", evidence=f"version {p.version}")
        return False
    r = _Reader(fh, f.size, endian)
    r.pos = 8
    n_tensors, n_kv = r.num("Q", "tensor_count"), r.num("Q", "kv_count")
    _check_count(n_kv, MAX_KV, 13, r, "kv_count")
    for i in range(n_kv):
        _read_kv(r, p, i, ctx)
    _check_count(n_tensors, MAX_TENSORS, 24, r, "tensor_count")
    for i in range(n_tensors):
        p.tensors.append(_read_tensor_info(r, i))
    p.alignment = _alignment(p)
    p.data_start = -(-r.pos // p.alignment) * p.alignment
    return True


def _check_count(n: int, cap: int, min_bytes: int, r: _Reader, what: str) -> None:
    if n > cap:
        raise _Bad(f"{what} {n} exceeds the plausible maximum {cap}", f"byte {r.pos}")
    if n * min_bytes > r.left():
        raise _Bad(f"{what} {n} is impossible for the {r.left()} bytes left", f"byte {r.pos}")


def _check_header_budget(r: _Reader, ctx: ScanContext) -> None:
    if r.pos > ctx.limits.max_header_bytes:
        raise _Bad(
            f"metadata exceeds {ctx.limits.max_header_bytes} bytes; not scanned further",
            f"byte {r.pos}",
        )


def _read_kv(r: _Reader, p: _Parsed, i: int, ctx: ScanContext) -> None:
    key_b = r.string(f"key #{i}", keep=MAX_KEY_BYTES + 1)
    if len(key_b) > MAX_KEY_BYTES:
        raise _Bad(f"key #{i} is longer than {MAX_KEY_BYTES} bytes", f"byte {r.pos}")
    key = key_b.decode("utf-8", "replace")
    vtype = r.num("I", f"type of {key}")
    value = _read_value(r, vtype, key, 0)
    if key in p.meta:  # loaders disagree on which copy wins: both are inspected
        p.n_dupes += 1
        if len(p.dupes) < MAX_REPORTS:
            p.dupes.append((key, value))
    else:
        p.meta[key] = value
    _check_header_budget(r, ctx)


def _read_value(r: _Reader, vtype: int, key: str, depth: int) -> Any:
    if vtype in _SCALAR:
        return r.num(_SCALAR[vtype], key)
    if vtype == T_STR:
        return r.string(key).decode("utf-8", "replace")
    if vtype == T_ARR:
        return _read_array(r, key, depth)
    raise _Bad(f"{key}: unknown value type {vtype}", f"byte {r.pos - 4}")


def _read_array(r: _Reader, key: str, depth: int) -> Any:
    if depth >= MAX_ARRAY_DEPTH:
        raise _Bad(f"{key}: arrays nested deeper than {MAX_ARRAY_DEPTH}", f"byte {r.pos}")
    etype, count = r.num("I", f"{key} element type"), r.num("Q", f"{key} count")
    if etype in _SCALAR:
        size = struct.calcsize(_SCALAR[etype])
        _check_count(count, 1 << 62, size, r, f"{key} array count")
        if count <= 16:  # small arrays are kept (alignment lists, etc.)
            return [r.num(_SCALAR[etype], key) for _ in range(count)]
        r.skip(count * size, key)
        return _Array(count)
    if etype == T_STR:
        _check_count(count, 1 << 62, 8, r, f"{key} array count")
        r.skip_strings(count, key)
        return _Array(count)
    if etype == T_ARR:
        _check_count(count, MAX_NESTED_ARRAYS, 12, r, f"{key} array count")
        for _ in range(count):
            _read_array(r, key, depth + 1)
        return _Array(count)
    raise _Bad(f"{key}: unknown array element type {etype}", f"byte {r.pos - 12}")


def _read_tensor_info(r: _Reader, i: int) -> _Tensor:
    name = r.string(f"tensor #{i} name", keep=MAX_KEY_BYTES + 1)
    if len(name) > MAX_KEY_BYTES:
        raise _Bad(f"tensor #{i} name is longer than {MAX_KEY_BYTES} bytes", f"byte {r.pos}")
    label = f"tensor {name.decode('utf-8', 'replace')}"
    n_dims = r.num("I", f"{label} n_dims")
    if n_dims > GGML_MAX_DIMS:
        raise _Bad(f"{label}: n_dims {n_dims} > {GGML_MAX_DIMS}", f"byte {r.pos - 4}")
    dims = [r.num("Q", f"{label} dim") for _ in range(n_dims)]
    ttype, offset = r.num("I", f"{label} type"), r.num("Q", f"{label} offset")
    numel = 1
    for d in dims:
        numel *= d
    if any(d >= 1 << 63 for d in dims) or numel >= 1 << 63:
        raise _Bad(f"{label}: element count overflows int64 ({dims})", f"byte {r.pos}")
    return _Tensor(label, dims, ttype, offset)


def _alignment(p: _Parsed) -> int:
    a = p.meta.get("general.alignment", 32)
    if not isinstance(a, int) or isinstance(a, bool) or a <= 0 or a & (a - 1):
        raise _Bad(f"general.alignment {a!r} is not a power of two", "key general.alignment")
    return a


def _report_meta(f: FileInput, ctx: ScanContext, p: _Parsed) -> Iterator[Finding]:
    m = p.meta
    if isinstance(m.get("general.license"), str):
        ctx.add_fact(
            "license", {"source": f.path, "field": "general.license", "value": m["general.license"]}
        )
    model = {"path": f.path, "format": "gguf", "version": p.version, "tensors": len(p.tensors)}
    for k in ("name", "architecture", "basename", "size_label", "file_type"):
        if f"general.{k}" in m:
            model[k] = m[f"general.{k}"]
    if p.version:
        ctx.add_fact("model", model)
    for key, _ in p.dupes:
        yield ctx.finding(MALFORMED, f, location=f"key {key}", evidence="duplicate metadata key")
    if p.n_dupes > len(p.dupes):
        ev = f"{p.n_dupes - len(p.dupes)} more duplicate metadata keys"
        yield ctx.finding(MALFORMED, f, location="metadata", evidence=ev)
    for i, (key, value) in enumerate([*m.items(), *p.dupes]):
        if not isinstance(value, str):
            continue
        if key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + "."):
            name = key if i < len(m) else f"{key}~dup{i}"
            yield from ctx.scan_nested(
                f, name, value.encode("utf-8"), format_hint="chat-template", sep="#"
            )
            continue
        yield from _inspect(f, ctx, key, value)


def _inspect(f: FileInput, ctx: ScanContext, key: str, value: str) -> Iterator[Finding]:
    yield from metadata_findings(ctx, SUSPICIOUS_METADATA, f, "GGUF", f"key {key}", key, value)


def _nbytes(t: _Tensor) -> int | None:
    info = GGML_TYPES.get(t.type)
    if info is None:
        return None
    _, block, tsize = info
    numel = 1
    for d in t.dims:
        numel *= d
    return numel // block * tsize


class _Reporter:
    """Caps findings per rule so a file with a million bad tensors stays readable."""

    def __init__(self, f: FileInput, ctx: ScanContext) -> None:
        self.f, self.ctx = f, ctx
        self.counts: dict[str, int] = {}
        self.rules: dict[str, Rule] = {}

    def __call__(self, r: Rule, loc: str, ev: str) -> Iterator[Finding]:
        self.counts[r.id] = self.counts.get(r.id, 0) + 1
        self.rules[r.id] = r
        if self.counts[r.id] <= MAX_REPORTS:
            yield self.ctx.finding(r, self.f, location=loc, evidence=ev)

    def summary(self) -> Iterator[Finding]:
        for rid, n in self.counts.items():
            if n > MAX_REPORTS:
                ev = f"{n - MAX_REPORTS} more"
                yield self.ctx.finding(self.rules[rid], self.f, location="tensor data", evidence=ev)


Report = Callable[[Rule, str, str], Iterator[Finding]]


def _check_tensors(f: FileInput, ctx: ScanContext, p: _Parsed) -> Iterator[Finding]:
    report = _Reporter(f, ctx)
    spans: list[tuple[int, int, str]] = []
    for t in p.tensors:
        yield from _check_one(t, p, f, report, spans)
    yield from _check_layout(spans, p, f, report)
    yield from report.summary()


def _check_one(
    t: _Tensor, p: _Parsed, f: FileInput, report: Report, spans: list[tuple[int, int, str]]
) -> Iterator[Finding]:
    nbytes = _nbytes(t)
    if nbytes is None:
        yield from report(UNKNOWN_TYPE, t.name, f"ggml type {t.type}")
        return
    name, block, _ = GGML_TYPES[t.type]
    if t.dims and t.dims[0] % block:
        ev = f"{name}: first dim {t.dims[0]} not a multiple of {block}"
        yield from report(MALFORMED, t.name, ev)
    if t.offset % p.alignment:
        yield from report(MISALIGNED, t.name, f"offset {t.offset} not a multiple of {p.alignment}")
    end = p.data_start + t.offset + nbytes
    if end > f.size:
        ev = f"{name} {t.dims} ends at byte {end}, file has {f.size}"
        yield from report(OUT_OF_BOUNDS, t.name, ev)
    spans.append((t.offset, t.offset + nbytes, t.name))


def _check_layout(
    spans: list[tuple[int, int, str]], p: _Parsed, f: FileInput, report: Report
) -> Iterator[Finding]:
    pos, prev = 0, "start of data"
    for begin, end, name in sorted(spans):
        if begin < pos:
            yield from report(OVERLAP, name, f"begins at {begin}, {prev} ends at {pos}")
        elif begin - pos >= p.alignment:
            yield from report(GAP, name, f"{begin - pos} unreferenced bytes before it")
        if end >= pos:
            pos, prev = end, name
    trailing = f.size - p.data_start - pos
    if spans and trailing >= p.alignment:
        yield from report(GAP, "end of file", f"{trailing} bytes after the last tensor")

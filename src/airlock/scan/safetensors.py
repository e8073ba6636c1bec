"""safetensors: validate the JSON header and the tensor layout without reading tensor bytes.

A safetensors file is ``u64 N`` (little-endian), ``N`` bytes of UTF-8 JSON, then
one flat data area. The format cannot carry code, but a malformed header can
crash or mislead loaders (overlapping or aliased tensors, spans past the end),
and bytes outside any tensor (gaps, trailing data) are a place to hide a
payload. Only ``8 + N`` bytes are ever read: cost never depends on tensor size.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from airlock.findings import Finding, Severity, get_rule, rule
from airlock.scan._metadata_text import metadata_findings
from airlock.scan.base import FileInput, ScanContext, format_scanner

MALFORMED = rule(
    "safetensors.malformed",
    Severity.HIGH,
    "Malformed safetensors header",
    "Do not load this file: loaders may crash or misread it. Re-export the weights "
    "with the official safetensors library from a trusted source.",
    "The safetensors header is not valid JSON of the expected shape.",
)
HEADER_TOO_LARGE = rule(
    "safetensors.header-too-large",
    Severity.MEDIUM,
    "safetensors header is implausibly large",
    "Loaders refuse headers over 100 MB; a huge header is a denial-of-service attempt "
    "or a corrupted file. Obtain a clean copy.",
    "The declared JSON header length exceeds the limit or the file.",
)
OVERLAP = rule(
    "safetensors.overlap",
    Severity.HIGH,
    "Tensors overlap in the data area",
    "Overlapping tensors alias each other's bytes, which loaders reject or misread. "
    "Re-export the weights with the official library.",
    "Two tensors' byte spans overlap.",
)
GAP = rule(
    "safetensors.gap",
    Severity.MEDIUM,
    "Unreferenced bytes between tensors",
    "Bytes that belong to no tensor can hide a payload. Re-export the weights with the "
    "official library, which writes tensors back to back.",
    "The data area has bytes between tensors that no tensor covers.",
)
TRAILING = rule(
    "safetensors.trailing-data",
    Severity.MEDIUM,
    "Data after the last tensor",
    "Bytes after the last tensor are ignored by loaders and can hide a payload "
    "(polyglot files). Re-export the weights or strip the trailing bytes.",
    "The file continues after the end of the last tensor.",
)
UNKNOWN_DTYPE = rule(
    "safetensors.unknown-dtype",
    Severity.MEDIUM,
    "Unknown tensor dtype",
    "Loaders will refuse or misread this tensor. Check which tool wrote the file.",
    "A tensor declares a dtype that safetensors does not define.",
)
SIZE_MISMATCH = rule(
    "safetensors.size-mismatch",
    Severity.HIGH,
    "Tensor byte span does not match its shape and dtype",
    "Loaders will refuse or misread this tensor. Re-export the weights.",
    "shape × dtype size differs from the tensor's data_offsets span.",
)
OUT_OF_BOUNDS = rule(
    "safetensors.out-of-bounds",
    Severity.HIGH,
    "Tensor extends past the end of the file",
    "The file is truncated or crafted to make loaders read out of bounds. Obtain a "
    "complete copy from a trusted source.",
    "A tensor's data_offsets point beyond the data area.",
)
SUSPICIOUS_METADATA = rule(
    "safetensors.suspicious-metadata",
    Severity.MEDIUM,
    "Suspicious text in safetensors metadata",
    "Metadata should hold short descriptive strings. Review the value; do not let "
    "tools render or execute it.",
    "A __metadata__ value contains code-like text, a URL or invisible Unicode.",
)

# Bits per element; sub-byte types (F4, F6) must fill whole bytes.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
}
MAX_RANK = 64  # no real tensor comes close; bounds the shape product
MAX_REPORTS = 10  # per layout rule, then one summary


def _sniff(head: bytes, f: FileInput) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < (1 << 40)


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class _Bad(Exception):
    """The header violates the format; the message is the evidence."""


@format_scanner("safetensors", extensions=(".safetensors",), sniff=_sniff, priority=5)
def scan_safetensors(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Check a safetensors file's header and tensor layout (reads only the header)."""
    header = yield from _read_header(f, ctx)
    if header is None:
        return
    data_size = f.size - 8 - len(header)
    try:
        obj = _parse_json(header)
        tensors, metadata = _parse_entries(obj)
    except _Bad as e:
        yield ctx.finding(MALFORMED, f, location="header", evidence=str(e))
        return
    yield from _capped(f, ctx, _check_metadata(f, ctx, metadata))
    yield from _capped(f, ctx, _check_tensors(f, ctx, tensors, data_size))
    params = sum(_numel(t.shape) for t in tensors)
    ctx.add_fact(
        "model",
        {"path": f.path, "format": "safetensors", "tensors": len(tensors), "parameters": params},
    )


def _read_header(f: FileInput, ctx: ScanContext) -> Generator[Finding, None, bytes | None]:
    """Yield findings; *return* the header bytes, or ``None`` when unusable."""
    with f.open() as fh:
        first = fh.read(8)
        if len(first) < 8:
            yield ctx.finding(MALFORMED, f, location="byte 0", evidence="file shorter than 8 bytes")
            return None
        (n,) = struct.unpack("<Q", first)
        if n > ctx.limits.max_header_bytes:
            yield ctx.finding(HEADER_TOO_LARGE, f, location="byte 0", evidence=f"{n} bytes")
            return None
        if n > f.size - 8:
            ev = f"header length {n} but only {f.size - 8} bytes follow"
            yield ctx.finding(MALFORMED, f, location="byte 0", evidence=ev)
            return None
        header = fh.read(n)
    if len(header) != n:
        yield ctx.finding(MALFORMED, f, location="header", evidence="short read")
        return None
    return header


def _parse_json(header: bytes) -> Any:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise _Bad(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"header is not UTF-8 (byte {e.start})") from None
    try:
        return json.loads(text, object_pairs_hook=no_dupes)
    except (ValueError, RecursionError) as e:
        raise _Bad(f"invalid JSON: {str(e)[:120]}") from None


def _parse_entries(obj: Any) -> tuple[list[_Tensor], Any]:
    if not isinstance(obj, dict):
        raise _Bad(f"header is a JSON {type(obj).__name__}, not an object")
    tensors = [_parse_tensor(k, v) for k, v in obj.items() if k != "__metadata__"]
    return tensors, obj.get("__metadata__")


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_tensor(name: str, v: Any) -> _Tensor:
    if not isinstance(v, dict):
        raise _Bad(f"tensor {name!r}: entry is not an object")
    dtype, shape, offs = v.get("dtype"), v.get("shape"), v.get("data_offsets")
    if not isinstance(dtype, str):
        raise _Bad(f"tensor {name!r}: dtype missing or not a string")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise _Bad(f"tensor {name!r}: shape must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise _Bad(f"tensor {name!r}: rank {len(shape)} exceeds {MAX_RANK}")
    if not (isinstance(offs, list) and len(offs) == 2 and all(_is_uint(o) for o in offs)):
        raise _Bad(f"tensor {name!r}: data_offsets must be [begin, end] non-negative integers")
    if offs[0] > offs[1]:
        raise _Bad(f"tensor {name!r}: data_offsets begin {offs[0]} > end {offs[1]}")
    return _Tensor(name, dtype, tuple(shape), offs[0], offs[1])


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _check_metadata(f: FileInput, ctx: ScanContext, metadata: Any) -> Iterator[Finding]:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        ev = f"__metadata__ is a JSON {type(metadata).__name__}, not an object"
        yield ctx.finding(MALFORMED, f, location="__metadata__", evidence=ev)
        return
    for key, value in metadata.items():
        loc = f"__metadata__.{key}"
        if not isinstance(value, str):
            ev = f"value is a JSON {type(value).__name__}; loaders expect strings"
            yield ctx.finding(MALFORMED, f, location=loc, evidence=ev)
            continue
        yield from metadata_findings(ctx, SUSPICIOUS_METADATA, f, "safetensors", loc, key, value)


def _check_tensors(
    f: FileInput, ctx: ScanContext, tensors: list[_Tensor], data_size: int
) -> Iterator[Finding]:
    for t in tensors:
        yield from _check_one(f, ctx, t, data_size)
    yield from _check_layout(f, ctx, tensors, data_size)


def _check_one(f: FileInput, ctx: ScanContext, t: _Tensor, data_size: int) -> Iterator[Finding]:
    loc = f"tensor {t.name}"
    if t.end > data_size:
        ev = f"data_offsets [{t.begin}, {t.end}] but the data area has {data_size} bytes"
        yield ctx.finding(OUT_OF_BOUNDS, f, location=loc, evidence=ev)
    bits = DTYPE_BITS.get(t.dtype)
    if bits is None:
        yield ctx.finding(UNKNOWN_DTYPE, f, location=loc, evidence=f"dtype {t.dtype!r}")
        return
    total_bits = _numel(t.shape) * bits
    span = t.end - t.begin
    if total_bits % 8 or total_bits // 8 != span:
        ev = f"{t.dtype} {list(t.shape)} needs {total_bits / 8:g} bytes, span is {span}"
        yield ctx.finding(SIZE_MISMATCH, f, location=loc, evidence=ev)


def _check_layout(
    f: FileInput, ctx: ScanContext, tensors: list[_Tensor], data_size: int
) -> Iterator[Finding]:
    pos, prev = 0, "start of data"
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        r = OVERLAP if t.begin < pos else GAP if t.begin > pos else None
        if r is not None:
            ev = f"{t.name} begins at {t.begin}, {prev} ends at {pos}"
            yield ctx.finding(r, f, location=f"tensor {t.name}", evidence=ev)
        if t.end >= pos:
            pos, prev = t.end, t.name
    if pos < data_size:
        ev = f"{data_size - pos} bytes after the last tensor (ends at {pos})"
        yield ctx.finding(TRAILING, f, location=f"byte {f.size - (data_size - pos)}", evidence=ev)


def _capped(f: FileInput, ctx: ScanContext, found: Iterator[Finding]) -> Iterator[Finding]:
    """Pass the first findings of each rule, then one summary: a crafted header with a
    million bad tensors must not become a million findings."""
    counts: dict[str, int] = {}
    for x in found:
        counts[x.rule_id] = counts.get(x.rule_id, 0) + 1
        if counts[x.rule_id] <= MAX_REPORTS:
            yield x
    for rid, n in counts.items():
        if n > MAX_REPORTS:
            ev = f"{n - MAX_REPORTS} more like this"
            yield ctx.finding(get_rule(rid), f, location="header", evidence=ev)

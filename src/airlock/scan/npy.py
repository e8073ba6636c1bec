"""NumPy ``.npy`` scanner: parses the header without numpy and scans object payloads as pickles.

An ``.npy`` whose dtype holds Python objects stores its data as a pickle that
``np.load(allow_pickle=True)`` would execute. The header is a Python literal dict,
parsed with :func:`ast.literal_eval` on a bounded read. ``.npz`` archives are zips; the
zip scanner sends their members here through the dispatcher.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator
from typing import Any

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner
from airlock.scan.pickles import scan_pickle_stream

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20  # numpy itself refuses headers over 10 000 bytes by default

OBJECT_DTYPE = rule(
    "numpy.object-dtype",
    Severity.HIGH,
    "NumPy array stores Python objects as a pickle",
    "Loading it needs np.load(allow_pickle=True), which runs the embedded pickle. Ask for "
    "a numeric array or safetensors; never load it with allow_pickle=True.",
    "The .npy dtype contains 'O' (object) fields, so the data section is a pickle.",
)
MALFORMED = rule(
    "numpy.malformed",
    Severity.MEDIUM,
    "NumPy file header is invalid",
    "The .npy header cannot be parsed; re-obtain the file from its source.",
    "Bad magic/version, truncated or oversized header, or a header that is not the "
    "expected literal dict.",
)
SIZE_MISMATCH = rule(
    "numpy.size-mismatch",
    Severity.MEDIUM,
    "NumPy data size does not match its header",
    "The file is truncated or carries extra bytes after the array; re-obtain it and check "
    "its hash.",
    "shape x itemsize differs from the number of data bytes in the file.",
)

_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)(?:\[\w+\])?$")
_KIND_SIZE = {"?": 1, "b": 1, "B": 1}


def looks_like_npy(head: bytes, f: FileInput) -> bool:
    """Sniff the ``\\x93NUMPY`` magic."""
    return head.startswith(MAGIC)


def _has_object(descr: Any, depth: int = 0) -> bool:
    """True if a dtype description has an object field anywhere (structured included)."""
    if depth > 32:
        return True  # absurd nesting: assume the worst
    if isinstance(descr, str):
        return "O" in descr
    if isinstance(descr, list | tuple):
        fields = [descr] if isinstance(descr, tuple) else descr
        for fld in fields:
            if isinstance(fld, tuple) and len(fld) >= 2:  # (name, type[, shape])
                if _has_object(fld[1], depth + 1):
                    return True
            elif _has_object(fld, depth + 1):
                return True
        return False
    return True  # not a form numpy writes: cannot rule objects out


def _itemsize(descr: Any, depth: int = 0) -> int | None:
    """Bytes per element, or None when it cannot be computed statically."""
    if depth > 32:
        return None
    if isinstance(descr, str):
        m = _TYPESTR.match(descr)
        if not m:
            return None
        kind, digits = m.group(1), m.group(2)
        if kind in _KIND_SIZE and not digits:
            return _KIND_SIZE[kind]
        if not digits:
            return None
        return int(digits) * (4 if kind == "U" else 1)
    if isinstance(descr, list):
        total = 0
        for fld in descr:
            if not (isinstance(fld, tuple) and len(fld) in (2, 3)):
                return None
            size = _itemsize(fld[1], depth + 1)
            count = _shape_count(fld[2]) if len(fld) == 3 else 1
            if size is None or count is None:
                return None
            total += size * count
        return total
    return None


def _shape_count(shape: Any) -> int | None:
    if isinstance(shape, int) and not isinstance(shape, bool) and shape >= 0:
        return shape
    if isinstance(shape, tuple) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return math.prod(shape)
    return None


def _read_header(f: FileInput, data: bytes) -> tuple[dict[str, Any], int] | str:
    """Parse magic, version and header dict; return (header, data offset) or an error."""
    if len(data) < 10 or not data.startswith(MAGIC):
        return "bad magic or truncated preamble"
    major = data[6]
    if major == 1:
        hlen, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        if len(data) < 12:
            return "truncated preamble"
        hlen, start = int.from_bytes(data[8:12], "little"), 12
    else:
        return f"unsupported version {major}.{data[7]}"
    if hlen > MAX_HEADER:
        return f"header of {hlen} bytes exceeds {MAX_HEADER}"
    raw = data[start : start + hlen]
    if len(raw) < hlen:
        return "truncated header"
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as e:
        return f"header is not a literal: {type(e).__name__}"
    if not isinstance(header, dict) or not {"descr", "shape"} <= header.keys():
        return "header is not a dict with 'descr' and 'shape'"
    return header, start + hlen


@format_scanner("numpy", extensions=(".npy",), sniff=looks_like_npy, priority=10)
def scan_npy(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Format scanner for ``.npy`` arrays."""
    with f.open() as fh:
        parsed = _read_header(f, fh.read(12 + MAX_HEADER))
        if isinstance(parsed, str):
            yield ctx.finding(MALFORMED, f, location="header", evidence=parsed)
            return
        header, offset = parsed
        descr, shape = header["descr"], header["shape"]
        if _has_object(descr):
            yield ctx.finding(OBJECT_DTYPE, f, location="header", evidence=f"descr={descr!r}"[:200])
            fh.seek(offset)
            yield from scan_pickle_stream(fh, f, ctx)
            return
    yield from _check_size(f, ctx, descr, shape, offset)


def _check_size(
    f: FileInput, ctx: ScanContext, descr: Any, shape: Any, offset: int
) -> Iterator[Finding]:
    count = _shape_count(shape) if isinstance(shape, tuple) else None
    if count is None:
        yield ctx.finding(MALFORMED, f, location="header", evidence=f"shape={shape!r}"[:200])
        return
    size = _itemsize(descr)
    if size is None:
        return  # a dtype we cannot size statically; nothing executes, so only unverified
    want, have = count * size, f.size - offset
    if want != have:
        yield ctx.finding(
            SIZE_MISMATCH,
            f,
            location=f"data at byte 0x{offset:x}",
            evidence=f"header declares {want} bytes, file has {have}",
            extra={"declared": want, "actual": have},
        )

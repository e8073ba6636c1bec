"""ONNX: walk the ModelProto with a minimal bounded protobuf reader (no onnx/protobuf import).

What matters for safety in an ONNX file is not the weights but two kinds of
reference out of the file: tensors whose bytes live in *external data*
(a path that can point anywhere, e.g. ``../../.ssh/id_rsa``, which a loader then
reads and may leak through outputs) and operators from *custom domains*, which
need a native library to be loaded. Large length-delimited fields (``raw_data``)
are skipped by offset arithmetic, never read, so cost does not grow with weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from airlock.findings import Finding, Severity, rule
from airlock.scan._metadata_text import metadata_findings
from airlock.scan.base import FileInput, ScanContext, format_scanner

MALFORMED = rule(
    "onnx.malformed",
    Severity.HIGH,
    "Malformed ONNX protobuf",
    "The file is not a well-formed ONNX model; runtimes may crash on it. Obtain a "
    "clean export from a trusted source.",
    "The protobuf wire format of the ONNX model is invalid or nested too deep.",
)
EXTERNAL_ESCAPE = rule(
    "onnx.external-data-escape",
    Severity.HIGH,
    "External tensor data points outside the model directory",
    "Do not load this model: the runtime would read an arbitrary file (absolute path or "
    "'..') into a tensor, which can leak it. Keep external data next to the model.",
    "An initializer's external_data location is absolute, contains '..' or resolves "
    "outside the model's directory.",
)
EXTERNAL_MISSING = rule(
    "onnx.external-data-missing",
    Severity.LOW,
    "External tensor data file is missing",
    "Ship the external data file with the model, or the model will not load.",
    "An external_data location names a file that is not next to the model.",
)
CUSTOM_DOMAIN = rule(
    "onnx.custom-operator-domain",
    Severity.MEDIUM,
    "Operators from a custom domain",
    "Custom operators need a native library registered with the runtime; that library "
    "runs with your privileges. Only load it from a source you trust.",
    "A node uses an operator domain outside the ONNX standard domains.",
)
SUSPICIOUS_METADATA = rule(
    "onnx.suspicious-metadata",
    Severity.MEDIUM,
    "Suspicious text in ONNX metadata",
    "Metadata should hold descriptive strings. Review the value; do not let tools "
    "render or execute it.",
    "A metadata_props value contains code-like text, a URL or invisible Unicode.",
)

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
)
# ONNX Runtime's built-in contrib operators: known code, but not the ONNX standard.
RUNTIME_DOMAINS = frozenset(
    {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc"}
)
MAX_DEPTH = 48  # graphs in attributes in nodes in graphs ...
MAX_STRING = 4096  # names, domains, keys: longer ones are cut, not read
MAX_META_STRING = 1 << 20
MAX_ITEMS = 1000  # external refs, domains, metadata entries kept (memory stays bounded)
CHUNK = 1 << 16
WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5


class _Bad(Exception):
    """Invalid wire format; message is the evidence."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg)
        self.pos = pos


class _Window:
    """Random-access reads through one cached chunk."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.buf, self.start = b"", 0

    def read(self, off: int, n: int) -> bytes:
        rel = off - self.start
        if rel >= 0 and rel + n <= len(self.buf):
            return self.buf[rel : rel + n]
        self.fh.seek(off)
        if n > CHUNK:
            return self.fh.read(n)
        self.buf, self.start = self.fh.read(CHUNK), off
        return self.buf[:n]


@dataclass(frozen=True)
class _Field:
    num: int
    wt: int
    value: int  # varint/fixed value, or payload start for length-delimited
    end: int  # payload end for length-delimited, else the next field's start


@dataclass
class _State:
    ir_version: int | None = None
    producer: str | None = None
    opsets: dict[str, int] = field(default_factory=dict)
    domains: dict[str, list[str]] = field(default_factory=dict)  # domain -> op types seen
    local_domains: set[str] = field(default_factory=set)
    external: list[tuple[str, str]] = field(default_factory=list)  # (tensor, location)
    metadata: list[tuple[str, str]] = field(default_factory=list)
    nodes: int = 0
    initializers: int = 0


class _Walker:
    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.w, self.size = _Window(fh), size
        self.st = _State()

    # -- wire format ------------------------------------------------------------------

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        raw = self.w.read(pos, min(10, end - pos))
        result = 0
        for i, b in enumerate(raw):
            result |= (b & 0x7F) << (7 * i)
            if b < 0x80:
                return result, pos + i + 1
        raise _Bad("truncated or over-long varint", pos)

    def fields(self, start: int, end: int) -> Iterator[_Field]:
        pos = start
        while pos < end:
            key, pos = self.varint(pos, end)
            num, wt = key >> 3, key & 7
            if num == 0:
                raise _Bad("field number 0", pos)
            if wt == WT_VARINT:
                val, nxt = self.varint(pos, end)
                yield _Field(num, wt, val, nxt)
            elif wt in (WT_I64, WT_I32):
                nxt = pos + (8 if wt == WT_I64 else 4)
                if nxt > end:
                    raise _Bad("truncated fixed-width field", pos)
                yield _Field(num, wt, int.from_bytes(self.w.read(pos, nxt - pos), "little"), nxt)
            elif wt == WT_LEN:
                n, p0 = self.varint(pos, end)
                if n > end - p0:
                    raise _Bad(
                        f"field {num}: length {n} exceeds its message ({end - p0} left)", pos
                    )
                nxt = p0 + n
                yield _Field(num, wt, p0, nxt)
            else:
                raise _Bad(f"field {num}: unsupported wire type {wt}", pos)
            pos = nxt

    def string(self, fl: _Field, cap: int = MAX_STRING) -> str:
        self._need_len(fl)
        return self.w.read(fl.value, min(fl.end - fl.value, cap)).decode("utf-8", "replace")

    def _need_len(self, fl: _Field) -> None:
        if fl.wt != WT_LEN:
            raise _Bad(f"field {fl.num}: expected a length-delimited value", fl.value)

    def sub(self, fl: _Field, depth: int) -> tuple[int, int, int]:
        self._need_len(fl)
        if depth >= MAX_DEPTH:
            raise _Bad(f"messages nested deeper than {MAX_DEPTH}", fl.value)
        return fl.value, fl.end, depth + 1

    # -- ONNX messages ------------------------------------------------------------------

    def model(self) -> None:
        for fl in self.fields(0, self.size):
            if fl.num == 1 and fl.wt == WT_VARINT:
                self.st.ir_version = fl.value
            elif fl.num == 2:
                self.st.producer = self.string(fl)
            elif fl.num == 7:
                self.graph(*self.sub(fl, 0))
            elif fl.num == 8:
                self.opset(*self.sub(fl, 0))
            elif fl.num == 14:
                item = self.entry(*self.sub(fl, 0), cap=MAX_META_STRING)
                if len(self.st.metadata) < MAX_ITEMS:
                    self.st.metadata.append(item)
            elif fl.num == 20:
                self.training_info(*self.sub(fl, 0))
            elif fl.num == 25:
                self.function(*self.sub(fl, 0))

    def opset(self, start: int, end: int, depth: int) -> None:
        domain, version = "", 0
        for fl in self.fields(start, end):
            if fl.num == 1:
                domain = self.string(fl)
            elif fl.num == 2 and fl.wt == WT_VARINT:
                version = fl.value
        self.st.opsets[domain] = version

    def entry(self, start: int, end: int, depth: int, cap: int = MAX_STRING) -> tuple[str, str]:
        key = value = ""
        for fl in self.fields(start, end):
            if fl.num == 1:
                key = self.string(fl)
            elif fl.num == 2:
                value = self.string(fl, cap)
        return key, value

    def training_info(self, start: int, end: int, depth: int) -> None:
        for fl in self.fields(start, end):
            if fl.num in (1, 2):
                self.graph(*self.sub(fl, depth))

    def function(self, start: int, end: int, depth: int) -> None:
        for fl in self.fields(start, end):
            if fl.num == 10:
                self.st.local_domains.add(self.string(fl))
            elif fl.num == 7:
                self.node(*self.sub(fl, depth))

    def graph(self, start: int, end: int, depth: int) -> None:
        for fl in self.fields(start, end):
            if fl.num == 1:
                self.node(*self.sub(fl, depth))
            elif fl.num == 5:
                self.st.initializers += 1
                self.tensor(*self.sub(fl, depth))
            elif fl.num == 15:
                self.sparse(*self.sub(fl, depth))

    def node(self, start: int, end: int, depth: int) -> None:
        op_type, domain = "", ""
        for fl in self.fields(start, end):
            if fl.num == 4:
                op_type = self.string(fl)
            elif fl.num == 7:
                domain = self.string(fl)
            elif fl.num == 5:
                self.attribute(*self.sub(fl, depth))
        self.st.nodes += 1
        if domain not in self.st.domains and len(self.st.domains) >= MAX_ITEMS:
            return
        ops = self.st.domains.setdefault(domain, [])
        if len(ops) < 20 and op_type not in ops:
            ops.append(op_type)

    def attribute(self, start: int, end: int, depth: int) -> None:
        for fl in self.fields(start, end):
            if fl.num in (5, 10):
                self.tensor(*self.sub(fl, depth))
            elif fl.num in (6, 11):
                self.graph(*self.sub(fl, depth))
            elif fl.num in (22, 23):
                self.sparse(*self.sub(fl, depth))

    def sparse(self, start: int, end: int, depth: int) -> None:
        for fl in self.fields(start, end):
            if fl.num in (1, 2):
                self.tensor(*self.sub(fl, depth))

    def tensor(self, start: int, end: int, depth: int) -> None:
        name, location, external = "", None, False
        for fl in self.fields(start, end):
            if fl.num == 8:
                name = self.string(fl)
            elif fl.num == 13:
                key, value = self.entry(*self.sub(fl, depth))
                if key == "location":
                    location = value
            elif fl.num == 14 and fl.wt == WT_VARINT:
                external = fl.value == 1
        if location is not None:
            if len(self.st.external) < MAX_ITEMS:
                self.st.external.append((name, location))
        elif external:
            raise _Bad(f"tensor {name!r}: data_location EXTERNAL without a location", start)


@format_scanner("onnx", extensions=(".onnx",))
def scan_onnx(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Walk an ONNX model: external data paths, operator domains, metadata."""
    with f.open() as fh:
        walker = _Walker(fh, f.size)
        try:
            walker.model()
        except _Bad as e:
            yield ctx.finding(MALFORMED, f, location=f"byte {e.pos}", evidence=str(e))
        except RecursionError:
            yield ctx.finding(MALFORMED, f, evidence="messages nested too deep")
    st = walker.st
    yield from _check_external(f, ctx, st)
    yield from _check_domains(f, ctx, st)
    yield from _check_metadata(f, ctx, st)
    ctx.add_fact(
        "model",
        {
            "path": f.path,
            "format": "onnx",
            "ir_version": st.ir_version,
            "producer": st.producer,
            "opsets": dict(st.opsets),
            "nodes": st.nodes,
            "initializers": st.initializers,
        },
    )


def location_problem(location: str) -> str | None:
    """Why an external_data location escapes its directory, judged on the text alone.

    Args:
        location: the ``location`` value of a TensorProto's external_data.

    Returns:
        A reason (``"absolute path"``, ``"'..' component"`` …) or ``None`` if it is a
        plain relative path.
    """
    if "\x00" in location:
        return "NUL byte in path"
    norm = location.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "absolute path"
    if norm.startswith("~"):
        return "home-relative path"
    if ".." in norm.split("/"):
        return "'..' component"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", norm):
        return "URL"
    return None


def _check_external(f: FileInput, ctx: ScanContext, st: _State) -> Iterator[Finding]:
    by_loc: dict[str, list[str]] = {}
    for name, loc in st.external:  # many tensors usually share one data file
        by_loc.setdefault(loc, []).append(name)
    for loc, names in by_loc.items():
        where = f"initializer {names[0]}" + (f" (+{len(names) - 1} more)" if len(names) > 1 else "")
        reason = location_problem(loc)
        if reason is None and f.fs_path is not None:
            reason, missing = _resolve(f.fs_path, loc)
            if missing and reason is None:
                yield ctx.finding(EXTERNAL_MISSING, f, location=where, evidence=loc)
        if reason is not None:
            yield ctx.finding(EXTERNAL_ESCAPE, f, location=where, evidence=f"{loc} ({reason})")


def _resolve(model: Path, loc: str) -> tuple[str | None, bool]:
    """(reason it escapes via symlinks, whether the target is missing)."""
    try:
        base = model.parent.resolve()
        target = (base / loc).resolve()
    except (OSError, RuntimeError, ValueError):
        return "path cannot be resolved", False
    if not target.is_relative_to(base):
        return f"resolves to {target}", False
    return None, not target.exists()


def _check_domains(f: FileInput, ctx: ScanContext, st: _State) -> Iterator[Finding]:
    for domain, ops in sorted(st.domains.items()):
        if domain in STANDARD_DOMAINS or domain in st.local_domains:
            continue
        sev = Severity.LOW if domain in RUNTIME_DOMAINS else None
        yield ctx.finding(
            CUSTOM_DOMAIN,
            f,
            title=f"Operators from custom domain {domain!r}",
            location=f"domain {domain}",
            evidence=", ".join(ops),
            severity=sev,
            extra={"domain": domain, "op_types": ops},
        )


def _check_metadata(f: FileInput, ctx: ScanContext, st: _State) -> Iterator[Finding]:
    for key, value in st.metadata:
        loc = f"metadata_props {key}"
        yield from metadata_findings(ctx, SUSPICIOUS_METADATA, f, "ONNX", loc, key, value)

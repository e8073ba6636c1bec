"""ZIP containers: PyTorch checkpoints, TorchScript, Keras v3, npz and plain zips.

The archive is parsed by :mod:`airlock.scan.zipparse` (never :mod:`zipfile`): every
disagreement between what loaders might read becomes a finding, then every member
that can carry code is handed to the dispatcher through ``ctx.scan_nested``.

Members are read with bounds: a streaming inflater that stops at
``Limits.max_member_bytes`` or when the ratio exceeds ``Limits.max_compression_ratio``.
PyTorch tensor storages (``<prefix>/data/<n>``) are only sniffed, never read,
unless their first bytes look like a pickle, an executable or another archive.
"""

from __future__ import annotations

import importlib
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from operator import methodcaller
from typing import IO, Any, cast

from airlock.findings import Finding, Rule, Severity, rule
from airlock.scan.base import (
    FORMAT_SCANNERS,
    NESTING_TOO_DEEP,
    SNIFF_BYTES,
    FileInput,
    ScanContext,
    format_scanner,
)
from airlock.scan.zipparse import (
    BOMB_MIN_BYTES,
    DEFLATED,
    EOCD_SIG,
    LFH_SIG,
    STORED,
    SUPPORTED_METHODS,
    Archive,
    Entry,
    MemberReader,
    Prefixed,
    Source,
    ZipError,
    open_source,
    overlapping,
    read_archive,
    slice_opener,
)

MALFORMED = rule(
    "zip.malformed", Severity.MEDIUM, "Malformed ZIP archive",
    "The archive is damaged or crafted; loaders may read something other than what "
    "was scanned. Re-create it from trusted sources or treat it as untrusted.",
    "The ZIP structure is truncated, inconsistent or points outside the file.",
)  # fmt: skip
NAME_MISMATCH = rule(
    "zip.name-mismatch", Severity.HIGH, "Local and central ZIP headers name a member differently",
    "Different ZIP readers will see different files; this is a known scanner-evasion "
    "trick. Do not load the archive.",
    "A member's local header name differs from its central directory name.",
)  # fmt: skip
HEADER_MISMATCH = rule(
    "zip.header-mismatch", Severity.MEDIUM, "Local and central ZIP headers disagree",
    "Readers that trust the local header read different data than those that trust the "
    "central directory. Re-create the archive from trusted sources.",
    "Compression method, CRC, sizes or encryption flag differ between the two headers.",
)  # fmt: skip
BAD_CRC = rule(
    "zip.bad-crc", Severity.MEDIUM, "ZIP member fails its CRC check",
    "The member was altered after the archive was written, or the archive is corrupt. "
    "Obtain a fresh copy from the publisher.",
    "The CRC-32 of the decompressed member differs from the one declared.",
)  # fmt: skip
ENCRYPTED = rule(
    "zip.encrypted", Severity.HIGH, "Encrypted ZIP member cannot be scanned",
    "Encrypted content cannot be inspected; obtain an unencrypted copy and scan it.",
    "A member has the encryption flag set (or uses AES), so its content is opaque.",
)  # fmt: skip
DUPLICATE = rule(
    "zip.duplicate-name", Severity.HIGH, "ZIP archive holds two members with the same name",
    "Different loaders pick different copies; the scanned one may not be the loaded one. "
    "Do not load the archive; re-create it.",
    "Two or more central directory entries share one name.",
)  # fmt: skip
TRAVERSAL = rule(
    "zip.path-traversal", Severity.HIGH, "ZIP member path escapes the extraction directory",
    "Do not extract this archive; a member would be written outside the target "
    "directory (zip-slip).",
    "A member name is absolute, has a drive letter, a '..' component, a backslash or NUL.",
)  # fmt: skip
BOMB = rule(
    "zip.compression-bomb", Severity.HIGH, "ZIP member decompresses to an excessive size",
    "The member inflates far beyond a plausible size (zip bomb). Do not extract it; only "
    "a bounded prefix was scanned.",
    "Declared or observed size or compression ratio exceeds the configured limits.",
)  # fmt: skip
UNSUPPORTED = rule(
    "zip.unsupported-compression", Severity.MEDIUM, "ZIP member uses an unsupported compression",
    "Its content could not be scanned. Re-pack the archive with deflate or no compression.",
    "The compression method is neither stored, deflate, bzip2 nor LZMA.",
)  # fmt: skip
SYMLINK = rule(
    "zip.symlink", Severity.MEDIUM, "ZIP member is a symbolic link",
    "Extracting a symlink can make later members write outside the target directory or "
    "expose local files. Extract without following links or reject the archive.",
    "The member's external attributes mark it as a Unix symbolic link.",
)  # fmt: skip
NESTED = rule(
    "zip.nested-archive", Severity.MEDIUM, "ZIP member is itself an archive",
    "Nested archives hide content and multiply decompression; review why it is there. "
    "airlock scanned it recursively up to the nesting limit.",
    "A member (not a model container by name) starts with ZIP, gzip, tar, bzip2, xz, 7z "
    "or RAR magic.",
)  # fmt: skip
OVERLAP = rule(
    "zip.overlapping-entries", Severity.HIGH, "ZIP members overlap",
    "Overlapping members are used for zip bombs and to show loaders different content; "
    "reject the archive.",
    "A member's local header lies inside another member's data.",
)  # fmt: skip
PREPENDED = rule(
    "zip.prepended-data", Severity.LOW, "Data before the first ZIP member",
    "Self-extracting archives do this; for a model checkpoint it means loaders that check "
    "the first bytes (torch.load) read the prefix instead of the archive. Inspect it.",
    "Bytes precede the first local header.",
)  # fmt: skip
TOO_MANY = rule(
    "zip.too-many-members", Severity.MEDIUM, "ZIP archive has more members than scanned",
    "Only the first members were scanned; raise limits or split the archive.",
    "The central directory holds more entries than Limits.max_archive_members.",
)  # fmt: skip
TS_CODE = rule(
    "torchscript.code-present", Severity.HIGH, "TorchScript archive carries code",
    "torch.jit.load runs the serialized TorchScript program. Load only from trusted "
    "publishers, or convert to safetensors weights.",
    "The archive has code/ members or constants.pkl: it is a TorchScript program.",
)  # fmt: skip
TS_SUSPICIOUS = rule(
    "torchscript.suspicious-code", Severity.HIGH, "TorchScript code calls a dangerous function",
    "The serialized program refers to process, import or eval facilities that model code "
    "never needs. Do not load it.",
    "A code/ member mentions os.system, subprocess, __import__, eval, exec or builtins.",
)  # fmt: skip

TORCH_EXTS = frozenset({".pt", ".pth", ".bin", ".ckpt", ".pte", ".mar"})
ZIP_EXTS = (".zip", ".keras", ".npz", *sorted(TORCH_EXTS))
MODEL_CONTAINER_EXTS = frozenset({*TORCH_EXTS, ".keras", ".npz", ".nemo", ".safetensors"})
_STORAGE_RE = re.compile(r"^(?:\.data|data)/\d+$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_TS_BAD = re.compile(
    rb"\bos\.(?:system|popen|exec\w*|spawn\w*)\b|\bsubprocess\b|\b__import__\b|\bbuiltins\b"
    rb"|(?<![\w.])(?:eval|exec|compile)\s*\("
)
# first opcodes of a pickle without its PROTO header (protocol 0-1 streams, and a
# protocol 4+ stream cut after PROTO: FRAME or SHORT_BINUNICODE first)
_PICKLE_START = frozenset(b"(c}])LIJKM\x80\x8c\x95")
_TORCH_KINDS = frozenset({"pytorch", "torchscript"})
_CONTENT_KINDS = frozenset({"torchscript", "keras"})  # kinds with members read for content
SNIFF_LEN = 512
SMALL_MEMBER = 1024 * 1024  # compressed bytes read and inflated in one call
MAX_PER_RULE = 50


def _sniff_zip(head: bytes, f: FileInput) -> bool:
    return head.startswith(LFH_SIG) or head.startswith(EOCD_SIG)


@format_scanner("zip", extensions=ZIP_EXTS, sniff=_sniff_zip)
def scan_zip(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan a ZIP container: its structure, then every member through the dispatcher."""
    with open_source(f.open) as src:
        try:
            arc = read_archive(src, ctx.limits.max_archive_members)
        except ZipError as err:
            yield from _not_a_zip(f, ctx, str(err))
            return
        cap = _Cap(ctx)
        yield from _structure(f, ctx, arc, cap)
        kind = classify(arc)
        ctx.add_fact("model", {"path": f.path, "format": kind})
        if kind == "torchscript":
            yield _code_present(f, ctx, arc)
        if f.depth + 1 > ctx.limits.max_nesting:
            yield ctx.finding(NESTING_TOO_DEEP, f, evidence=f"depth {f.depth + 1}")
        else:
            yield from _scan_members(f, ctx, src, arc, kind, cap)
        yield from cap.summary(f)


def _not_a_zip(f: FileInput, ctx: ScanContext, why: str) -> Iterator[Finding]:
    """The file was routed here but is no zip: judge by what a loader would do with it."""
    if f.head.startswith((LFH_SIG, EOCD_SIG)) or f.suffix not in TORCH_EXTS:
        yield ctx.finding(MALFORMED, f, evidence=why)
        return
    pickle = FORMAT_SCANNERS.get("pickle")
    if pickle is not None and f.head[:1] and f.head[0] in _PICKLE_START:
        # torch.load unpickles any file that is neither a zip nor a tar
        yield from pickle.fn(f, ctx)


class _Cap:
    """Keeps a crafted archive from producing one finding per member for ever."""

    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.counts: dict[str, int] = {}
        self.rules: dict[str, Rule] = {}

    def __call__(self, r: Rule, where: FileInput | str, **kw: Any) -> Iterator[Finding]:
        n = self.counts[r.id] = self.counts.get(r.id, 0) + 1
        self.rules[r.id] = r
        if n <= MAX_PER_RULE:
            yield self.ctx.finding(r, where, **kw)

    def summary(self, f: FileInput) -> Iterator[Finding]:
        for rid, n in self.counts.items():
            if n > MAX_PER_RULE:
                r = self.rules[rid]
                title = f"{r.title} ({n - MAX_PER_RULE} more occurrences not listed)"
                yield self.ctx.finding(r, f, title=title, extra={"count": n})


def _member(f: FileInput, e: Entry) -> str:
    return f"{f.path}!{e.name}"


def _structure(f: FileInput, ctx: ScanContext, arc: Archive, cap: _Cap) -> Iterator[Finding]:
    for problem in arc.problems:
        yield from cap(MALFORMED, f, evidence=problem)
    if arc.too_many:
        yield ctx.finding(TOO_MANY, f, evidence=f"scanned the first {len(arc.entries)} members")
    if arc.prefix:
        sev = Severity.MEDIUM if f.suffix in TORCH_EXTS else None
        ev = f"{arc.prefix} bytes before the first member"
        yield ctx.finding(PREPENDED, f, severity=sev, location="offset 0", evidence=ev)
    yield from _duplicates(f, arc, cap)
    big = min(ctx.limits.max_member_bytes, BOMB_MIN_BYTES)
    odd = _odd_names(arc)
    for e in arc.entries:
        if _suspect(e, big, odd):  # cheap test first: most entries are fine
            yield from _entry_findings(f, ctx, e, cap)


def _suspect(e: Entry, big: int, odd_names: bool) -> bool:
    """Could any per-entry structural rule fire for ``e``?"""
    return bool(
        e.mismatches
        or e.flags & 1
        or e.method not in _PLAIN_METHODS
        or (e.usize > big and e.method != STORED)
        or (e.create_system == 3 and e.is_symlink)
        or (odd_names and unsafe_path(e.name))
        or (e.local_name and e.local_name != e.raw_name)
    )


_PLAIN_METHODS = frozenset({STORED, DEFLATED})


def _odd_names(arc: Archive) -> bool:
    """Could any member name be unsafe (see :func:`unsafe_path`)? One pass at C speed."""
    joined = "\n" + "\n".join(e.name for e in arc.entries)
    return any(s in joined for s in ("\x00", "\\", "..", "\n/", ":"))


def _duplicates(f: FileInput, arc: Archive, cap: _Cap) -> Iterator[Finding]:
    counts: dict[str, int] = {}
    for e in arc.entries:
        counts[e.name] = counts.get(e.name, 0) + 1
    for name, n in counts.items():
        if n > 1:
            yield from cap(DUPLICATE, f"{f.path}!{name}", evidence=f"{n} entries named {name!r}")


def _entry_findings(f: FileInput, ctx: ScanContext, e: Entry, cap: _Cap) -> Iterator[Finding]:
    where, loc = _member(f, e), f"central directory entry {e.index}"
    if e.local_name and e.local_name != e.raw_name:
        ev = f"local {e.local_name!r} vs central {e.raw_name!r}"
        yield from cap(NAME_MISMATCH, where, location=loc, evidence=ev)
    for m in e.mismatches:
        r = OVERLAP if m.startswith("overlaps") else HEADER_MISMATCH
        yield from cap(r, where, location=loc, evidence=m)
    unsafe = unsafe_path(e.name)
    if unsafe:
        yield from cap(TRAVERSAL, where, location=loc, evidence=f"{e.name!r}: {unsafe}")
    if e.encrypted:
        yield from cap(ENCRYPTED, where, location=loc, evidence=f"flags 0x{e.flags:04x}")
    elif e.method not in SUPPORTED_METHODS:
        yield from cap(UNSUPPORTED, where, location=loc, evidence=f"method {e.method}")
    if e.is_symlink:
        yield from cap(SYMLINK, where, location=loc, evidence=f"mode {e.external_attr >> 16:o}")
    if _declared_bomb(e, ctx):
        ev = f"declares {e.usize} bytes from {e.csize} compressed"
        yield from cap(BOMB, where, location=loc, evidence=ev)


def unsafe_path(name: str) -> str | None:
    """Why extracting a member of this name would be unsafe, or ``None``."""
    if "\x00" in name:
        return "NUL byte in name (C loaders cut the name there)"
    if "\\" in name:
        return "backslash in name (a path separator on Windows)"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(name):
        return "drive letter"
    if ".." in name.split("/"):
        return "parent-directory component"
    return None


def _declared_bomb(e: Entry, ctx: ScanContext) -> bool:
    lim = ctx.limits
    if e.method == STORED:  # stored bytes are really in the file: large, not a bomb
        return False
    if e.usize > lim.max_member_bytes:
        return True
    return e.usize > 1024 * 1024 and e.usize > lim.max_compression_ratio * max(e.csize, 1)


def classify(arc: Archive) -> str:
    """``pytorch``, ``torchscript``, ``keras``, ``npz`` or ``zip``."""
    names = [n for e in arc.entries if not ((n := e.name)[-1:] == "/" and e.usize == 0)]
    rels = {n.split("/", 1)[-1] for n in names}  # _rel, inlined: archives are large
    if "constants.pkl" in rels or any(map(methodcaller("startswith", "code/"), rels)):
        return "torchscript"
    if "data.pkl" in rels:
        return "pytorch"
    top = set(names)
    if "config.json" in top and ({"metadata.json", "model.weights.h5"} & top):
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _rel(name: str) -> str:
    """Name below the single top-level directory PyTorch archives put everything in."""
    return name.split("/", 1)[1] if "/" in name else name


def _code_present(f: FileInput, ctx: ScanContext, arc: Archive) -> Finding:
    code = [e.name for e in arc.entries if _rel(e.name).startswith("code/") and not e.is_dir]
    if not code:
        code = [e.name for e in arc.entries if _rel(e.name) == "constants.pkl"]
    ev = ", ".join(code[:8]) + (f" (+{len(code) - 8} more)" if len(code) > 8 else "")
    return ctx.finding(TS_CODE, f, location="code/", evidence=ev, extra={"code_files": code})


def _scannable(e: Entry) -> bool:
    return (
        e.data_offset >= 0
        and e.method in SUPPORTED_METHODS
        and not e.flags & 1
        and not (e.mismatches and overlapping(e))
        and not e.is_dir
    )


def _scan_members(
    f: FileInput, ctx: ScanContext, src: Source, arc: Archive, kind: str, cap: _Cap
) -> Iterator[Finding]:
    """Scan every member, in archive order.

    The common member of a many-member archive (small, not a tensor storage, CRC right,
    no archive magic) goes from its bytes straight to the dispatcher in this loop: the
    cost of each call and generator layer here is paid once per member.
    """
    torch, content = kind in _TORCH_KINDS, kind in _CONTENT_KINDS
    for e in arc.entries:
        if not _scannable(e):
            continue
        if torch and _STORAGE_RE.match(_rel(e.name)):
            yield from _scan_member(f, ctx, src, e, kind, cap, storage=True)
            continue
        data = _small_member(src, e, ctx)
        if data is None:
            yield from _scan_member(f, ctx, src, e, kind, cap)
            continue
        crc = zlib.crc32(data)
        if crc != e.crc or content or data.startswith(_MAGICS) or data[257:262] == b"ustar":
            yield from _scan_bytes(f, ctx, e, kind, data, cap, crc)
        else:
            yield from _dispatch(f, ctx, e, kind, data)


def _scan_member(
    f: FileInput, ctx: ScanContext, src: Source, e: Entry, kind: str, cap: _Cap, *,
    storage: bool = False,
) -> Iterator[Finding]:  # fmt: skip
    """The careful way, for tensor storages and members too large or odd to read at once."""
    lim = ctx.limits
    if storage and not _interesting(_peek(src, e, lim.max_compression_ratio)):
        return  # raw tensor bytes: never read further
    if e.method == STORED and e.csize > lim.max_member_in_memory and e.data_end <= src.size:
        yield from _scan_stored_slice(f, ctx, src, e, kind)
        return
    if storage:  # the same reading as any other member once it looks interesting
        small = _small_member(src, e, ctx)
        if small is not None:
            yield from _scan_bytes(f, ctx, e, kind, small, cap, zlib.crc32(small))
            return
    limit = lim.max_member_bytes
    if _declared_bomb(e, ctx):  # scan a bounded prefix only
        limit = min(limit, lim.max_member_in_memory)
    reader = MemberReader(src, e, limit, lim.max_compression_ratio)
    head = reader.read(SNIFF_LEN)
    yield from _nested_archive(f, ctx, e, head, cap)
    data: bytes | Prefixed = head
    if not reader.done:
        data = head + reader.read(lim.max_member_in_memory + 1 - len(head))
        if not reader.done:
            data = Prefixed(data, reader)
    if isinstance(data, bytes):
        yield from _content_checks(f, ctx, e, kind, data)
    stream = data if isinstance(data, bytes) else cast(IO[bytes], data)
    yield from ctx.scan_nested(f, e.name, stream, format_hint=_hint(kind, e.name, head))
    yield from _after_read(f, ctx, e, reader, cap)


def _peek(src: Source, e: Entry, max_ratio: float) -> bytes:
    if e.method == STORED:
        return src.read_at(e.data_offset, min(SNIFF_LEN, e.csize))
    return MemberReader(src, e, SNIFF_LEN, max_ratio).read(SNIFF_LEN)


def _small_member(src: Source, e: Entry, ctx: ScanContext) -> bytes | None:
    """The whole content of a small, well-formed member in one read; ``None`` otherwise.

    Most members of a many-member archive are small: one read and one ``decompress``
    call instead of a streaming reader keeps the per-member cost low. Anything unusual
    (too large, truncated, corrupt, high ratio) goes the careful streaming way.
    """
    if e.csize > SMALL_MEMBER or e.data_end > src.size or e.method not in (STORED, DEFLATED):
        return None
    lim = ctx.limits
    cap = min(lim.max_member_in_memory, lim.max_member_bytes)
    comp = src.read_at(e.data_offset, e.csize)
    if e.method == STORED:
        return comp if len(comp) <= cap else None
    d = zlib.decompressobj(-15)
    try:
        data = d.decompress(comp, cap + 1)
    except zlib.error:
        return None
    if not d.eof or len(data) > cap:
        return None
    if len(data) > BOMB_MIN_BYTES and len(data) > lim.max_compression_ratio * len(comp):
        return None
    return data


def _scan_bytes(
    f: FileInput, ctx: ScanContext, e: Entry, kind: str, data: bytes, cap: _Cap, crc: int
) -> Iterator[Finding]:
    if archive_kind(data):
        yield from _nested_archive(f, ctx, e, data, cap)
    if kind in _CONTENT_KINDS:
        yield from _content_checks(f, ctx, e, kind, data)
    yield from _dispatch(f, ctx, e, kind, data)
    if crc != e.crc:
        yield from cap(BAD_CRC, _member(f, e), evidence=f"computed {crc:08x}, declared {e.crc:08x}")


def _dispatch(
    f: FileInput, ctx: ScanContext, e: Entry, kind: str, data: bytes
) -> Iterator[Finding]:
    """Hand an in-memory member to the dispatcher (its first bytes are already here)."""
    yield from ctx.scan_nested_file(
        f, e.name, lambda: io.BytesIO(data), len(data),
        format_hint=_hint(kind, e.name, data), head=data[:SNIFF_BYTES],
    )  # fmt: skip


def _scan_stored_slice(
    f: FileInput, ctx: ScanContext, src: Source, e: Entry, kind: str
) -> Iterator[Finding]:
    """A large stored member: hand the dispatcher a window onto the file, no copy."""
    head = src.read_at(e.data_offset, SNIFF_LEN)
    yield from _nested_archive(f, ctx, e, head, None)
    opener = slice_opener(f.open, e.data_offset, e.csize)
    hint = _hint(kind, e.name, head)
    yield from ctx.scan_nested_file(f, e.name, opener, e.csize, format_hint=hint)


def _after_read(
    f: FileInput, ctx: ScanContext, e: Entry, reader: MemberReader, cap: _Cap
) -> Iterator[Finding]:
    where = _member(f, e)
    if reader.error:
        yield from cap(MALFORMED, where, evidence=reader.error)
    if (reader.bomb or reader.hit_limit) and not _declared_bomb(e, ctx):
        ev = f"stopped after {reader.out} bytes from {reader.pos - reader.start} compressed"
        yield from cap(BOMB, where, evidence=ev)
    if reader.finished and reader.crc != e.crc:
        ev = f"computed {reader.crc:08x}, declared {e.crc:08x}"
        yield from cap(BAD_CRC, where, evidence=ev)


_ARCHIVE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (LFH_SIG, "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
)

_MAGICS = tuple(m for m, _ in _ARCHIVE_MAGIC)


def archive_kind(head: bytes) -> str | None:
    """The archive format ``head`` starts with, or ``None``."""
    if not head.startswith(_MAGICS) and head[257:262] != b"ustar":
        return None
    for magic, kind in _ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    return None


def _interesting(head: bytes) -> bool:
    """Does a tensor storage start like something other than tensor bytes?"""
    return _is_pickle(head) or head.startswith((b"\x7fELF", b"MZ")) or bool(archive_kind(head))


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _hint(kind: str, name: str, head: bytes) -> str | None:
    """``"pickle"`` for what is a pickle by its first bytes (or a ``.pkl`` in a PyTorch
    archive, whatever its protocol): saves the dispatcher its sniffing per member."""
    if _is_pickle(head) or (kind in ("pytorch", "torchscript") and name.endswith(".pkl")):
        return "pickle"
    return None


def _nested_archive(
    f: FileInput, ctx: ScanContext, e: Entry, head: bytes, cap: _Cap | None
) -> Iterator[Finding]:
    kind = archive_kind(head)
    suffix = e.name[e.name.rfind(".") :].lower() if "." in e.name else ""
    if kind is None or (suffix in MODEL_CONTAINER_EXTS and kind == "zip"):
        return
    ev = f"{e.name!r} is a {kind} archive"
    if cap is None:
        yield ctx.finding(NESTED, _member(f, e), evidence=ev)
    else:
        yield from cap(NESTED, _member(f, e), evidence=ev)


def _content_checks(
    f: FileInput, ctx: ScanContext, e: Entry, kind: str, data: bytes
) -> Iterator[Finding]:
    rel = _rel(e.name)
    if kind == "torchscript" and rel.startswith("code/") and rel.endswith(".py"):
        yield from _grep_torchscript(_member(f, e), ctx, data)
    if kind == "keras" and e.name == "config.json":
        yield from _keras_config(data, _member(f, e), ctx)


def _grep_torchscript(where: str, ctx: ScanContext, code: bytes) -> Iterator[Finding]:
    for n, m in enumerate(_TS_BAD.finditer(code)):
        if n >= 20:
            break
        start = code.rfind(b"\n", 0, m.start()) + 1
        end = code.find(b"\n", m.end())
        text = code[start : end if end >= 0 else len(code)].decode("utf-8", "replace").strip()
        line = code.count(b"\n", 0, m.start()) + 1
        yield ctx.finding(TS_SUSPICIOUS, where, line=line, evidence=text)


def _keras_config(data: bytes, where: str, ctx: ScanContext) -> Iterable[Finding]:
    """Hand a Keras v3 ``config.json`` to the Keras analysis, when that module exists."""
    try:
        mod = importlib.import_module("airlock.scan.keras")
    except ImportError:
        return ()
    fn = getattr(mod, "analyze_keras_config", None)
    if fn is None:
        return ()
    return cast(Callable[[bytes, str, ScanContext], Iterable[Finding]], fn)(data, where, ctx)

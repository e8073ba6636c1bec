"""Tar archives (plain, gzip, bzip2, xz), legacy PyTorch tar checkpoints, single-file gzip.

The header walk is our own and bounded: :mod:`tarfile` reads whole pax headers
into memory and keeps every member in a list, both sized by the archive. Here
metadata records are capped, the member count is capped, compressed streams are
watched for an excessive ratio and member data is never read except to scan it.

Legacy PyTorch checkpoints (``torch.save(..., _use_new_zipfile_serialization=False)``
before 1.6 wrote a tar with ``sys_info``, ``pickle``, ``storages`` and ``tensors``)
have those members scanned as pickles; every other member goes through the dispatcher.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, cast

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import NESTING_TOO_DEEP, FileInput, ScanContext, format_scanner
from airlock.scan.zipparse import BOMB_MIN_BYTES, slice_opener
from airlock.scan.zips import unsafe_path

MALFORMED = rule(
    "tar.malformed", Severity.MEDIUM, "Malformed tar archive",
    "The archive is damaged or crafted; extractors may read something other than what was "
    "scanned. Re-create it from trusted sources or treat it as untrusted.",
    "A tar header is truncated, fails its checksum or declares impossible sizes.",
)  # fmt: skip
TRAVERSAL = rule(
    "tar.path-traversal", Severity.HIGH, "Tar member path escapes the extraction directory",
    "Do not extract this archive; a member would be written outside the target directory.",
    "A member name is absolute, has a drive letter, a '..' component, a backslash or NUL.",
)  # fmt: skip
SYMLINK = rule(
    "tar.symlink", Severity.HIGH, "Tar symlink points outside the archive",
    "Extracting it creates a link to a path outside the target directory, through which "
    "later members or readers reach local files. Reject the archive.",
    "A symbolic link's target is absolute or climbs above the archive root.",
)  # fmt: skip
HARDLINK = rule(
    "tar.hardlink", Severity.HIGH, "Tar hard link points outside the archive",
    "Extracting it links a file outside the target directory. Reject the archive.",
    "A hard link's target is absolute or climbs above the archive root.",
)  # fmt: skip
DEVICE = rule(
    "tar.device", Severity.HIGH, "Tar archive contains a device or FIFO",
    "Model archives never need device nodes or pipes; extracting them as root creates "
    "device access, a FIFO can hang readers. Reject the archive.",
    "A member is a character device, block device or FIFO.",
)  # fmt: skip
BOMB = rule(
    "tar.compression-bomb", Severity.HIGH, "Compressed archive inflates excessively",
    "The stream decompresses far beyond a plausible ratio (decompression bomb); scanning "
    "stopped. Do not extract it.",
    "Decompressed bytes exceed Limits.max_compression_ratio times the compressed bytes.",
)  # fmt: skip
TOO_MANY = rule(
    "tar.too-many-members", Severity.MEDIUM, "Tar archive has more members than scanned",
    "Only the first members were scanned; raise limits or split the archive.",
    "The archive holds more members than Limits.max_archive_members.",
)  # fmt: skip

BLOCK = 512
MAX_META = 1024 * 1024  # GNU long names and pax records larger than this are crafted
LEGACY_TORCH = frozenset({"sys_info", "pickle", "storages", "tensors"})
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
_SNIFF_EXTS = frozenset({".tar", ".pt", ".pth", ".bin", ".ckpt", ".nemo"})
_REGULAR = frozenset(b"0\x007")
_DEVICES = {ord("3"): "character device", ord("4"): "block device", ord("6"): "FIFO"}


class _Malformed(Exception):
    pass


class _Bomb(Exception):
    pass


def is_tar_header(block: bytes) -> bool:
    """True if ``block`` is a tar header whose checksum holds."""
    if len(block) < BLOCK or block[:BLOCK] == bytes(BLOCK):
        return False
    try:
        declared = int(block[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:BLOCK])
    signed = unsigned - sum(b for b in block[:148] + block[156:BLOCK] if b > 127) * 2
    return declared in (unsigned, signed)


def _compression(head: bytes) -> str | None:
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            return kind
    return None


def _sniff_tar(head: bytes, f: FileInput) -> bool:
    if _compression(head):
        return True
    if head[:1] in (b"", b"\x00") or (f.suffix not in _SNIFF_EXTS and f.size % BLOCK):
        return False
    with f.open() as fh:
        return is_tar_header(fh.read(BLOCK))


class _Counting:
    """Counts the compressed bytes a decompressor pulls, for the ratio check."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.n = fh, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.n += len(data)
        return data


class _Stream:
    """The uncompressed tar byte stream with a position, exact reads and skips."""

    def __init__(self, fh: IO[bytes], counter: _Counting | None, ratio: float, size: int) -> None:
        self.fh, self.counter, self.ratio, self.size = fh, counter, ratio, size
        self.pos = 0

    def read(self, n: int) -> bytes:
        parts, want = [], n
        while want > 0:
            try:
                chunk = self.fh.read(min(want, 1 << 20))
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
                raise _Malformed(f"corrupt compressed stream: {err}") from err
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
            self.pos += len(chunk)
            self._check_ratio()
        return b"".join(parts)

    def skip(self, n: int) -> None:
        if self.counter is None:  # a plain file: seek, but not past its end
            if self.pos + n > self.size:
                raise _Malformed(f"member data runs past the end of the file ({self.size} bytes)")
            self.fh.seek(n, 1)
            self.pos += n
            return
        while n > 0:
            got = len(self.read(min(n, 1 << 20)))
            if not got:
                raise _Malformed("member data runs past the end of the stream")
            n -= got

    def _check_ratio(self) -> None:
        c = self.counter
        if c is not None and self.pos > BOMB_MIN_BYTES and self.pos > self.ratio * max(c.n, 1):
            raise _Bomb(f"{self.pos} bytes from {c.n} compressed")


class _MemberStream:
    """Reads at most ``left`` bytes of one member from the tar stream."""

    def __init__(self, stream: _Stream, size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(n) if n > 0 else b""
        self.left -= len(data)
        return data


@dataclass
class _Member:
    name: str
    type: int
    size: int
    linkname: str
    pax: dict[str, str] = field(default_factory=dict)


@format_scanner(
    "tar", extensions=(".tar", ".tgz", ".gz", ".tbz2", ".txz"), sniff=_sniff_tar, priority=1
)
def scan_tar(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan a tar (optionally compressed) or a single compressed file."""
    with f.open() as raw:
        comp = _compression(f.head)
        counter = _Counting(raw) if comp else None
        fh = _decompressor(comp, counter) if counter else raw
        stream = _Stream(fh, counter, ctx.limits.max_compression_ratio, f.size)
        try:
            first = stream.read(BLOCK)
            if comp and not is_tar_header(first):
                yield from _single_file(f, ctx, first, stream)
                return
            yield from _walk(f, ctx, stream, first, comp is None)
        except _Malformed as err:
            yield ctx.finding(MALFORMED, f, location=f"offset {stream.pos}", evidence=str(err))
        except _Bomb as err:
            yield ctx.finding(BOMB, f, evidence=str(err))


def _decompressor(comp: str | None, counter: _Counting) -> IO[bytes]:
    src = cast(IO[bytes], counter)
    if comp == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=src, mode="rb"))
    if comp == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(src))
    return cast(IO[bytes], lzma.LZMAFile(src))


def _single_file(
    f: FileInput, ctx: ScanContext, first: bytes, stream: _Stream
) -> Iterator[Finding]:
    """A compressed file that is not a tar: scan what it decompresses to."""
    ctx.add_fact("model", {"path": f.path, "format": "compressed"})
    name = f.name.rsplit(".", 1)[0] if "." in f.name else f.name + ".out"
    if f.depth + 1 > ctx.limits.max_nesting:
        yield ctx.finding(NESTING_TOO_DEEP, f, evidence=f"depth {f.depth + 1}")
        return
    rest = _MemberStream(stream, ctx.limits.max_member_bytes - len(first))
    data = first + rest.read(ctx.limits.max_member_in_memory)
    if rest.left > 0 and len(data) > ctx.limits.max_member_in_memory:
        yield from ctx.scan_nested(f, name, cast(IO[bytes], _Chain(data, rest)))
    else:
        yield from ctx.scan_nested(f, name, data)


class _Chain:
    def __init__(self, head: bytes, rest: _MemberStream) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if 0 <= n <= len(self.head):
            out, self.head = self.head[:n], self.head[n:]
            return out
        out, self.head = self.head, b""
        return out + self.rest.read(-1 if n < 0 else n - len(out))


def _walk(
    f: FileInput, ctx: ScanContext, stream: _Stream, first: bytes, plain: bool
) -> Iterator[Finding]:
    legacy = False
    count = 0
    block = first
    if f.depth + 1 > ctx.limits.max_nesting:
        yield ctx.finding(NESTING_TOO_DEEP, f, evidence=f"depth {f.depth + 1}")
    while True:
        m = _next_member(stream, block)
        if m is None:
            break
        count += 1
        if count > ctx.limits.max_archive_members:
            yield ctx.finding(TOO_MANY, f, evidence=f"scanned the first {count - 1} members")
            return
        if count == 1:
            legacy = m.name in LEGACY_TORCH
            ctx.add_fact("model", {"path": f.path, "format": "pytorch-legacy" if legacy else "tar"})
        yield from _member_findings(f, ctx, m)
        yield from _member_data(f, ctx, stream, m, legacy, plain)
        block = stream.read(BLOCK)


def _next_member(stream: _Stream, block: bytes) -> _Member | None:
    """Parse the header at ``block`` (plus GNU/pax metadata records); ``None`` at the end."""
    pax: dict[str, str] = {}
    long_name = long_link = None
    for _ in range(64):  # metadata records before one real header
        if len(block) < BLOCK:
            if block:
                raise _Malformed("truncated header block")
            return None  # end of file without end-of-archive blocks: tolerated
        if block == bytes(BLOCK):
            return None
        if not is_tar_header(block):
            raise _Malformed("header checksum mismatch")
        typ, size = block[156], _number(block[124:136])
        if typ in b"LKxg":
            if size > MAX_META:
                raise _Malformed(f"metadata record of {size} bytes")
            data = stream.read(_padded(size))[:size]
            if typ == ord("L"):
                long_name = _cstr(data)
            elif typ == ord("K"):
                long_link = _cstr(data)
            elif typ == ord("x"):
                pax.update(_pax(data))
            block = stream.read(BLOCK)
            continue
        name = pax.get("path") or long_name or _header_name(block)
        link = pax.get("linkpath") or long_link or _cstr(block[157:257])
        if "size" in pax:
            size = _pax_size(pax["size"])
        return _Member(name, typ, size, link, pax)
    raise _Malformed("too many metadata records before a header")


def _header_name(block: bytes) -> str:
    name = _cstr(block[0:100])
    if block[257:262] == b"ustar":
        prefix = _cstr(block[345:500])
        if prefix:
            return f"{prefix}/{name}"
    return name


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        if field[0] & 0x40:
            raise _Malformed("negative size")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError as err:
        raise _Malformed(f"bad number field {field!r}") from err


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0 or not data[pos:sp].isdigit():
            break
        ln = int(data[pos:sp])
        rec = data[sp + 1 : pos + ln]
        if ln <= 0 or not rec.endswith(b"\n") or b"=" not in rec:
            raise _Malformed("bad pax record")
        key, val = rec[:-1].split(b"=", 1)
        out[key.decode("utf-8", "replace")] = val.decode("utf-8", "surrogateescape")
        pos += ln
    return out


def _pax_size(text: str) -> int:
    if not text.isdigit() or len(text) > 20:
        raise _Malformed(f"bad pax size {text!r}")
    return int(text)


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _member_findings(f: FileInput, ctx: ScanContext, m: _Member) -> Iterator[Finding]:
    where = f"{f.path}!{m.name}"
    unsafe = unsafe_path(m.name)
    if unsafe:
        yield ctx.finding(TRAVERSAL, where, evidence=f"{m.name!r}: {unsafe}")
    if m.type == ord("2") and _escapes(posixpath.dirname(m.name), m.linkname):
        yield ctx.finding(SYMLINK, where, evidence=f"{m.name} -> {m.linkname}")
    if m.type == ord("1") and _escapes("", m.linkname):
        yield ctx.finding(HARDLINK, where, evidence=f"{m.name} => {m.linkname}")
    if m.type in _DEVICES:
        yield ctx.finding(DEVICE, where, evidence=_DEVICES[m.type])


def _escapes(base: str, target: str) -> bool:
    """Does ``target``, resolved from directory ``base`` inside the archive, leave the root?"""
    if target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":"):
        return True
    depth = 0
    for part in [*base.split("/"), *target.split("/")]:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _member_data(
    f: FileInput, ctx: ScanContext, stream: _Stream, m: _Member, legacy: bool, plain: bool
) -> Iterator[Finding]:
    """Scan a regular member's data (or skip it), leaving the stream at the next header."""
    has_data = m.type in _REGULAR or m.type not in b"123456"  # links, dirs, devices: none
    size = m.size if has_data else 0
    if not size:
        return
    if f.depth + 1 > ctx.limits.max_nesting:
        stream.skip(_padded(size))
        return
    hint = "pickle" if legacy and m.name in LEGACY_TORCH else None
    if plain:  # a window onto the file: no copy, the scanner reads what it needs
        if stream.pos + size > f.size:
            raise _Malformed(f"member {m.name!r} runs past the end of the file")
        opener = slice_opener(f.open, stream.pos, size)
        yield from ctx.scan_nested_file(f, m.name, opener, size, format_hint=hint)
        stream.skip(_padded(size))
        return
    limit = min(size, ctx.limits.max_member_bytes)
    member = _MemberStream(stream, limit)
    yield from ctx.scan_nested(f, m.name, cast(IO[bytes], member), format_hint=hint)
    stream.skip(_padded(size) - (limit - member.left))

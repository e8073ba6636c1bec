"""A bounded ZIP reader that trusts nothing the archive declares.

:mod:`zipfile` is written for well-formed archives: it believes the end record,
takes the central directory's word over the local headers and inflates as much
as a member says it holds. This reader parses the same structures itself so
that every disagreement (local vs central name, declared vs computed CRC,
overlapping members, offsets out of range) becomes a *problem* the scanner can
report, and every read is bounded.

It also holds the small helpers the archive scanners share: random-access
sources (``mmap`` when the file has a descriptor), a streaming member reader
with a size and ratio bound, and zero-copy slices for large stored members.
"""

from __future__ import annotations

import bz2
import io
import lzma
import mmap
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Protocol

EOCD_SIG = b"PK\x05\x06"
Z64_LOC_SIG = b"PK\x06\x07"
Z64_EOCD_SIG = b"PK\x06\x06"
CDH_SIG = b"PK\x01\x02"
LFH_SIG = b"PK\x03\x04"

_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_Z64_LOC = struct.Struct("<4sLQL")  # 20 bytes
_Z64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_CDH = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_LFH = struct.Struct("<4s5H3L2H")  # 30 bytes

STORED, DEFLATED, BZIP2, LZMA, AES = 0, 8, 12, 14, 99
SUPPORTED_METHODS = frozenset({STORED, DEFLATED, BZIP2, LZMA})
MAX_CD_BYTES = 512 * 1024 * 1024  # a central directory larger than this is not a model
IN_CHUNK = 256 * 1024
OUT_CHUNK = 1024 * 1024
BOMB_MIN_BYTES = 1024 * 1024  # below this a high ratio is harmless (zeros compress well)


class ZipError(Exception):
    """The archive cannot be read at all (no end record, directory out of range)."""


class Source(Protocol):
    """Random access to the bytes of the file being scanned."""

    size: int

    def read_at(self, offset: int, n: int) -> bytes: ...


class BufferSource:
    """A source over bytes or an ``mmap`` (slicing is cheap and never copies much)."""

    def __init__(self, buf: bytes | mmap.mmap) -> None:
        self.buf = buf
        self.size = len(buf)

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        return self.buf[offset : offset + n]


class HandleSource:
    """A source over a seekable handle without a file descriptor."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh, self.size = fh, size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        self.fh.seek(offset)
        return self.fh.read(min(n, self.size - offset))


@contextmanager
def open_source(opener: Callable[[], IO[bytes]]) -> Iterator[Source]:
    """Open a file for random access: ``mmap`` if possible, else in-memory bytes or seeks."""
    with opener() as fh:
        mm = _try_mmap(fh)
        if mm is not None:
            try:
                yield BufferSource(mm)
            finally:
                mm.close()
            return
        if isinstance(fh, io.BytesIO):
            yield BufferSource(fh.getvalue())
            return
        size = fh.seek(0, io.SEEK_END)
        yield HandleSource(fh, size)


def _try_mmap(fh: IO[bytes]) -> mmap.mmap | None:
    try:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
        return None  # empty file, pipe, BytesIO, custom handle


@dataclass(slots=True)
class Entry:
    """One central directory entry, completed by its local header."""

    index: int
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int  # of the local header, absolute in the file
    create_system: int
    external_attr: int
    cd_pos: int
    data_offset: int = -1  # -1: local header unreadable
    local_name: bytes = b""
    mismatches: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.usize == 0

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 1) or self.method == AES

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and (self.external_attr >> 16) & 0o170000 == 0o120000

    @property
    def data_end(self) -> int:
        return self.data_offset + self.csize


@dataclass
class Archive:
    """The parsed structure of a ZIP file and every structural problem met on the way."""

    entries: list[Entry]
    declared_count: int
    cd_offset: int
    cd_size: int
    prefix: int  # bytes before the data the offsets point at (self-extractor stub, junk)
    zip64: bool
    too_many: bool = False
    problems: list[str] = field(default_factory=list)


def read_archive(src: Source, max_members: int) -> Archive:
    """Parse end record, ZIP64 records and central directory, then every local header.

    Raises:
        ZipError: when there is no usable end record or central directory.
    """
    eocd_pos, eocd = _find_eocd(src)
    _, disk, cd_disk, _, total, cd_size, cd_off, _ = eocd
    problems: list[str] = []
    zip64 = False
    cd_end = eocd_pos
    z64 = _read_zip64(src, eocd_pos)
    if z64 is not None:
        zip64, cd_end = True, z64[0]
        total, cd_size, cd_off = z64[1], z64[2], z64[3]
    elif disk or cd_disk:
        problems.append(f"multi-disk archive (disk {disk}, directory on disk {cd_disk})")
    prefix = cd_end - cd_size - cd_off
    if prefix < 0 or cd_size > MAX_CD_BYTES:
        raise ZipError(
            f"central directory (offset {cd_off}, size {cd_size}) does not fit before "
            f"the end record at {eocd_pos}"
        )
    cd = src.read_at(cd_off + prefix, cd_size)
    arc = Archive([], total, cd_off + prefix, cd_size, prefix, zip64, problems=problems)
    _parse_cd(cd, arc, max_members)
    for e in arc.entries:
        _read_local(src, e, arc)
    _check_layout(arc)
    return arc


def _find_eocd(src: Source) -> tuple[int, tuple[bytes, int, int, int, int, int, int, int]]:
    if src.size < _EOCD.size:
        raise ZipError(f"{src.size} bytes is too small for a zip end record")
    tail_len = min(src.size, 0xFFFF + _EOCD.size)
    base = src.size - tail_len
    tail = src.read_at(base, tail_len)
    pos = tail.rfind(EOCD_SIG)
    fallback = -1
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            rec = _EOCD.unpack_from(tail, pos)
            if pos + _EOCD.size + rec[7] == len(tail):  # comment reaches the end exactly
                return base + pos, rec
            if fallback < 0:
                fallback = pos
        pos = tail.rfind(EOCD_SIG, 0, pos)
    if fallback < 0:
        raise ZipError("no end of central directory record (truncated or not a zip)")
    return base + fallback, _EOCD.unpack_from(tail, fallback)


def _read_zip64(src: Source, eocd_pos: int) -> tuple[int, int, int, int] | None:
    """``(record position, entries, cd size, cd offset)`` from the ZIP64 records, if any."""
    loc_pos = eocd_pos - _Z64_LOC.size
    if loc_pos < 0:
        return None
    loc = src.read_at(loc_pos, _Z64_LOC.size)
    if len(loc) != _Z64_LOC.size or not loc.startswith(Z64_LOC_SIG):
        return None
    rec_off = _Z64_LOC.unpack(loc)[2]
    for pos in (loc_pos - _Z64_EOCD.size, rec_off):  # right before the locator, or as declared
        raw = src.read_at(pos, _Z64_EOCD.size)
        if len(raw) == _Z64_EOCD.size and raw.startswith(Z64_EOCD_SIG):
            f = _Z64_EOCD.unpack(raw)
            return pos, f[7], f[8], f[9]
    raise ZipError("ZIP64 locator points at no ZIP64 end record")


def _parse_cd(cd: bytes, arc: Archive, max_members: int) -> None:
    # the hot loop of a many-member archive: locals, one tuple unpack, no per-field indexing
    pos, n, hsize = 0, len(cd), _CDH.size
    entries, append, unpack = arc.entries, arc.entries.append, _CDH.unpack_from
    prefix, count = arc.prefix, 0
    while pos + hsize <= n:
        if count >= max_members:
            arc.too_many = True
            return
        (sig, made_by, _, flags, method, _, _, crc, csize, usize,
         nlen, xlen, clen, _, _, ext_attr, off) = unpack(cd, pos)  # fmt: skip
        if sig != CDH_SIG:
            arc.problems.append(f"bad central directory signature at entry {count}")
            return
        start = pos + hsize
        end = start + nlen + xlen + clen
        if end > n:
            arc.problems.append(f"central directory entry {count} runs past its end")
            return
        raw = cd[start : start + nlen]
        if 0xFFFFFFFF in (csize, usize, off):
            extra = cd[start + nlen : start + nlen + xlen]
            csize, usize, off = _zip64_sizes(csize, usize, off, extra)
        # ASCII reads the same in UTF-8 and CP437, and the UTF-8 decoder is the fast one
        utf8 = flags & 0x800 or raw.isascii()
        name = raw.decode("utf-8" if utf8 else "cp437", "replace")
        append(
            Entry(count, raw, name, flags, method, crc, csize, usize, off + prefix,
                  made_by >> 8, ext_attr, pos)
        )  # fmt: skip
        count += 1
        pos = end
    if len(entries) != arc.declared_count:
        arc.problems.append(
            f"end record declares {arc.declared_count} entries, "
            f"central directory holds {len(entries)}"
        )


def _zip64_sizes(csize: int, usize: int, off: int, extra: bytes) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<2H", extra, pos)
        if tag == 1:
            vals = iter(
                struct.unpack_from("<Q", extra, p)[0]
                for p in range(pos + 4, pos + 4 + ln - 7, 8)
                if p + 8 <= len(extra)
            )
            usize = next(vals, usize) if usize == 0xFFFFFFFF else usize
            csize = next(vals, csize) if csize == 0xFFFFFFFF else csize
            off = next(vals, off) if off == 0xFFFFFFFF else off
            break
        pos += 4 + ln
    return csize, usize, off


def _read_local(src: Source, e: Entry, arc: Archive) -> None:
    """Read ``e``'s local header; record where its data starts and what disagrees."""
    off = e.offset
    hdr = src.read_at(off, 30 + len(e.raw_name))
    if off >= arc.cd_offset or len(hdr) < 30 or hdr[:4] != LFH_SIG:
        arc.problems.append(f"entry {e.name!r}: no local header at offset {off}")
        return
    _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _LFH.unpack_from(hdr)
    local_name = hdr[30 : 30 + nlen]
    if len(local_name) < nlen:
        local_name = src.read_at(off + 30, nlen)
    e.local_name = local_name
    e.data_offset = off + 30 + nlen + xlen
    same = (method, crc, csize, usize) == (e.method, e.crc, e.csize, e.usize)
    if same and not (flags ^ e.flags) & 1:
        return  # the usual case: both headers agree
    e.mismatches += _local_mismatches(e, flags, method, crc, csize, usize)


def _local_mismatches(
    e: Entry, flags: int, method: int, crc: int, csize: int, usize: int
) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if method != e.method:
        out += (f"method {method} (local) vs {e.method} (central)",)
    if (flags ^ e.flags) & 1:
        out += ("encryption flag differs between local and central header",)
    if not flags & 8 and 0xFFFFFFFF not in (csize, usize):  # no data descriptor: must agree
        if crc != e.crc:
            out += (f"CRC {crc:08x} (local) vs {e.crc:08x} (central)",)
        if (csize, usize) != (e.csize, e.usize):
            out += (f"sizes {csize}/{usize} (local) vs {e.csize}/{e.usize} (central)",)
    return out


def _check_layout(arc: Archive) -> None:
    """Members must lie between the start and the central directory, without overlap."""
    placed = sorted((e for e in arc.entries if e.data_offset >= 0), key=lambda e: e.offset)
    prev: Entry | None = None
    for e in placed:
        if e.data_end > arc.cd_offset:
            arc.problems.append(f"entry {e.name!r}: data runs into the central directory")
        if prev is not None and e.offset < prev.data_end:
            e.mismatches += (f"overlaps entry {prev.name!r}",)
        prev = e
    first = placed[0].offset if placed else arc.cd_offset
    arc.prefix = max(arc.prefix, first)


def overlapping(e: Entry) -> bool:
    """True if ``e``'s local header lies inside an earlier member's data."""
    return any(m.startswith("overlaps entry") for m in e.mismatches)


# --- member data --------------------------------------------------------------------------


class _Inflater:
    """One decompressor API over zlib (raw deflate), bz2 and lzma, all with output bounds."""

    def __init__(self, method: int) -> None:
        self.method = method
        self.z = zlib.decompressobj(-15) if method == DEFLATED else None
        self.other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if method == BZIP2:
            self.other = bz2.BZ2Decompressor()
        self.tail = b""
        self.full = False
        self.header = b""  # zip's LZMA members start with a 4-byte header + 5 property bytes

    @property
    def needs_input(self) -> bool:
        if self.z is not None:
            return not self.tail and not self.full
        if self.other is None:
            return True
        return self.other.needs_input

    @property
    def eof(self) -> bool:
        if self.z is not None:
            return self.z.eof
        return self.other is not None and self.other.eof

    def feed(self, data: bytes, max_len: int) -> bytes:
        if self.z is not None:
            out = self.z.decompress(self.tail + data if self.tail else data, max_len)
            self.tail = self.z.unconsumed_tail
            self.full = len(out) >= max_len
            return out
        if self.other is None:  # LZMA: collect the properties first
            self.header += data
            if len(self.header) < 9:
                return b""
            self.other = _lzma_decompressor(self.header[:9])
            data, self.header = self.header[9:], b""
        return self.other.decompress(data, max_len)


def _lzma_decompressor(head: bytes) -> lzma.LZMADecompressor:
    props = head[4:9]
    d, dict_size = props[0], int.from_bytes(props[1:5], "little")
    lc, lp, pb = d % 9, (d // 9) % 5, d // 45
    filt = {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])


class MemberReader:
    """Reads one member's content, bounded by ``limit`` bytes and a compression ratio.

    ``read(n)`` returns exactly ``n`` bytes unless the member ends (what a spooler
    expects). Afterwards ``finished`` says the member was read to its end, ``crc``
    holds the CRC-32 of what was produced, ``hit_limit``/``bomb``/``error`` say why
    reading stopped early.
    """

    def __init__(self, src: Source, e: Entry, limit: int, max_ratio: float) -> None:
        self.src, self.limit, self.max_ratio = src, limit, max_ratio
        self.start = e.data_offset
        self.pos, self.end = e.data_offset, min(e.data_end, src.size)
        self.inf = None if e.method == STORED else _Inflater(e.method)
        self.out, self.crc = 0, 0
        self.done = False
        self.finished = self.hit_limit = self.bomb = False
        self.error: str | None = None
        if e.data_end > src.size:
            self.error = "member data truncated (file ends early)"

    def read(self, n: int = -1) -> bytes:
        want = self.limit + 1 if n < 0 else n
        parts: list[bytes] = []
        while want > 0 and not self.done:
            piece = self._next(min(want, OUT_CHUNK))
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self.done = True

    def _next(self, n: int) -> bytes:
        room = self.limit - self.out
        try:
            if room <= 0:
                self.hit_limit = bool(self._pull(1))
                self.done = True
                return b""
            out = self._pull(min(n, room))
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as err:
            self.error, self.done = f"corrupt compressed data: {err}", True
            return b""
        if out:
            self.out += len(out)
            self.crc = zlib.crc32(out, self.crc)
            consumed = self.pos - self.start
            if self.out > BOMB_MIN_BYTES and self.out > self.max_ratio * max(consumed, 1):
                self.bomb = True
                self.done = True
        return out

    def _pull(self, n: int) -> bytes:
        if self.inf is None:
            data = self.src.read_at(self.pos, min(n, self.end - self.pos))
            self.pos += len(data)
            self._mark_end(self.pos >= self.end)
            return data
        while True:
            data = b""
            if self.inf.needs_input:
                if self.pos >= self.end:
                    if not self.inf.eof:
                        self.error = self.error or "compressed data ends before the stream does"
                    self._mark_end(self.inf.eof)
                    return b""
                data = self.src.read_at(self.pos, min(IN_CHUNK, self.end - self.pos))
                self.pos += len(data)
            out = self.inf.feed(data, n)
            if out or self.inf.eof:
                self._mark_end(self.inf.eof)
                return out
            if not data and not self.inf.needs_input:
                self.error, self.done = "decompressor made no progress", True
                return b""

    def _mark_end(self, at_end: bool) -> None:
        if at_end:
            self.done = True
            self.finished = self.error is None


class Prefixed:
    """A stream that first returns ``head`` and then continues with ``rest``."""

    def __init__(self, head: bytes, rest: MemberReader) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if 0 <= n <= len(self.head):
            out, self.head = self.head[:n], self.head[n:]
            return out
        out, self.head = self.head, b""
        return out + self.rest.read(-1 if n < 0 else n - len(out))

    def close(self) -> None:
        self.rest.close()


class SliceFile(io.RawIOBase):
    """A read-only window ``[start, start + size)`` onto another file (no copy)."""

    def __init__(self, fh: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self.fh, self.start, self.size, self.pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        left = self.size - self.pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self.fh.seek(self.start + self.pos)
        data = self.fh.read(n)
        self.pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.fh.close()
        super().close()


def slice_opener(opener: Callable[[], IO[bytes]], start: int, size: int) -> Callable[[], IO[bytes]]:
    """An opener for a window of the file ``opener`` opens."""

    def open_slice() -> IO[bytes]:
        return SliceFile(opener(), start, size)  # type: ignore[return-value]

    return open_slice

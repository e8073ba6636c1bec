"""Hand-built ZIP and tar bytes for the container tests (no zipfile: we need to lie)."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airlock.findings import Finding
from airlock.scan.base import FileInput, Limits, ScanContext

# A protocol-2 pickle calling os.system(CMD): REDUCE of GLOBAL 'os system' on a tuple.
PICKLE_HEADER = b"\x80\x02"


def evil_pickle(cmd: str) -> bytes:
    """Pickle bytes that would run ``cmd`` through os.system if unpickled (never done here)."""
    arg = cmd.encode()
    return (
        PICKLE_HEADER
        + b"cos\nsystem\nq\x00X"
        + struct.pack("<I", len(arg))
        + arg
        + b"q\x01\x85q\x02Rq\x03."
    )


BENIGN_PICKLE = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


@dataclass
class M:
    """One member as it will be written, with every field a crafted archive may falsify."""

    name: bytes
    data: bytes
    method: int = 0
    flags: int = 0
    local_name: bytes | None = None
    crc: int | None = None
    usize: int | None = None
    create_system: int = 0
    external_attr: int = 0
    offset: int | None = None  # force the central directory to point elsewhere


def build_zip(members: list[M], *, prefix: bytes = b"", zip64: bool = False) -> bytes:
    """Write local headers, data, central directory and end record exactly as asked."""
    out = bytearray(prefix)
    cd = bytearray()
    for m in members:
        body = m.data
        if m.method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = c.compress(m.data) + c.flush()
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        usize = len(m.data) if m.usize is None else m.usize
        lname = m.name if m.local_name is None else m.local_name
        off = len(out) - len(prefix)
        hdr = struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 0, crc, len(body), usize,
            len(lname), 0,
        )  # fmt: skip
        out += hdr + lname + body
        coff = off if m.offset is None else m.offset
        cd += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", (m.create_system << 8) | 20, 20, m.flags, m.method,
            0, 0, crc, len(body), usize, len(m.name), 0, 0, 0, 0, m.external_attr, coff,
        ) + m.name  # fmt: skip
    cd_off = len(out) - len(prefix)
    out += cd
    n = len(members)
    if zip64:
        z64_off = len(out) - len(prefix)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), cd_off)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, z64_off, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF,
                           0xFFFFFFFF, 0xFFFFFFFF, 0)  # fmt: skip
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(cd), cd_off, 0)
    return bytes(out)


@dataclass
class Seen:
    """What the container handed to the dispatcher for one member."""

    path: str
    hint: str | None
    data: bytes
    depth: int


class Recorder:
    """A stand-in dispatcher: records every nested file and reads it fully."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def __call__(self, f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
        with f.open() as fh:
            data = fh.read()
        self.seen.append(Seen(f.path, f.format_hint, data, f.depth))
        return iter(())

    def by_path(self) -> dict[str, Seen]:
        return {s.path: s for s in self.seen}


def ctx_with(rec: Recorder | None = None, **limits: Any) -> ScanContext:
    """A context whose nested scans go to ``rec`` and whose limits are overridden."""
    return ScanContext(limits=Limits(**limits), nested_scanner=rec)


def build_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar with exactly these members, written by the stdlib."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def tinfo(name: str, typ: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = typ
    info.linkname = linkname
    return info

"""Files that have no business in a model repository: executables, scripts, archives.

This check looks only at the first bytes and the name of each file (and, for
``MZ`` files, four bytes at the PE header offset). Nothing is decompressed or run.
Zip and tar containers are opened by their own scanner; the compressed formats
here are reported so a person decides whether to unpack and scan them.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, file_check

EXECUTABLE = rule(
    "file.executable",
    Severity.HIGH,
    "Native executable in the model files",
    "Model weights never need a native program. Delete the file; if a tool needs it, "
    "get that tool from its own trusted source.",
    "An ELF, PE (Windows) or Mach-O binary ships with the model.",
)
SCRIPT = rule(
    "file.script",
    Severity.MEDIUM,
    "Shell or batch script in the model files",
    "Read the script before running anything from this repository; never run it as part "
    "of loading the model.",
    "A shell, batch or PowerShell script ships with the model.",
)
NESTED_ARCHIVE = rule(
    "file.nested-archive",
    Severity.MEDIUM,
    "Compressed archive that airlock does not unpack",
    "Unpack the archive in a scratch directory and scan the contents with airlock before "
    "using them.",
    "A gzip/bzip2/xz/7z/RAR/zstd file: its contents were not scanned.",
)

_SCRIPT_SUFFIXES = frozenset({".sh", ".bash", ".zsh", ".ksh", ".bat", ".cmd", ".ps1", ".psm1"})
_SHEBANG = re.compile(
    rb"#![ \t]*\S*?(?:/|env[ \t]+(?:-\S+[ \t]+)*)"
    rb"(?:ba|z|k|c|tc|da|fi|a)?sh\b|#![ \t]*\S*?(?:perl|ruby|node|pwsh|powershell)\b"
)
_MACHO = {
    b"\xfe\xed\xfa\xce": "Mach-O 32-bit",
    b"\xce\xfa\xed\xfe": "Mach-O 32-bit",
    b"\xfe\xed\xfa\xcf": "Mach-O 64-bit",
    b"\xcf\xfa\xed\xfe": "Mach-O 64-bit",
}
_ARCHIVES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "RAR"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def describe_executable(f: FileInput) -> str | None:
    """Name the executable format of ``f`` from its magic bytes, or ``None``."""
    head = f.head
    if head.startswith(b"\x7fELF"):
        return "ELF"
    if head[:4] in _MACHO:
        return _MACHO[head[:4]]
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        # Universal Mach-O and Java classes share this magic; both are code.
        (n,) = struct.unpack(">I", head[4:8])
        return "Mach-O universal binary" if 0 < n < 45 else "Java class file"
    if head.startswith(b"MZ") and _has_pe_header(f):
        return "PE (Windows executable/DLL)"
    return None


def _has_pe_header(f: FileInput) -> bool:
    if len(f.head) < 0x40:
        return False
    (offset,) = struct.unpack("<I", f.head[0x3C:0x40])
    if offset + 4 > f.size or offset > 1 << 24:
        return False
    with f.open() as fh:
        fh.seek(offset)
        return fh.read(4) == b"PE\x00\x00"


def describe_archive(head: bytes) -> str | None:
    """Name the compressed-archive format of a file head, or ``None``."""
    for magic, name in _ARCHIVES:
        if head.startswith(magic):
            return name
    # "BZh" + level + block magic 0x314159265359 (pi): plain "BZh" text is not enough.
    if re.match(rb"BZh[1-9]\x31\x41\x59\x26\x53\x59", head):
        return "bzip2"
    return None


def _is_script(f: FileInput) -> str | None:
    if f.suffix in _SCRIPT_SUFFIXES:
        return f"{f.suffix} file"
    first = f.head.split(b"\n", 1)[0]
    if first.startswith(b"#!") and _SHEBANG.match(first):
        return first.decode("utf-8", "replace")
    return None


# Every magic above and the shebang start with one of these bytes: a file whose first byte
# is none of them (a pickle, a safetensors header, plain text) has nothing to report here,
# so the check is not even started for it (archives hold many thousands of such members).
_FIRST_BYTES = frozenset(
    m[:1]
    for m in (
        b"\x7fELF",
        *_MACHO,
        b"\xca\xfe\xba\xbe",
        b"MZ",
        *(a for a, _ in _ARCHIVES),
        b"BZh",
        b"#!",
    )
)


def _applies(f: FileInput) -> bool:
    """Cheap pre-check: could :func:`scan_files` report anything for ``f``?"""
    return f.head[:1] in _FIRST_BYTES or f.suffix in _SCRIPT_SUFFIXES


@file_check("files", applies=_applies)
def scan_files(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Report executables, scripts and unscanned compressed archives by their magic."""
    exe = describe_executable(f)
    if exe is not None:
        yield ctx.finding(EXECUTABLE, f, evidence=exe, extra={"kind": exe})
        return
    archive = describe_archive(f.head)
    if archive is not None:
        yield ctx.finding(NESTED_ARCHIVE, f, evidence=archive, extra={"kind": archive})
        return
    script = _is_script(f)
    if script is not None:
        yield ctx.finding(SCRIPT, f, evidence=script)

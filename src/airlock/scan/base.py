"""The contract between the scan engine and format scanners.

A *format scanner* owns one file format and is chosen once per file::

    @format_scanner("safetensors", extensions=(".safetensors",), sniff=_is_safetensors)
    def scan_safetensors(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
        with f.open() as fh:
            ...
            yield ctx.finding(HEADER_TOO_LARGE, f, location="header", evidence="...")

A *file check* runs on every file it applies to, whatever its format (secrets,
executables). A *repo check* runs once per scan over the whole tree (licence).

Scanners never execute what they read; they read bytes with bounds and turn
every problem into a finding. An exception escaping a scanner is caught by the
engine and reported as ``scan.internal-error`` (a bug to fix, never a crash).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airlock.findings import Finding, Rule, Severity, rule, shorten
from airlock.policy import Policy

SNIFF_BYTES = 64


@dataclass(frozen=True)
class Limits:
    """Bounds every scanner honours; memory and time stay finite whatever a file declares."""

    max_nesting: int = 4  # archives in archives, pickles in pickles
    max_member_in_memory: int = 16 * 1024 * 1024  # larger members spill to a temp file
    max_member_bytes: int = 4 * 1024 * 1024 * 1024  # never inflate more than this per member
    max_compression_ratio: float = 200.0
    max_archive_members: int = 200_000
    max_text_bytes: int = 8 * 1024 * 1024  # secrets/text checks read at most this much
    max_header_bytes: int = 100 * 1024 * 1024  # safetensors/GGUF metadata
    max_pickle_opcodes: int = 50_000_000


class FileInput:
    """One file to scan: on disk, or a member of an archive (held in memory or a temp file).

    Attributes:
        path: display path relative to the scan root, ``/``-separated; archive members
            are ``outer.zip!inner/name``.
        size: size in bytes.
        head: the first :data:`SNIFF_BYTES` bytes, for sniffing.
        depth: nesting level (0 for files on disk).
        fs_path: the real file on disk, when there is one.
        format_hint: a container's word on what this member is (``"pickle"``).
        name: the base name (after the last ``/``, ``!`` or ``#``).
        suffix: lower-case extension of ``name`` with the dot, ``""`` if none.

    A container that already holds the first bytes of a member passes them as ``head``
    so that building the input costs no extra read.
    """

    def __init__(
        self,
        path: str,
        size: int,
        opener: Callable[[], IO[bytes]],
        *,
        depth: int = 0,
        fs_path: Path | None = None,
        format_hint: str | None = None,
        head: bytes | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self._opener = opener
        self.depth = depth
        self.fs_path = fs_path
        self.format_hint = format_hint
        if head is None:  # a container that already holds the first bytes passes them
            with opener() as fh:
                head = fh.read(SNIFF_BYTES)
        self.head = head if len(head) <= SNIFF_BYTES else head[:SNIFF_BYTES]
        # computed once here: every file is dispatched by name, and archives hold many files
        name = path.rpartition("/")[2]
        if "!" in name or "#" in name:
            name = name[max(name.rfind("!"), name.rfind("#")) + 1 :]
        self.name = name
        dot = name.rfind(".")
        self.suffix = name[dot:].lower() if dot >= 0 else ""

    @classmethod
    def from_path(cls, fs_path: Path, display: str, *, depth: int = 0) -> FileInput:
        size = fs_path.stat().st_size
        return cls(display, size, lambda: open(fs_path, "rb"), depth=depth, fs_path=fs_path)

    @classmethod
    def from_bytes(
        cls, display: str, data: bytes, *, depth: int = 0, format_hint: str | None = None
    ) -> FileInput:
        return cls(
            display,
            len(data),
            lambda: io.BytesIO(data),
            depth=depth,
            format_hint=format_hint,
            head=data[:SNIFF_BYTES],
        )

    def open(self) -> IO[bytes]:
        """A fresh binary handle positioned at 0. Close it (use ``with``)."""
        return self._opener()

    def read_text(self, limit: int) -> str | None:
        """Decode up to ``limit`` bytes as UTF-8 text; ``None`` if it does not look like text."""
        with self.open() as fh:
            data = fh.read(limit)
        if b"\x00" in data[:8192]:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start >= len(data) - 4:  # cut inside a multi-byte character
                return data[: e.start].decode("utf-8", "replace")
            return None


@dataclass
class ScanContext:
    """What a scanner may use besides its file: policy, limits, recursion and shared facts.

    ``facts`` carries what one scanner learns for another, by kind:
    ``"license"``: dicts ``{"source": path, "value": str, "field": str}`` (declared licences);
    ``"model"``: dicts with ``name``/``architecture``/``format``/``path`` (for the ML-BOM).
    """

    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    facts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nested_scanner: Callable[[FileInput, ScanContext], Iterator[Finding]] | None = None
    texts: dict[str, str] = field(default_factory=dict)
    texts_bytes: int = 0  # size of the archive members kept in ``texts`` (bounded by the engine)

    def finding(
        self,
        r: Rule,
        where: FileInput | str,
        *,
        title: str | None = None,
        location: str | None = None,
        line: int | None = None,
        evidence: str | None = None,
        severity: Severity | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Finding:
        """Make a finding of rule ``r``; title, severity and remediation default to the rule's."""
        path = where.path if isinstance(where, FileInput) else where
        return Finding(
            rule_id=r.id,
            severity=r.severity if severity is None else severity,
            title=title or r.title,
            path=path,
            location=location,
            line=line,
            evidence=None if evidence is None else shorten(evidence),
            remediation=r.remediation,
            extra=extra or {},
        )

    def add_fact(self, kind: str, value: dict[str, Any]) -> None:
        self.facts.setdefault(kind, []).append(value)

    def scan_nested(
        self,
        parent: FileInput,
        name: str,
        data: bytes | IO[bytes],
        *,
        format_hint: str | None = None,
        sep: str = "!",
    ) -> Iterator[Finding]:
        """Scan an embedded file (archive member, pickle inside a pickle) through the dispatcher.

        ``data`` is bytes or a readable handle (consumed up to ``limits.max_member_bytes``;
        large content spills to a temporary file). Past ``limits.max_nesting`` a
        ``scan.nesting-too-deep`` finding is returned instead.
        """
        if isinstance(data, bytes):
            yield from self.scan_nested_file(
                parent, name, lambda: io.BytesIO(data), len(data),
                format_hint=format_hint, sep=sep, head=data[:SNIFF_BYTES],
            )  # fmt: skip
            return
        if parent.depth + 1 > self.limits.max_nesting:  # before copying anything
            yield self._too_deep(parent, f"{parent.path}{sep}{name}")
            return
        with _spool(data, self.limits) as (opener, n):
            yield from self.scan_nested_file(
                parent, name, opener, n, format_hint=format_hint, sep=sep
            )

    def scan_nested_file(
        self,
        parent: FileInput,
        name: str,
        opener: Callable[[], IO[bytes]],
        size: int,
        *,
        format_hint: str | None = None,
        sep: str = "!",
        head: bytes | None = None,
    ) -> Iterator[Finding]:
        """Like :meth:`scan_nested` for content that can be reopened without copying (a
        stored archive member as a window onto the outer file, bytes already in memory).
        ``head``: the first bytes, when the caller already has them (saves an open)."""
        display = f"{parent.path}{sep}{name}"
        if parent.depth + 1 > self.limits.max_nesting:
            yield self._too_deep(parent, display)
            return
        if self.nested_scanner is not None:
            child = FileInput(
                display, size, opener, depth=parent.depth + 1, format_hint=format_hint, head=head
            )
            yield from self.nested_scanner(child, self)

    def _too_deep(self, parent: FileInput, display: str) -> Finding:
        return self.finding(NESTING_TOO_DEEP, display, evidence=f"depth {parent.depth + 1}")


class _spool:
    """Copy a stream into memory or a temp file, bounded; yields (opener, size)."""

    def __init__(self, src: IO[bytes], limits: Limits) -> None:
        self.src, self.limits = src, limits
        self.tmp: Any = None

    def __enter__(self) -> tuple[Callable[[], IO[bytes]], int]:
        buf = self.src.read(self.limits.max_member_in_memory + 1)
        if len(buf) <= self.limits.max_member_in_memory:
            return (lambda: io.BytesIO(buf)), len(buf)
        self.tmp = tempfile.NamedTemporaryFile(prefix="airlock-", delete=False)
        self.tmp.write(buf)
        left = self.limits.max_member_bytes - len(buf)
        while left > 0 and (chunk := self.src.read(min(1 << 20, left))):
            self.tmp.write(chunk)
            left -= len(chunk)
        self.tmp.close()
        name = self.tmp.name
        return (lambda: open(name, "rb")), os.path.getsize(name)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            os.unlink(self.tmp.name)


# --- registry -------------------------------------------------------------------------

Sniffer = Callable[[bytes, "FileInput"], bool]
FormatFn = Callable[[FileInput, ScanContext], Iterable[Finding]]


@dataclass(frozen=True)
class FormatScanner:
    name: str
    fn: FormatFn
    extensions: tuple[str, ...] = ()
    filenames: tuple[str, ...] = ()
    sniff: Sniffer | None = None
    priority: int = 0


@dataclass(frozen=True)
class FileCheck:
    name: str
    fn: FormatFn
    applies: Callable[[FileInput], bool]


RepoFn = Callable[["RepoView", ScanContext], Iterable[Finding]]


@dataclass(frozen=True)
class RepoCheck:
    name: str
    fn: RepoFn


@dataclass
class RepoView:
    """The whole scanned tree, for checks that need more than one file.

    ``files`` maps the display path of each file on disk to its format name (archive
    members are scanned but not listed: an archive may hold 200,000); ``texts`` holds
    the decoded content of small text files the engine kept, archive members included
    (README/model card, LICENSE, USE_POLICY, *.json, *.md, *.txt under 1 MiB).
    ``whole_repo`` is false when the user named only loose files (no folder, and no
    archive holding a model card or licence).
    """

    files: dict[str, str]
    texts: dict[str, str]
    whole_repo: bool = True  # False when only loose files were given (no folder or archive)


FORMAT_SCANNERS: dict[str, FormatScanner] = {}
FILE_CHECKS: dict[str, FileCheck] = {}
REPO_CHECKS: dict[str, RepoCheck] = {}


def format_scanner(
    name: str,
    *,
    extensions: Iterable[str] = (),
    filenames: Iterable[str] = (),
    sniff: Sniffer | None = None,
    priority: int = 0,
) -> Callable[[FormatFn], FormatFn]:
    """Register a format scanner. Sniffers (magic bytes) win over names and extensions;
    among sniffers, higher ``priority`` is tried first. ``filenames`` are fnmatch globs
    on the base name (``tokenizer_config.json``, ``*.jinja``)."""

    def deco(fn: FormatFn) -> FormatFn:
        FORMAT_SCANNERS[name] = FormatScanner(
            name, fn, tuple(e.lower() for e in extensions), tuple(filenames), sniff, priority
        )
        return fn

    return deco


def file_check(name: str, applies: Callable[[FileInput], bool]) -> Callable[[FormatFn], FormatFn]:
    """Register a check that runs on every file for which ``applies(file)`` is true."""

    def deco(fn: FormatFn) -> FormatFn:
        FILE_CHECKS[name] = FileCheck(name, fn, applies)
        return fn

    return deco


def repo_check(name: str) -> Callable[[RepoFn], RepoFn]:
    """Register a check that runs once per scan over the :class:`RepoView`."""

    def deco(fn: RepoFn) -> RepoFn:
        REPO_CHECKS[name] = RepoCheck(name, fn)
        return fn

    return deco


# --- engine-level rules ------------------------------------------------------------------

NESTING_TOO_DEEP = rule(
    "scan.nesting-too-deep",
    Severity.MEDIUM,
    "Nested content too deep to scan",
    "Archives or pickles are nested deeper than airlock follows; unpack the file "
    "and scan the parts, or treat it as untrusted.",
)
INTERNAL_ERROR = rule(
    "scan.internal-error",
    Severity.MEDIUM,
    "A scanner failed on this file",
    "The file could not be fully judged. Treat it as unscanned and report the "
    "evidence to the airlock maintainers.",
)

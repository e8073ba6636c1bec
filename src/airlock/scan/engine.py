"""Dispatch: choose a format scanner for a file, run file checks, contain failures."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator

from airlock.findings import Finding
from airlock.scan.base import (
    FILE_CHECKS,
    FORMAT_SCANNERS,
    INTERNAL_ERROR,
    FileInput,
    FormatFn,
    FormatScanner,
    ScanContext,
)


class _Table:
    """Sniffers by priority and name patterns, rebuilt only when the registry changes."""

    def __init__(self) -> None:
        self.size = -1
        self.sniffers: list[FormatScanner] = []
        self.by_ext: dict[str, FormatScanner] = {}
        self.patterns: list[tuple[str, FormatScanner]] = []

    def refresh(self) -> None:
        if self.size == len(FORMAT_SCANNERS):
            return
        scanners = list(FORMAT_SCANNERS.values())
        self.sniffers = sorted((s for s in scanners if s.sniff), key=lambda s: -s.priority)
        # among scanners claiming one extension, the higher priority (then first registered) wins
        self.by_ext = {}
        for s in sorted(scanners, key=lambda s: -s.priority):
            for ext in s.extensions:
                self.by_ext.setdefault(ext, s)
        self.patterns = [(p, s) for s in scanners for p in s.filenames]
        self.size = len(FORMAT_SCANNERS)


_TABLE = _Table()


def choose_format(f: FileInput) -> FormatScanner | None:
    """The format scanner for ``f``: a container's hint, then magic bytes, then names."""
    if f.format_hint and f.format_hint in FORMAT_SCANNERS:
        return FORMAT_SCANNERS[f.format_hint]
    _TABLE.refresh()
    for s in _TABLE.sniffers:
        if _safe_sniff(s, f):
            return s
    name = f.name
    for pat, s in _TABLE.patterns:
        if fnmatch.fnmatchcase(name, pat):
            return s
    return _TABLE.by_ext.get(f.suffix)


TEXT_KEEP_BYTES = 1 << 20
# all archive members' kept texts together: an archive of 200,000 small READMEs must not
# hold them all in memory (files on disk are kept regardless: the user chose them)
TEXT_KEEP_MEMBERS_BYTES = 64 << 20
_KEEP_NAME = re.compile(r"(?i)^(readme|license|licence|use_policy|notice|copying)")
_KEEP_SUFFIXES = frozenset({".md", ".txt", ".json", ".yaml", ".yml", ".cff"})
_KEEP_FIRST = frozenset("rRlLuUnNcC")  # first letters _KEEP_NAME accepts: skips the regex


def _keep_text(f: FileInput, ctx: ScanContext) -> None:
    """Keep small text files (model card, licence, configs) for repo-level checks."""
    if f.size > TEXT_KEEP_BYTES:
        return
    name = f.name
    if f.suffix not in _KEEP_SUFFIXES and (
        name[:1] not in _KEEP_FIRST or not _KEEP_NAME.match(name)
    ):
        return
    if f.depth and ctx.texts_bytes + f.size > TEXT_KEEP_MEMBERS_BYTES:
        return
    try:
        text = f.read_text(TEXT_KEEP_BYTES)
    except OSError:
        return
    if text is not None:
        ctx.texts[f.path] = text
        if f.depth:
            ctx.texts_bytes += f.size


def _safe_sniff(s: FormatScanner, f: FileInput) -> bool:
    try:
        return bool(s.sniff and s.sniff(f.head, f))
    except Exception:
        return False


def scan_file(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Run the chosen format scanner and every applicable file check on ``f``.

    Never raises for a bad file: a scanner exception becomes ``scan.internal-error``.
    The ``format`` fact (the report's file records, :attr:`RepoView.files`) is recorded
    for files on disk only: an archive of 200,000 members would otherwise add as many.
    """
    if ctx.nested_scanner is None:
        ctx.nested_scanner = scan_file
    fmt = choose_format(f)
    if f.depth == 0:
        ctx.add_fact("format", {"path": f.path, "format": fmt.name if fmt else "other"})
    _keep_text(f, ctx)
    if fmt is not None:  # inlined _guarded: one generator layer fewer on every file
        try:
            yield from fmt.fn(f, ctx)
        except Exception as e:  # a bug in a scanner must not stop the scan
            yield _internal_error(fmt.name, f, ctx, e)
    for check in FILE_CHECKS.values():
        try:
            applies = check.applies(f)
        except Exception:
            applies = False
        if applies:
            yield from _guarded(check.name, check.fn, f, ctx)


def _guarded(name: str, fn: FormatFn, f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    try:
        yield from fn(f, ctx)
    except Exception as e:  # a bug in a scanner must not stop the scan
        yield _internal_error(name, f, ctx, e)


def _internal_error(name: str, f: FileInput, ctx: ScanContext, e: Exception) -> Finding:
    if isinstance(e, (MemoryError, RecursionError)):
        evidence = type(e).__name__
    else:
        evidence = f"{type(e).__name__}: {e}"
    return ctx.finding(INTERNAL_ERROR, f, location=name, evidence=evidence)

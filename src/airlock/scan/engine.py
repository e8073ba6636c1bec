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
_KEEP_NAME = re.compile(r"(?i)^(readme|license|licence|use_policy|notice|copying)")
_KEEP_SUFFIXES = frozenset({".md", ".txt", ".json", ".yaml", ".yml", ".cff"})


def _keep_text(f: FileInput, ctx: ScanContext) -> None:
    """Keep small text files (model card, licence, configs) for repo-level checks."""
    if f.size > TEXT_KEEP_BYTES:
        return
    if f.suffix not in _KEEP_SUFFIXES and not _KEEP_NAME.match(f.name):
        return
    try:
        text = f.read_text(TEXT_KEEP_BYTES)
    except OSError:
        return
    if text is not None:
        ctx.texts[f.path] = text


def _safe_sniff(s: FormatScanner, f: FileInput) -> bool:
    try:
        return bool(s.sniff and s.sniff(f.head, f))
    except Exception:
        return False


def scan_file(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Run the chosen format scanner and every applicable file check on ``f``.

    Never raises for a bad file: a scanner exception becomes ``scan.internal-error``.
    """
    if ctx.nested_scanner is None:
        ctx.nested_scanner = scan_file
    fmt = choose_format(f)
    ctx.add_fact("format", {"path": f.path, "format": fmt.name if fmt else "other"})
    _keep_text(f, ctx)
    if fmt is not None:
        yield from _guarded(fmt.name, fmt.fn, f, ctx)
    for check in FILE_CHECKS.values():
        try:
            applies = check.applies(f)
        except Exception:
            applies = False
        if applies:
            yield from _guarded(check.name, check.fn, f, ctx)


def _guarded(name: str, fn: object, f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    try:
        yield from fn(f, ctx)  # type: ignore[operator]
    except (MemoryError, RecursionError) as e:
        yield ctx.finding(INTERNAL_ERROR, f, location=name, evidence=type(e).__name__)
    except Exception as e:  # a bug in a scanner must not stop the scan
        yield ctx.finding(INTERNAL_ERROR, f, location=name, evidence=f"{type(e).__name__}: {e}")

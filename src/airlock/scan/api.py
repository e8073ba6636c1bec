"""``scan_path``: the library entry of ``airlock scan``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from airlock import __version__
from airlock.findings import Finding, get_rule
from airlock.policy import Policy
from airlock.scan.base import REPO_CHECKS, FileInput, Limits, RepoView, ScanContext
from airlock.scan.engine import scan_file
from airlock.scan.integrity import BLOB_MISMATCH, blob_mismatch, sha256_file
from airlock.scan.result import FileRecord, ScanResult
from airlock.scan.walk import UNREADABLE, Entry, Problem, display_name, expand_target, walk


class ScanInputError(ValueError):
    """A target does not exist or is neither a file nor a directory (a usage error)."""


@dataclass
class Progress:
    """Where a scan is; passed to the ``progress`` callback (possibly from a hashing thread)."""

    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_hashed: int = 0
    current: str = ""


ProgressFn = Callable[[Progress], None]


def scan_path(
    path: str | Path,
    policy: Policy | None = None,
    *,
    hash_files: bool = True,
    progress: ProgressFn | None = None,
    limits: Limits | None = None,
) -> ScanResult:
    """Scan one file, model directory, Hugging Face cache folder or archive.

    Args:
        path: what to scan.
        policy: what is acceptable (default: :class:`Policy()`; fail on high).
        hash_files: compute sha256 of every file (needed for ``airlock.lock``).
        progress: called as the scan advances.
        limits: override the default bounds.

    Returns:
        The findings after policy, the files with hashes, and the facts learned.

    Raises:
        ScanInputError: ``path`` does not exist.
    """
    return scan_paths([path], policy, hash_files=hash_files, progress=progress, limits=limits)


def scan_paths(
    paths: Sequence[str | Path],
    policy: Policy | None = None,
    *,
    hash_files: bool = True,
    progress: ProgressFn | None = None,
    limits: Limits | None = None,
) -> ScanResult:
    """Scan several targets into one result; see :func:`scan_path`."""
    _load_builtins()
    policy = policy or Policy()
    roots = _roots(paths)
    entries, problems = _collect(roots)
    ctx = ScanContext(policy=policy, limits=limits or Limits())
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    state = Progress(len(entries), sum(e.size for e in entries) if hash_files else 0)
    raw: list[Finding] = [_problem_finding(ctx, p) for p in problems]
    hashes = _Hasher(hash_files, state, progress)
    try:
        for e in entries:
            hashes.submit(e)
            raw.extend(_scan_entry(e, ctx, state, progress))
        digests = hashes.results()
    finally:
        hashes.close()
    raw.extend(_blob_checks(entries, digests, ctx))
    raw.extend(_repo_checks(ctx, whole_repo=any(Path(p).is_dir() for p in paths)))
    formats = {d["path"]: d["format"] for d in ctx.facts.get("format", [])}
    return ScanResult(
        targets=[str(p) for p in paths],
        files=[
            FileRecord(e.display, e.size, digests.get(e.display), formats.get(e.display, "other"))
            for e in entries
        ],
        findings=_finalise(raw, policy),
        facts=ctx.facts,
        fail_on=policy.fail_on,
        started_at=started.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - t0,
        tool_version=__version__,
    )


def _roots(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Roots to walk with display prefixes; each target once, every prefix distinct."""
    roots: list[tuple[Path, str]] = []
    unique: dict[Path, Path] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists() and not p.is_symlink():
            raise ScanInputError(f"no such file or directory: {p}")
        if not (p.is_file() or p.is_dir()):
            raise ScanInputError(f"not a regular file or directory: {p}")
        unique.setdefault(p.resolve(), p)  # `scan d d` scans d once
    labels: set[str] = set()
    for real, p in unique.items():
        label = ""
        if len(unique) > 1:
            label = display_name(real.name)
            n = 1
            while label in labels:  # two targets with one base name: c1/model and c2/model
                n += 1
                label = f"{display_name(real.name)}~{n}"
            labels.add(label)
            label += "/"
        roots.extend((base, label + sub) for base, sub in expand_target(p))
    return roots


def _collect(roots: list[tuple[Path, str]]) -> tuple[list[Entry], list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    for base, prefix in roots:
        if base.is_file():
            name = prefix + display_name(base.name)
            entries.append(Entry(base.resolve(), name, base.stat().st_size))
            continue
        for item in walk(base, prefix):
            (entries if isinstance(item, Entry) else problems).append(item)  # type: ignore[arg-type]
    return entries, problems


def _scan_entry(
    e: Entry, ctx: ScanContext, state: Progress, progress: ProgressFn | None
) -> Iterator[Finding]:
    state.current = e.display
    try:
        f = FileInput.from_path(e.fs_path, e.display)
    except OSError as err:
        yield ctx.finding(UNREADABLE, e.display, evidence=err.strerror or str(err))
    else:
        yield from scan_file(f, ctx)
    state.files_done += 1
    if progress is not None:
        progress(state)


class _Hasher:
    """Hash files on two threads while the main thread scans (hashlib frees the GIL)."""

    def __init__(self, enabled: bool, state: Progress, progress: ProgressFn | None) -> None:
        self.enabled = enabled
        self.pool = ThreadPoolExecutor(max_workers=2) if enabled else None
        self.futures: dict[str, Future[str | None]] = {}
        self.lock = threading.Lock()
        self.state, self.progress = state, progress

    def submit(self, e: Entry) -> None:
        if self.pool is not None:
            self.futures[e.display] = self.pool.submit(self._hash, e)

    def _hash(self, e: Entry) -> str | None:
        try:
            return sha256_file(e.fs_path, self._advance)
        except OSError:
            return None

    def _advance(self, n: int) -> None:
        with self.lock:
            self.state.bytes_hashed += n
        if self.progress is not None:
            self.progress(self.state)

    def results(self) -> dict[str, str | None]:
        return {k: f.result() for k, f in self.futures.items()}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _blob_checks(
    entries: list[Entry], digests: dict[str, str | None], ctx: ScanContext
) -> Iterator[Finding]:
    for e in entries:
        if not e.via_link:
            continue
        try:
            why = blob_mismatch(e.fs_path, e.size, digests.get(e.display))
        except OSError:
            continue
        if why:
            yield ctx.finding(BLOB_MISMATCH, e.display, evidence=why)


def _repo_checks(ctx: ScanContext, whole_repo: bool) -> Iterator[Finding]:
    formats = {d["path"]: d["format"] for d in ctx.facts.get("format", [])}
    # an archive that carries a model card or licence is a repository too
    whole_repo = whole_repo or any("!" in p for p in ctx.texts)
    view = RepoView(files=formats, texts=ctx.texts, whole_repo=whole_repo)
    for check in REPO_CHECKS.values():
        try:
            yield from check.fn(view, ctx)
        except Exception as e:  # a bug in a check must not stop the scan
            from airlock.scan.base import INTERNAL_ERROR

            yield ctx.finding(INTERNAL_ERROR, ".", location=check.name, evidence=repr(e))


def _problem_finding(ctx: ScanContext, p: Problem) -> Finding:
    return ctx.finding(get_rule(p.rule_id), p.display, evidence=p.evidence)


def _finalise(raw: Iterable[Finding], policy: Policy) -> list[Finding]:
    seen: set[Finding] = set()
    out: list[Finding] = []
    for f in raw:
        g = policy.apply(f)
        if g is not None and g not in seen:
            seen.add(g)
            out.append(g)
    out.sort(key=lambda f: (-f.severity, f.path, f.line or 0, f.rule_id))
    return out


_BUILTINS = (
    "airlock.scan.walk",
    "airlock.scan.pickles",
    "airlock.scan.npy",
    "airlock.scan.integrity",
    "airlock.scan.licenses",
    "airlock.scan.safetensors",
    "airlock.scan.gguf",
    "airlock.scan.onnx",
    "airlock.scan.keras",
    "airlock.scan.zips",
    "airlock.scan.tars",
    "airlock.scan.templates",
    "airlock.scan.hfconfig",
    "airlock.scan.remote_code",
    "airlock.scan.credentials",
    "airlock.scan.files",
)
_loaded = False


def _load_builtins() -> None:
    """Import the built-in scanners (they register themselves) and entry-point plugins."""
    global _loaded
    if _loaded:
        return
    import importlib

    for name in _BUILTINS:
        importlib.import_module(name)
    if _plugins_declared():
        from importlib.metadata import entry_points

        for ep in entry_points(group=PLUGIN_GROUP):
            ep.load()
    _loaded = True


PLUGIN_GROUP = "airlock.scanners"


def _plugins_declared() -> bool:
    """Whether any installed distribution declares an airlock scanner plugin.

    A cheap look at ``entry_points.txt`` files, so that a scan without plugins does not pay
    for importing :mod:`importlib.metadata` (a noticeable part of start-up in CI loops).
    """
    import sys

    marker = f"[{PLUGIN_GROUP}]"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(
                    os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8"
                ) as fh:
                    if marker in fh.read():
                        return True
            except OSError:
                continue
    return False

"""Find the files under a scan target: directories, Hugging Face cache layouts, symlinks.

Nothing is followed outside the target: a symlink that leaves the model root is a
finding, not a read. In a Hugging Face cache (``models--org--name/snapshots/REV``)
the root for links is the ``models--org--name`` folder, so links into ``blobs/`` are
expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from airlock.findings import Severity, rule

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".cache"})
SKIP_FILES = frozenset({"airlock.lock", ".DS_Store"})
_HF_REPO = re.compile(r"^(models|datasets|spaces)--.+")

SYMLINK_ESCAPE = rule(
    "file.symlink-escape",
    Severity.HIGH,
    "Symlink points outside the model directory",
    "A model repository should be self-contained. Remove the link; a loader that "
    "follows it reads files the model's authors chose on your machine.",
)
BROKEN_SYMLINK = rule(
    "scan.broken-symlink",
    Severity.LOW,
    "Broken symlink",
    "The link's target does not exist (an incomplete download or a damaged cache). "
    "Download the file again.",
)
UNREADABLE = rule(
    "scan.unreadable",
    Severity.MEDIUM,
    "File could not be read",
    "airlock could not read this file, so it was not judged. Fix the permissions and "
    "scan again, or treat the file as untrusted.",
)
SYMLINKED_DIR = rule(
    "scan.symlinked-directory",
    Severity.INFO,
    "Symlinked directory not followed",
    "Directory links are not followed (they can loop). Scan the target directory itself "
    "if it belongs to the model.",
)


@dataclass(frozen=True)
class Entry:
    """A regular file to scan. ``fs_path`` is the resolved file; ``display`` the name shown."""

    fs_path: Path
    display: str
    size: int
    via_link: bool = False


@dataclass(frozen=True)
class Problem:
    """A path that could not be scanned, already judged."""

    rule_id: str
    display: str
    evidence: str


def link_root(root: Path) -> Path:
    """The folder links may point into: the HF repo folder for a cache snapshot, else root."""
    r = root.resolve()
    if r.parent.name == "snapshots" and _HF_REPO.match(r.parent.parent.name):
        return r.parent.parent
    return r


def expand_target(target: Path) -> list[tuple[Path, str]]:
    """Roots to walk for one target with their display prefixes.

    A Hugging Face repo folder (``models--org--name``) is scanned through its snapshots,
    so files keep their real names; anything else is its own root.
    """
    snaps = target / "snapshots"
    if target.is_dir() and _HF_REPO.match(target.name) and snaps.is_dir():
        revs = sorted(p for p in snaps.iterdir() if p.is_dir())
        return [(p, f"snapshots/{p.name}/") for p in revs]
    return [(target, "")]


def walk(root: Path, prefix: str = "") -> Iterator[Entry | Problem]:
    """Yield files under ``root`` (sorted, deterministic) and problems found on the way."""
    allowed = link_root(root)
    stack: list[tuple[Path, str]] = [(root, prefix)]
    while stack:
        folder, disp = stack.pop()
        try:
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Problem(UNREADABLE.id, disp.rstrip("/") or ".", e.strerror or str(e))
            continue
        subdirs = []
        for item in items:
            shown = disp + item.name
            if item.is_dir(follow_symlinks=False):
                if item.name not in SKIP_DIRS:
                    subdirs.append((Path(item.path), shown + "/"))
                continue
            if item.name in SKIP_FILES:
                continue
            yield from _entry(Path(item.path), shown, allowed, item.is_symlink())
        stack.extend(reversed(subdirs))


def _entry(path: Path, shown: str, allowed: Path, is_link: bool) -> Iterator[Entry | Problem]:
    if not is_link:
        try:
            st = path.stat()
        except OSError as e:
            yield Problem(UNREADABLE.id, shown, e.strerror or str(e))
            return
        if path.is_file():
            yield Entry(path, shown, st.st_size)
        return
    target = Path(os.path.realpath(path))
    raw = os.readlink(path)
    if not target.exists():
        yield Problem(BROKEN_SYMLINK.id, shown, f"-> {raw}")
    elif not target.is_relative_to(allowed):
        yield Problem(SYMLINK_ESCAPE.id, shown, f"-> {raw}")
    elif target.is_dir():
        yield Problem(SYMLINKED_DIR.id, shown, f"-> {raw}")
    elif target.is_file():
        yield Entry(target, shown, target.stat().st_size, via_link=True)

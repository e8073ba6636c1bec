"""Find the files under a scan target: directories, Hugging Face cache layouts, symlinks.

Nothing is followed outside the target: a symlink that leaves the model root is a
finding, not a read. In a Hugging Face cache (``models--org--name/snapshots/REV``)
the root for links is the ``models--org--name`` folder, so links into ``blobs/`` are
expected.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from airlock.findings import Severity, rule

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".cache"})
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
SKIPPED_DIR = rule(
    "scan.skipped-directory",
    Severity.INFO,
    "Tool metadata folder not scanned",
    "Version-control and cache folders (.git, __pycache__ …) are not scanned; model "
    "loaders do not read them. If the model needs files from one, scan it on its own.",
)
SPECIAL_FILE = rule(
    "file.special",
    Severity.MEDIUM,
    "Named pipe, socket or device file in the model files",
    "A model repository holds regular files only. Remove it: reading a pipe or device "
    "can block or return what another process chooses.",
)
AMBIGUOUS_NAME = rule(
    "file.ambiguous-name",
    Severity.LOW,
    "File name contains '!' or '#'",
    "Reports use '!' and '#' to name parts inside a file (archive members, GGUF keys). "
    "Rename the file so findings cannot be attributed to another file.",
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
    """Yield files under ``root`` (sorted, deterministic) and problems found on the way.

    Directory links that stay inside the model are walked under their own names (loaders
    follow them), once each: a visited set of (device, inode) stops loops.
    """
    allowed = link_root(root)
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(root, prefix)]
    while stack:
        folder, disp = stack.pop()
        try:
            st = folder.stat()
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Problem(UNREADABLE.id, disp.rstrip("/") or ".", e.strerror or str(e))
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        subdirs: list[tuple[Path, str]] = []
        for item in items:
            shown = disp + display_name(item.name)
            if item.is_dir(follow_symlinks=False):
                if item.name in SKIP_DIRS:
                    yield Problem(SKIPPED_DIR.id, shown + "/", "not scanned (tool metadata)")
                else:
                    subdirs.append((Path(item.path), shown + "/"))
                continue
            if disp == prefix and item.name == LOCK_NAME and _is_own_lock(item):
                continue
            for found in _entry(Path(item.path), shown, allowed, item.is_symlink()):
                if isinstance(found, Path):
                    subdirs.append((found, shown + "/"))
                else:
                    yield found
        stack.extend(reversed(subdirs))


LOCK_NAME = "airlock.lock"


def _is_own_lock(item: os.DirEntry[str]) -> bool:
    """A regular file that reads as an airlock lock (anything else named so is scanned)."""
    if item.is_symlink() or not item.is_file(follow_symlinks=False):
        return False
    try:
        with open(item.path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"lock_version"' in head


def display_name(name: str) -> str:
    """A file name fit for reports: undecodable bytes shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def _entry(
    path: Path, shown: str, allowed: Path, is_link: bool
) -> Iterator[Entry | Problem | Path]:
    if "!" in shown or "#" in shown:
        yield Problem(AMBIGUOUS_NAME.id, shown, "'!' and '#' separate archive members in reports")
    if not is_link:
        try:
            st = path.stat()
        except OSError as e:
            yield Problem(UNREADABLE.id, shown, e.strerror or str(e))
            return
        if stat.S_ISREG(st.st_mode):
            yield Entry(path, shown, st.st_size)
        else:
            yield Problem(SPECIAL_FILE.id, shown, _kind(st.st_mode))
        return
    target = Path(os.path.realpath(path))
    raw = os.readlink(path)
    if not target.exists():
        yield Problem(BROKEN_SYMLINK.id, shown, f"-> {raw}")
    elif not target.is_relative_to(allowed):
        yield Problem(SYMLINK_ESCAPE.id, shown, f"-> {raw}")
    elif target.is_dir():
        yield target  # walked under the link's name
    elif target.is_file():
        yield Entry(target, shown, target.stat().st_size, via_link=True)
    else:
        yield Problem(SPECIAL_FILE.id, shown, f"-> {raw}")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"

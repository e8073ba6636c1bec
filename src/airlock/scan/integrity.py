"""Hashes, the ``airlock.lock`` file and ``airlock verify``.

sha256 is the hash Hugging Face shows for large (LFS) files, so a lock can be
compared with the hub by eye. In a Hugging Face cache, blobs are named by their
hash (sha256 for LFS files, the git blob sha1 for small ones): a blob whose
content does not match its name has been altered after download.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airlock.findings import Severity, rule

LOCK_NAME = "airlock.lock"
LOCK_VERSION = 1
_CHUNK = 1 << 20
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
_SHA1_NAME = re.compile(r"^[0-9a-f]{40}$")

BLOB_MISMATCH = rule(
    "integrity.blob-mismatch",
    Severity.CRITICAL,
    "Cached blob does not match its hash name",
    "The Hugging Face cache names each blob by its hash; this content differs, so the "
    "file changed after download. Delete the blob and download it again, then find out "
    "what modified the cache.",
)


class LockError(ValueError):
    """The lock file is missing or unreadable."""


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a file, read in 1 MiB chunks (hashlib releases the GIL on large updates)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return h.hexdigest()


def git_blob_sha1(path: Path, size: int) -> str:
    """The git object id of a file, as git names small files in the HF cache."""
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def blob_mismatch(fs_path: Path, size: int, sha256: str | None) -> str | None:
    """If ``fs_path`` is a HF cache blob whose content differs from its name, say how."""
    if fs_path.parent.name != "blobs":
        return None
    name = fs_path.name
    if _SHA256_NAME.match(name):
        actual = sha256 or sha256_file(fs_path)
        return None if actual == name else f"blob {name[:12]}… has sha256 {actual[:12]}…"
    if _SHA1_NAME.match(name) and size <= 64 * _CHUNK:
        actual = git_blob_sha1(fs_path, size)
        return None if actual == name else f"blob {name[:12]}… has git sha1 {actual[:12]}…"
    return None


def write_lock(lock_path: Path, result: Any) -> None:
    """Write the lock: every file's size and sha256 with the scan's verdict."""
    data = {
        "lock_version": LOCK_VERSION,
        "tool": f"airlock {result.tool_version}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": result.verdict,
        "fail_on": str(result.fail_on),
        "counts": result.counts(),
        "files": {f.path: {"sha256": f.sha256, "size": f.size} for f in result.files if f.sha256},
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    # A new file renamed over the old name: a symlink planted at that name is replaced,
    # never written through (the scanned folder is untrusted).
    fd, tmp = tempfile.mkstemp(prefix=".airlock-lock-", dir=lock_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, lock_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_lock(lock_path: Path) -> dict[str, Any]:
    """Read and check a lock file.

    Raises:
        LockError: missing, unreadable or not a lock.
    """
    try:
        data = json.loads(lock_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise LockError(f"cannot read {lock_path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise LockError(f"{lock_path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise LockError(f"{lock_path} is not an airlock lock file")
    return data


@dataclass
class VerifyResult:
    """Differences between the files on disk and a lock."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    unchanged: int = 0
    lock_verdict: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.added or self.removed or self.changed or self.unverifiable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unverifiable": self.unverifiable,
            "unchanged": self.unchanged,
            "lock_verdict": self.lock_verdict,
        }


def verify(root: Path, lock_path: Path | None = None) -> VerifyResult:
    """Compare the files under ``root`` with the lock (default ``root/airlock.lock``).

    Raises:
        LockError: no usable lock.
        FileNotFoundError: ``root`` does not exist.
    """
    from airlock.scan.walk import Entry, expand_target, walk

    if not root.exists():
        raise FileNotFoundError(f"no such file or directory: {root}")
    lock = read_lock(lock_path or _default_lock(root))
    expected: dict[str, Any] = lock["files"]
    seen: dict[str, Entry] = {}
    out = VerifyResult(lock_verdict=lock.get("verdict"))
    if root.is_file():
        seen[root.name] = Entry(root, root.name, root.stat().st_size)
    else:
        for base, prefix in expand_target(root):
            for e in walk(base, prefix):
                if isinstance(e, Entry):
                    seen[e.display] = e
                elif e.rule_id != "scan.skipped-directory":
                    out.unverifiable.append(f"{e.display} ({e.evidence})")
    out.added = sorted(seen.keys() - expected.keys())
    out.removed = sorted(expected.keys() - seen.keys())
    for path in sorted(seen.keys() & expected.keys()):
        want, e = expected[path], seen[path]
        try:
            same = e.size == want.get("size") and sha256_file(e.fs_path) == want.get("sha256")
        except OSError as err:
            out.unverifiable.append(f"{path} ({err.strerror or err})")
            continue
        if same:
            out.unchanged += 1
        else:
            out.changed.append(path)
    return out


def _default_lock(root: Path) -> Path:
    return root / LOCK_NAME if root.is_dir() else root.with_name(root.name + ".airlock.lock")


def default_lock_path(root: Path) -> Path:
    """Where ``airlock scan`` writes the lock for a target, and ``verify`` looks for it."""
    return _default_lock(root)

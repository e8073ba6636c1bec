"""``airlock verify``: compare files with the lock a scan wrote."""

from __future__ import annotations

import json
from pathlib import Path

from airlock._cli.common import console, fail, write_output
from airlock.findings import shorten
from airlock.scan.integrity import LockError, verify


def run_verify(path: Path, lock_path: Path | None, fmt: str) -> int:
    """Run ``airlock verify``; 0 identical, 1 differences, 2 no lock or no path."""
    try:
        res = verify(path, lock_path)
    except (LockError, FileNotFoundError) as e:
        fail(str(e))
    if fmt == "json":
        write_output(json.dumps(res.to_dict(), indent=2) + "\n", None)
        return 0 if res.ok else 1
    from rich.text import Text

    out = console()
    for label, items, style in (
        ("added", res.added, "yellow"),
        ("removed", res.removed, "red"),
        ("changed", res.changed, "bold red"),
        ("cannot verify", res.unverifiable, "bold red"),
    ):
        for item in items:  # file names are untrusted: no markup, no terminal escapes
            out.print(Text(f"{label:8} ", style=style) + Text(shorten(item, 400)))
    verdict = "[green]OK[/green]" if res.ok else "[red]DIFFERS[/red]"
    out.print(
        f"{verdict}  {res.unchanged} unchanged, {len(res.added)} added, "
        f"{len(res.removed)} removed, {len(res.changed)} changed, "
        f"{len(res.unverifiable)} unverifiable "
        f"(lock verdict: {res.lock_verdict})"
    )
    return 0 if res.ok else 1

"""``airlock scan``: build the policy, run the scan with a progress bar, write everything."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from airlock.cli import console, fail, write_output
from airlock.findings import Severity
from airlock.policy import Policy, PolicyError, load_policy
from airlock.report import render
from airlock.report.terminal import print_scan
from airlock.scan import ScanInputError, ScanResult, scan_paths
from airlock.scan.api import Progress as ScanProgress
from airlock.scan.integrity import default_lock_path, write_lock
from airlock.store import Store, StoreError


def run_scan(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    policy_path: Path | None,
    no_hash: bool,
    lock_path: Path | None,
    no_lock: bool,
    db_path: str | None,
    no_db: bool,
    quiet: bool,
) -> int:
    """Run ``airlock scan``; returns the exit code."""
    if fmt == "text" and output is not None:
        fail("--output needs --format json, sarif, cyclonedx or html")
    policy = _policy(policy_path, fail_on)
    out = console()
    try:
        result = _scan_with_progress(paths, policy, not no_hash, out, quiet)
    except ScanInputError as e:
        fail(str(e))
    if not no_db:
        _record(result, db_path, out)
    if not (no_lock or no_hash):
        _write_lock(result, paths, lock_path, out)
    if fmt != "text":
        write_output(render(result, fmt), output)
    if not quiet:
        print_scan(result, out)
        if output is not None:
            out.print(f"report: {output}", soft_wrap=True)
    return result.exit_code


def _policy(policy_path: Path | None, fail_on: str | None) -> Policy:
    try:
        policy = load_policy(policy_path) if policy_path else Policy()
    except PolicyError as e:
        fail(str(e))
    return policy.with_fail_on(Severity.parse(fail_on)) if fail_on else policy


def _scan_with_progress(
    paths: tuple[Path, ...], policy: Policy, hash_files: bool, out: object, quiet: bool
) -> ScanResult:
    if quiet or not sys.stderr.isatty():
        return scan_paths(list(paths), policy, hash_files=hash_files)
    columns = (
        TextColumn("[bold]scanning[/bold] {task.fields[current]}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out, transient=True) as bar:  # type: ignore[arg-type]
        task = bar.add_task("scan", total=None, current="")

        def advance(p: ScanProgress) -> None:
            total = p.bytes_total or p.files_total
            done = p.bytes_hashed if p.bytes_total else p.files_done
            bar.update(task, total=total, completed=done, current=p.current[-40:])

        return scan_paths(list(paths), policy, hash_files=hash_files, progress=advance)


def _record(result: ScanResult, db_path: str | None, out: object) -> None:
    try:
        with Store(db_path) as store:
            store.save_scan(result)
    except StoreError as e:
        out.print(f"[yellow]warning:[/yellow] run not recorded: {e}")  # type: ignore[attr-defined]


def _write_lock(
    result: ScanResult, paths: tuple[Path, ...], lock_path: Path | None, out: object
) -> None:
    if len(paths) != 1 and lock_path is None:
        return  # one lock describes one target
    target = lock_path or default_lock_path(paths[0])
    try:
        write_lock(target, result)
    except OSError as e:
        msg = f"lock not written to {target}: {e.strerror or e} (use --lock FILE or --no-lock)"
        out.print(f"[yellow]warning:[/yellow] {msg}")  # type: ignore[attr-defined]

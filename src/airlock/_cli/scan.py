"""``airlock scan``: build the policy, run the scan with a progress bar, write everything."""

from __future__ import annotations

import sys
from pathlib import Path

from airlock._cli.common import console, fail, warn, write_output
from airlock.findings import Severity
from airlock.policy import Policy, PolicyError, load_policy
from airlock.scan import ScanInputError, ScanResult, scan_paths
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
    show_progress = not quiet and sys.stderr.isatty()
    try:
        result = _scan_with_progress(paths, policy, not no_hash, show_progress)
    except ScanInputError as e:
        fail(str(e))
    if not no_db:
        _record(result, db_path)
    if not (no_lock or no_hash):
        _write_lock(result, paths, lock_path)
    if fmt != "text":
        from airlock.report import render

        write_output(render(result, fmt), output)
    if not quiet:
        from airlock.report.terminal import print_scan

        out = console()
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
    paths: tuple[Path, ...], policy: Policy, hash_files: bool, show: bool
) -> ScanResult:
    if not show:
        return scan_paths(list(paths), policy, hash_files=hash_files)
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from airlock.findings import shorten
    from airlock.scan.api import Progress as ScanProgress

    columns = (
        TextColumn("[bold]scanning[/bold] {task.fields[current]}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task("scan", total=None, current="")

        def advance(p: ScanProgress) -> None:
            total = p.bytes_total or p.files_total
            done = p.bytes_hashed if p.bytes_total else p.files_done
            current = escape(shorten(p.current[-40:], 60))  # a file name is not markup
            bar.update(task, total=total, completed=done, current=current)

        return scan_paths(list(paths), policy, hash_files=hash_files, progress=advance)


def _record(result: ScanResult, db_path: str | None) -> None:
    try:
        with Store(db_path) as store:
            store.save_scan(result)
    except StoreError as e:
        warn(f"run not recorded: {e}")


def _write_lock(result: ScanResult, paths: tuple[Path, ...], lock_path: Path | None) -> None:
    if len(paths) != 1 and lock_path is None:
        return  # one lock describes one target
    target = lock_path or default_lock_path(paths[0])
    try:
        write_lock(target, result)
    except OSError as e:
        warn(f"lock not written to {target}: {e.strerror or e} (use --lock FILE or --no-lock)")

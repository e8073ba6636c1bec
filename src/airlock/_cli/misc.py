"""``airlock rules``, ``history`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from airlock.cli import console, fail, write_output
from airlock.findings import all_rules
from airlock.report import render
from airlock.scan.api import _load_builtins
from airlock.store import Store, StoreError


def run_rules(fmt: str) -> None:
    _load_builtins()
    rules = all_rules()
    if fmt == "json":
        data = [
            {
                "id": r.id,
                "severity": str(r.severity),
                "title": r.title,
                "remediation": r.remediation,
                "description": r.description,
            }
            for r in rules
        ]
        write_output(json.dumps(data, indent=2) + "\n", None)
        return
    table = Table("rule", "severity", "title", box=None)
    for r in rules:
        table.add_row(r.id, str(r.severity), r.title)
    console().print(table)


def run_history(db_path: Path | None, limit: int) -> int:
    try:
        with Store(db_path) as store:
            runs = store.runs(limit)
    except StoreError as e:
        fail(str(e))
    table = Table("run", "verb", "started", "verdict", "findings", "targets", box=None)
    for r in runs:
        n = ", ".join(f"{v} {k}" for k, v in r.counts.items() if v)
        table.add_row(r.id, r.verb, r.started_at, r.verdict, n or "none", " ".join(r.targets))
    console().print(table)
    return 0


def run_report(run_id: str, fmt: str, output: Path | None, db_path: Path | None) -> int:
    try:
        with Store(db_path) as store:
            result = store.load_scan(run_id)
    except StoreError as e:
        fail(str(e))
    except KeyError:
        fail(f"no single scan run matches {run_id!r} (see airlock history)")
    write_output(render(result, fmt), output)
    return 0

"""The results database: one SQLite file holding the history of runs and their findings.

Location: ``--db PATH`` or ``$AIRLOCK_DB``, else ``$XDG_DATA_HOME/airlock/airlock.db``
(``~/.local/share/airlock/airlock.db``). The whole result is stored as JSON beside
queryable rows, so any report can be rendered again from the database later
(``airlock report RUN_ID --format sarif``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.scan.result import ScanResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    verb TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    targets TEXT NOT NULL,
    verdict TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    counts TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    path TEXT NOT NULL,
    location TEXT,
    line INTEGER,
    evidence TEXT
);
CREATE INDEX IF NOT EXISTS findings_run ON findings(run_id);
CREATE INDEX IF NOT EXISTS findings_rule ON findings(rule_id);
CREATE TABLE IF NOT EXISTS files (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    format TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
"""


class StoreError(RuntimeError):
    """The database cannot be opened or written."""


def default_db_path() -> Path:
    env = os.environ.get("AIRLOCK_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "airlock" / "airlock.db"


@dataclass(frozen=True)
class RunSummary:
    id: str
    verb: str
    started_at: str
    targets: list[str]
    verdict: str
    counts: dict[str, int]


class Store:
    """A results database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open results database {self.path}: {e}") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.conn:
                yield self.conn
        except sqlite3.Error as e:
            raise StoreError(f"results database {self.path}: {e}") from None

    def save_scan(self, result: ScanResult) -> str:
        """Store a scan and return its run id (also set on ``result.run_id``)."""
        run_id = result.run_id or uuid.uuid4().hex[:12]
        result.run_id = run_id
        data = result.to_dict()
        with self._tx() as c:
            c.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    "scan",
                    result.started_at,
                    result.duration_s,
                    json.dumps(result.targets),
                    result.verdict,
                    result.exit_code,
                    json.dumps(result.counts()),
                    json.dumps(data, default=str),
                ),
            )
            c.executemany(
                "INSERT INTO findings VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        f.rule_id,
                        str(f.severity),
                        f.title,
                        f.path,
                        f.location,
                        f.line,
                        f.evidence,
                    )
                    for f in result.findings
                ],
            )
            c.executemany(
                "INSERT INTO files VALUES (?,?,?,?,?)",
                [(run_id, f.path, f.size, f.sha256, f.format) for f in result.files],
            )
        return run_id

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """The most recent runs, newest first."""
        rows = self.conn.execute(
            "SELECT id, verb, started_at, targets, verdict, counts FROM runs "
            "ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunSummary(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5])) for r in rows
        ]

    def load_scan(self, run_id: str) -> ScanResult:
        """Load a stored scan; a unique prefix of the id is enough.

        Raises:
            KeyError: no run (or more than one) matches.
        """
        rows = self.conn.execute(
            "SELECT result FROM runs WHERE id LIKE ? AND verb = 'scan'", (run_id + "%",)
        ).fetchall()
        if len(rows) != 1:
            raise KeyError(run_id)
        data: dict[str, Any] = json.loads(rows[0][0])
        return ScanResult.from_dict(data)

    def seen_hash(self, sha256: str) -> list[tuple[str, str, str]]:
        """Earlier runs that saw a file with this hash: (run id, path, verdict of the run)."""
        rows = self.conn.execute(
            "SELECT f.run_id, f.path, r.verdict FROM files f JOIN runs r ON r.id = f.run_id "
            "WHERE f.sha256 = ? ORDER BY r.started_at DESC",
            (sha256,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

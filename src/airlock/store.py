"""The results database: the history of runs and their findings.

SQLite by default (one file, WAL mode); PostgreSQL when given a ``postgresql://`` URL
(needs the ``airlock[postgres]`` extra). Location: ``--db PATH|URL`` or ``$AIRLOCK_DB``,
else ``$XDG_DATA_HOME/airlock/airlock.db`` (``~/.local/share/airlock/airlock.db``).
The whole result is stored as JSON beside queryable rows, so any report can be
rendered again from the database later (``airlock report RUN_ID --format sarif``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlock.scan.result import ScanResult

if TYPE_CHECKING:
    from airlock.probes.result import CampaignResult

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
CREATE TABLE IF NOT EXISTS campaigns (
    run_id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_hash ON campaigns(config_hash);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    target TEXT NOT NULL,
    probe_id TEXT NOT NULL,
    family TEXT NOT NULL,
    lang TEXT NOT NULL,
    generation INTEGER NOT NULL,
    hit INTEGER,
    error TEXT,
    latency_s REAL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS response_cache (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

CAMPAIGN_RUNNING, CAMPAIGN_STOPPED, CAMPAIGN_COMPLETE = "running", "stopped", "complete"


class StoreError(RuntimeError):
    """The database cannot be opened or written."""


PG_SCHEMES = ("postgresql://", "postgres://")


def default_db_path() -> str:
    env = os.environ.get("AIRLOCK_DB")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "airlock" / "airlock.db")


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

    def __init__(self, target: str | Path | None = None) -> None:
        where = str(target) if target is not None else default_db_path()
        self.where = where
        self.postgres = where.startswith(PG_SCHEMES)
        try:
            self.conn: Any = _connect_pg(where) if self.postgres else _connect_sqlite(where)
            with self._tx() as c:
                for stmt in filter(str.strip, SCHEMA.split(";")):
                    c.execute(stmt)
        except StoreError:
            raise
        except Exception as e:  # sqlite3.Error, OSError, psycopg.Error
            raise StoreError(f"cannot open results database {safe_where(where)}: {e}") from None

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        try:
            if self.postgres:  # psycopg's `with conn` would close the connection
                with self.conn.transaction():
                    yield self.conn
            else:
                with self.conn:
                    yield self.conn
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"results database {safe_where(self.where)}: {e}") from None

    def save_scan(self, result: ScanResult) -> str:
        """Store a scan and return its run id (also set on ``result.run_id``)."""
        run_id = result.run_id or uuid.uuid4().hex[:12]
        result.run_id = run_id
        data = result.to_dict()
        with self._tx() as c:
            c.execute(
                self._q("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)"),
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
            _many(
                c,
                self._q("INSERT INTO findings VALUES (?,?,?,?,?,?,?,?)"),
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
            _many(
                c,
                self._q("INSERT INTO files VALUES (?,?,?,?,?)"),
                [(run_id, f.path, f.size, f.sha256, f.format) for f in result.files],
            )
        return run_id

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """The most recent runs, newest first."""
        rows = self._fetch(
            "SELECT id, verb, started_at, targets, verdict, counts FROM runs "
            "ORDER BY started_at DESC, id LIMIT ?",
            (limit,),
        )
        return [
            RunSummary(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5])) for r in rows
        ]

    def load_scan(self, run_id: str) -> ScanResult:
        """Load a stored scan; a unique prefix of the id is enough.

        Raises:
            KeyError: no run (or more than one) matches, or the id is empty.
        """
        if not run_id:
            raise KeyError(run_id)
        rows = self._fetch(
            "SELECT result FROM runs WHERE substr(id, 1, ?) = ? AND verb = 'scan'",
            (len(run_id), run_id),
        )
        if len(rows) != 1:
            raise KeyError(run_id)
        data: dict[str, Any] = json.loads(rows[0][0])
        return ScanResult.from_dict(data)

    def seen_hash(self, sha256: str) -> list[tuple[str, str, str]]:
        """Earlier runs that saw a file with this hash: (run id, path, verdict of the run)."""
        rows = self._fetch(
            "SELECT f.run_id, f.path, r.verdict FROM files f JOIN runs r ON r.id = f.run_id "
            "WHERE f.sha256 = ? ORDER BY r.started_at DESC",
            (sha256,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # --- probe campaigns -------------------------------------------------------------

    def start_campaign(
        self,
        run_id: str,
        config_hash: str,
        config: dict[str, Any],
        started_at: str,
        targets: list[str],
    ) -> None:
        """Record a campaign as running (a new one, or one being resumed)."""
        with self._tx() as c:
            c.execute(
                self._q(
                    "INSERT INTO campaigns VALUES (?,?,?,?,?) ON CONFLICT (run_id) "
                    "DO UPDATE SET status = excluded.status"
                ),
                (run_id, config_hash, json.dumps(config), CAMPAIGN_RUNNING, started_at),
            )
            c.execute(
                self._q(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) "
                    "DO UPDATE SET verdict = excluded.verdict"
                ),
                (run_id, "probe", started_at, 0.0, json.dumps(targets), "RUNNING", 0, "{}", "{}"),
            )

    def resumable(self, config_hash: str) -> str | None:
        """The newest unfinished campaign with this configuration, if any."""
        rows = self._fetch(
            "SELECT run_id FROM campaigns WHERE config_hash = ? AND status <> ? "
            "ORDER BY started_at DESC, run_id LIMIT 1",
            (config_hash, CAMPAIGN_COMPLETE),
        )
        return str(rows[0][0]) if rows else None

    def campaign(self, run_id: str) -> tuple[str, dict[str, Any], str, str]:
        """(run id, configuration, status, started_at) of a campaign; an id prefix is enough.

        Raises:
            KeyError: no campaign (or more than one) matches.
        """
        rows = (
            self._fetch(
                "SELECT run_id, config, status, started_at FROM campaigns "
                "WHERE substr(run_id, 1, ?) = ?",
                (len(run_id), run_id),
            )
            if run_id
            else []
        )
        if len(rows) != 1:
            raise KeyError(run_id)
        r = rows[0]
        return str(r[0]), json.loads(r[1]), str(r[2]), str(r[3])

    def judged_attempts(self, run_id: str) -> dict[str, bool]:
        """Attempt key → hit, for the attempts of a run that got an answer."""
        rows = self._fetch(
            "SELECT key, hit FROM attempts WHERE run_id = ? AND error IS NULL", (run_id,)
        )
        return {str(k): bool(h) for k, h in rows}

    def write_attempts(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert or replace attempts: (run_id, key, target, probe_id, family, lang,
        generation, hit, error, latency_s, data json)."""
        sql = (
            "INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, key) "
            "DO UPDATE SET hit = excluded.hit, error = excluded.error, "
            "latency_s = excluded.latency_s, data = excluded.data"
        )
        with self._tx() as c:
            _many(c, self._q(sql), rows)

    def cached(self, key: str) -> dict[str, Any] | None:
        """A cached response (text, reasoning, token counts) for a request key."""
        rows = self._fetch("SELECT data FROM response_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def cache_responses(self, rows: list[tuple[str, str, str]]) -> None:
        """Store responses: (request key, data json, created_at)."""
        sql = "INSERT INTO response_cache VALUES (?,?,?) ON CONFLICT (key) DO NOTHING"
        with self._tx() as c:
            _many(c, self._q(sql), rows)

    def iter_attempts(self, run_id: str, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every attempt of a run as a dict, streamed (memory does not grow with the run)."""
        offset = 0
        while True:
            rows = self._fetch(
                "SELECT data FROM attempts WHERE run_id = ? ORDER BY probe_id, target, "
                "generation, key LIMIT ? OFFSET ?",
                (run_id, batch, offset),
            )
            for (data,) in rows:
                yield json.loads(data)
            if len(rows) < batch:
                return
            offset += batch

    def finish_campaign(self, result: CampaignResult) -> None:
        """Store a campaign's result (complete or stopped) on its run row."""
        status = CAMPAIGN_COMPLETE if result.complete else CAMPAIGN_STOPPED
        verdict = result.verdict if result.complete else "STOPPED"
        counts = {
            "attempts": result.totals.get("attempts", 0),
            "hits": result.totals.get("hits", 0),
            "failed_probes": sum(p.failed for p in result.probes),
        }
        with self._tx() as c:
            c.execute(
                self._q(
                    "UPDATE runs SET duration_s = ?, verdict = ?, exit_code = ?, counts = ?, "
                    "result = ? WHERE id = ?"
                ),
                (
                    result.duration_s,
                    verdict,
                    result.exit_code,
                    json.dumps(counts),
                    json.dumps(result.to_dict(), default=str),
                    result.run_id,
                ),
            )
            c.execute(
                self._q("UPDATE campaigns SET status = ? WHERE run_id = ?"),
                (status, result.run_id),
            )

    def load_campaign(self, run_id: str) -> CampaignResult:
        """Load a stored campaign result; a unique prefix of the id is enough.

        Raises:
            KeyError: no finished or stopped campaign (or more than one) matches.
        """
        from airlock.probes.result import CampaignResult

        rows = (
            self._fetch(
                "SELECT result FROM runs WHERE substr(id, 1, ?) = ? AND verb = 'probe' "
                "AND verdict <> 'RUNNING'",
                (len(run_id), run_id),
            )
            if run_id
            else []
        )
        if len(rows) != 1:
            raise KeyError(run_id)
        return CampaignResult.from_dict(json.loads(rows[0][0]))

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._tx() as c:
            return list(c.execute(self._q(sql), params).fetchall())


def _connect_sqlite(where: str) -> sqlite3.Connection:
    path = Path(where.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    wal(conn)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def wal(conn: sqlite3.Connection, patience_s: float = 10.0) -> None:
    """Switch a SQLite connection to WAL mode. Two processes opening a new file at once
    can find it locked: SQLite's busy timeout does not cover this switch, so retry."""
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _connect_pg(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a postgresql:// database needs psycopg: pip install 'airlock[postgres]'"
        ) from None
    return psycopg.connect(url, connect_timeout=10)


def _many(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if hasattr(conn, "executemany"):
        conn.executemany(sql, rows)
    else:  # psycopg connections batch through a cursor
        with conn.cursor() as cur:
            cur.executemany(sql, rows)


def safe_where(where: str) -> str:
    """A database location fit to print: no password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", where)

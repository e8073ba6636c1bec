"""The audit log's connection: SQLite (WAL) or PostgreSQL, the schema, and the two kinds of
transaction it needs (an exclusive append, a consistent read)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airlock.store import PG_SCHEMES, safe_where, wal

# Table names start with audit_ so the log can share a file with the results database.
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq {int} PRIMARY KEY,
    time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT,
    client TEXT,
    path TEXT,
    model TEXT,
    upstream TEXT,
    status {int} NOT NULL,
    decision TEXT NOT NULL,
    latency_ms {real} NOT NULL,
    prompt_tokens {int},
    completion_tokens {int},
    stream {int} NOT NULL,
    verdicts TEXT NOT NULL,
    blocked_by TEXT,
    error TEXT,
    content_policy TEXT NOT NULL,
    prompt TEXT,
    response TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE TABLE IF NOT EXISTS audit_head (
    id {int} PRIMARY KEY CHECK (id = 1),
    seq {int} NOT NULL,
    hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""

# One lock per schema: appenders in every process serialise on it, so seq and
# prev_hash are read and written by one of them at a time.
_PG_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('airlock.audit:' || coalesce(current_schema(), '')))"
)


class AuditError(RuntimeError):
    """The audit log cannot be opened, read or written."""


class AuditDb:
    """One connection to the audit tables; use it from a single thread."""

    def __init__(self, where: str, *, create: bool) -> None:
        self.where = where
        self.postgres = where.startswith(PG_SCHEMES)
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
        try:
            self.conn: Any = self._connect_pg() if self.postgres else self._connect_sqlite(create)
        except AuditError:
            raise
        except self._errors as e:
            raise AuditError(f"cannot open the audit log {safe_where(where)}: {e}") from None
        if create:
            self._create()
        elif not self.has_table("audit_log"):
            raise AuditError(f"no audit log in {safe_where(where)} (nothing was written yet)")

    def _create(self) -> None:
        types = ("BIGINT", "DOUBLE PRECISION") if self.postgres else ("INTEGER", "REAL")
        schema = SCHEMA.format(int=types[0], real=types[1])
        with self.write() as c:
            for stmt in schema.split(";"):
                c.execute(stmt)

    def has_table(self, name: str) -> bool:
        """Whether the table exists (readers need not have the right to create it)."""
        if self.postgres:
            rows = self.fetch("SELECT to_regclass(?) IS NOT NULL", (name,))
        else:
            rows = self.fetch(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        return bool(rows[0][0])

    def _connect_sqlite(self, create: bool) -> sqlite3.Connection:
        path = Path(self.where.removeprefix("sqlite:///"))
        if not create and not path.is_file():
            raise AuditError(f"no audit log at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE to append).
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        wal(conn)
        return conn

    def _connect_pg(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise AuditError(
                "a postgresql:// audit log needs psycopg: pip install 'airlock[postgres]'"
            ) from None
        self._errors = (sqlite3.Error, OSError, psycopg.Error)
        # autocommit: every transaction is an explicit conn.transaction() block.
        return psycopg.connect(self.where, connect_timeout=10, autocommit=True)

    def q(self, sql: str) -> str:
        """SQL with ``?`` placeholders in this database's style."""
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def write(self) -> Iterator[Any]:
        """An exclusive transaction: one appender at a time, across processes."""
        with self._wrap():
            if self.postgres:
                with self.conn.transaction():
                    self.conn.execute(_PG_LOCK)
                    yield self.conn
            else:
                with self._sqlite_tx("BEGIN IMMEDIATE"):
                    yield self.conn

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A read transaction that sees one consistent snapshot of the log."""
        with self._wrap():
            if self.postgres:
                with self.conn.transaction():
                    self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield self.conn
            else:
                with self._sqlite_tx("BEGIN"):
                    yield self.conn

    def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one query, outside any explicit transaction."""
        with self._wrap():
            return list(self.conn.execute(self.q(sql), params).fetchall())

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.postgres:  # psycopg batches through a cursor
            with self.conn.cursor() as cur:
                cur.executemany(self.q(sql), rows)
        else:
            self.conn.executemany(sql, rows)

    def close(self) -> None:
        with contextlib.suppress(*self._errors):  # a broken connection: nothing to save
            self.conn.close()

    @contextmanager
    def _sqlite_tx(self, begin: str) -> Iterator[None]:
        self.conn.execute(begin)
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # also when COMMIT itself failed
                self.conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _wrap(self) -> Iterator[None]:
        try:
            yield
        except self._errors as e:
            raise AuditError(f"audit log {safe_where(self.where)}: {e}") from None

"""Client keys for the gateway: created once, stored hashed, compared in constant time.

A key reads ``alk-<id>-<secret>``. Only the id, a SHA-256 of the secret and the key's
grants (allowed models, requests and tokens per minute) are stored; the secret is shown
once, at creation. Lookups are cached for a few seconds, so a revocation takes effect
within :data:`CACHE_S` without a database query on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from airlock.store import PG_SCHEMES, StoreError, _connect_pg, _connect_sqlite, safe_where

CACHE_S = 5.0
# What a presented key may look like before it costs a lookup or a cache entry: ids are
# 8 hex digits and secrets 32 URL-safe characters today; a little room either way.
KEY_FORMAT = re.compile(r"alk-([0-9a-f]{4,32})-([A-Za-z0-9_-]{16,128})")
SCHEMA = """
CREATE TABLE IF NOT EXISTS gate_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    models TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


@dataclass(frozen=True)
class ClientKey:
    id: str
    name: str
    models: tuple[str, ...]  # empty: every model
    rpm: int | None
    tpm: int | None
    created_at: str
    revoked_at: str | None = None

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Client keys in the gate's database (SQLite file or PostgreSQL URL)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.postgres = where.startswith(PG_SCHEMES)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, tuple[ClientKey, str] | None]] = {}
        try:
            self.conn: Any = _connect_pg(where) if self.postgres else _connect_sqlite(where)
            self._exec(SCHEMA)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot open key database {safe_where(where)}: {e}") from None

    def close(self) -> None:
        self.conn.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        sql = sql.replace("?", "%s") if self.postgres else sql
        with self._lock:
            try:
                cur = self.conn.execute(sql, params)
                rows = list(cur.fetchall()) if cur.description else []
                self.conn.commit()
                return rows
            except Exception as e:
                self.conn.rollback()
                raise StoreError(f"key database {safe_where(self.where)}: {e}") from None

    def create(
        self,
        name: str,
        models: tuple[str, ...] = (),
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[ClientKey, str]:
        """Create a key; returns it and the full key text (shown once, never stored)."""
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._exec(
            "INSERT INTO gate_keys VALUES (?,?,?,?,?,?,?,NULL)",
            (key_id, name, _hash(secret), json.dumps(list(models)), rpm, tpm, now),
        )
        return ClientKey(key_id, name, models, rpm, tpm, now), f"alk-{key_id}-{secret}"

    def list(self) -> list[ClientKey]:
        rows = self._exec(
            "SELECT id, name, models, rpm, tpm, created_at, revoked_at "
            "FROM gate_keys ORDER BY created_at, id"
        )
        return [
            ClientKey(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], r[6]) for r in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no active key has that id."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rows = self._exec(
            "UPDATE gate_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
            (now, key_id),
        )
        self._cache.pop(key_id, None)
        return bool(rows)

    def check(self, presented: str) -> ClientKey | None:
        """The active key ``presented`` is, or None (unknown, malformed, wrong or revoked)."""
        form = KEY_FORMAT.fullmatch(presented)
        if form is None:  # malformed: no database query, no cache entry
            return None
        key_id, secret = form.groups()
        entry = self._lookup(key_id)
        if entry is None:
            hmac.compare_digest(_hash(secret), _hash(""))  # same work either way
            return None
        key, digest = entry
        return key if hmac.compare_digest(_hash(secret), digest) else None

    def _lookup(self, key_id: str) -> tuple[ClientKey, str] | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        rows = self._exec(
            "SELECT id, name, models, rpm, tpm, created_at, revoked_at, "
            "secret_sha256 FROM gate_keys WHERE id = ? AND revoked_at IS NULL",
            (key_id,),
        )
        entry = None
        if rows:
            r = rows[0]
            entry = (ClientKey(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]), r[7])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now, entry)
        return entry


@dataclass
class _Window:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0


class RateLimiter:
    """Per-key requests and tokens per minute over a sliding 60 s window (one process)."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def admit(self, key: ClientKey, now: float | None = None) -> float:
        """0 when the request may go; else the seconds to wait (for Retry-After)."""
        t = time.monotonic() if now is None else now
        w = self._windows.setdefault(key.id, _Window())
        self._expire(w, t)
        if key.rpm is not None and len(w.requests) >= key.rpm:
            return max(0.001, w.requests[0] + 60 - t)
        if key.tpm is not None and w.token_sum >= key.tpm:
            return max(0.001, w.tokens[0][0] + 60 - t)
        w.requests.append(t)
        return 0.0

    def spend(self, key: ClientKey, tokens: int, now: float | None = None) -> None:
        """Count tokens a finished request used against the key's per-minute budget."""
        if key.tpm is None or tokens <= 0:
            return
        w = self._windows.setdefault(key.id, _Window())
        w.tokens.append((time.monotonic() if now is None else now, tokens))
        w.token_sum += tokens

    @staticmethod
    def _expire(w: _Window, t: float) -> None:
        while w.requests and w.requests[0] <= t - 60:
            w.requests.popleft()
        while w.tokens and w.tokens[0][0] <= t - 60:
            w.token_sum -= w.tokens.popleft()[1]

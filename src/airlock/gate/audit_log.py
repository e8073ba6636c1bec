"""The audit log itself: append records to the chain, read them back, verify, export."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from airlock.gate.audit_db import AuditDb
from airlock.gate.audit_record import (
    FIELDS,
    GENESIS,
    AuditEntry,
    AuditRecord,
    Head,
    Values,
    iso_utc,
    record_from_values,
    row_hash,
    stored_values,
    utc_now,
)
from airlock.gate.audit_verify import ChainChecker, VerifyResult

EXPORT_FORMATS = ("jsonl", "csv")
# Built from constant column names only; values always go through placeholders.
_COLUMNS = ", ".join(FIELDS)
_SELECT = f"SELECT seq, prev_hash, hash, {_COLUMNS} FROM audit_log"  # noqa: S608
_INSERT = (
    f"INSERT INTO audit_log (seq, prev_hash, hash, {_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(FIELDS) + 3))})"
)
_SET_HEAD = (
    "INSERT INTO audit_head (id, seq, hash, updated_at) VALUES (1, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
    "updated_at = excluded.updated_at"
)


class AuditLog:
    """The gateway's audit log in SQLite (default) or PostgreSQL (a ``postgresql://`` URL).

    Each row links to the one before by a hash; :meth:`append` keeps that chain intact
    even with several writers (threads or processes) on one database. One instance is
    one connection: use it from one thread (:class:`AuditWriter` does that for you).

    Args:
        where: a SQLite path or PostgreSQL URL; default the results database
            (``airlock.store.default_db_path()``), which the log can share.
        create: create the tables if missing; with ``False`` a missing log is an error.

    Raises:
        AuditError: the database cannot be opened.
    """

    def __init__(self, where: str | Path | None = None, *, create: bool = True) -> None:
        if where is None:
            from airlock.store import default_db_path

            where = default_db_path()
        self.db = AuditDb(str(where), create=create)
        self.where = self.db.where

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def append(self, records: Sequence[AuditRecord]) -> Head:
        """Append records in one transaction; returns the new head."""
        return self.append_values([stored_values(r) for r in records])

    def append_values(self, rows: Sequence[Values]) -> Head:
        """Append rows already made by :func:`stored_values` (what the writer thread does)."""
        with self.db.write() as c:
            last = c.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            head = Head(int(last[0]), str(last[1])) if last else Head(0, GENESIS)
            out: list[tuple[Any, ...]] = []
            for values in rows:
                seq = head.seq + 1
                digest = row_hash(seq, head.hash, values)
                out.append((seq, head.hash, digest, *values))
                head = Head(seq, digest)
            if out:
                self.db.executemany(_INSERT, out)
                c.execute(self.db.q(_SET_HEAD), (head.seq, head.hash, utc_now()))
        return head

    def head(self) -> Head:
        """The newest row's seq and hash (``0:000…`` when the log is empty)."""
        rows = self.db.fetch("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return Head(int(rows[0][0]), str(rows[0][1])) if rows else Head(0, GENESIS)

    def count(self) -> int:
        return int(self.db.fetch("SELECT count(*) FROM audit_log")[0][0])

    def entries(
        self,
        *,
        after_seq: int = 0,
        since: str | None = None,
        until: str | None = None,
        batch: int = 500,
    ) -> Iterator[AuditEntry]:
        """Rows in seq order, streamed in batches; ``since`` (inclusive) and ``until``
        (exclusive) are ISO 8601 dates or times.

        Raises:
            ValueError: ``since`` or ``until`` is not a date or time.
        """
        for row in self._rows(after_seq, since, until, batch):
            yield _entry(row)

    def _rows(
        self, after_seq: int, since: str | None, until: str | None, batch: int = 500
    ) -> Iterator[Sequence[Any]]:
        where, params = "seq > ?", []
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                where += f" AND time {op} ?"
                params.append(iso_utc(bound))
        sql = f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ?"
        while True:
            rows = self.db.fetch(sql, (after_seq, *params, batch))
            yield from rows
            if len(rows) < batch:
                return
            after_seq = int(rows[-1][0])

    def tail(self, n: int = 20) -> list[AuditEntry]:
        """The newest ``n`` rows, oldest first."""
        rows = self.db.fetch(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (max(n, 0),))
        return [_entry(r) for r in reversed(rows)]

    def follow(
        self, after_seq: int, poll_s: float = 0.5, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[AuditEntry]:
        """New rows as they are written, polling every ``poll_s`` until ``stop()``."""
        while not stop():
            for entry in self.entries(after_seq=after_seq):
                after_seq = entry.seq
                yield entry
            time.sleep(poll_s)

    def export(
        self,
        stream: TextIO,
        fmt: str = "jsonl",
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        """Write rows to ``stream`` as JSON lines or CSV (stored values, a header row);
        returns how many. Memory stays flat whatever the size of the log.

        Raises:
            ValueError: unknown format, or ``since``/``until`` is not a date or time.
        """
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
        since, until = (iso_utc(t) if t is not None else None for t in (since, until))
        n = 0
        writer = csv.writer(stream) if fmt == "csv" else None
        if writer:
            writer.writerow(["seq", *FIELDS, "prev_hash", "hash"])
        for row in self._rows(0, since, until):
            if writer:  # the stored values as they are, hash inputs included
                writer.writerow([row[0], *row[3:], row[1], row[2]])
            else:
                stream.write(json.dumps(_entry(row).to_dict(), ensure_ascii=False) + "\n")
            n += 1
        return n

    def verify(self, expect_head: Head | None = None, batch: int = 1000) -> VerifyResult:
        """Walk the whole chain in one consistent snapshot and report where it breaks.

        Args:
            expect_head: a head written down earlier (``airlock audit head``); the log must
                still contain that row with that hash, which detects a shortened log and
                a chain rebuilt from scratch.
            batch: rows per query (memory stays flat).
        """
        checker = ChainChecker(expect_head)
        has_head = self.db.has_table("audit_head")
        with self.db.read() as c:
            after = -(2**62)  # rows with a seq below 1 are tampering too: include them
            sql = self.db.q(f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?")
            while rows := c.execute(sql, (after, batch)).fetchall():
                for r in rows:
                    checker.feed(int(r[0]), r[1], r[2], tuple(r[3:]))
                after = int(rows[-1][0])
            recorded = None
            if has_head:
                got = c.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                recorded = Head(int(got[0]), str(got[1])) if got else None
        return checker.finish(recorded, has_head)


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(int(row[0]), str(row[1]), str(row[2]), record_from_values(tuple(row[3:])))

"""Writing audit rows off the event loop: a thread owns the connection and commits in
batches, so a request never waits for the database and the chain keeps one order."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Final

from airlock.gate.audit_db import AuditError
from airlock.gate.audit_log import AuditLog
from airlock.gate.audit_record import AuditRecord, Values, stored_values
from airlock.store import safe_where

_STOP: Final = "stop"
_FLUSH: Final = "flush"


class AuditWriter:
    """Append :class:`AuditRecord`s from any thread or event loop without waiting for the
    database; a background thread appends them to the chain in batches.

    Rows are never dropped: when the queue is full, :meth:`submit` waits (up to
    ``put_timeout_s``) for the writer to catch up; when the database fails, the batch is
    retried with backoff until it is written or :meth:`close` gives up.

    Args:
        where: a SQLite path or PostgreSQL URL (default: the results database).
        batch_rows: commit at most this many rows at once.
        batch_s: wait at most this long for more rows before committing.
        max_queue: records waiting to be written before :meth:`submit` blocks.
        put_timeout_s: how long :meth:`submit` may block on a full queue.

    Call :meth:`start` (or use it as a context manager) in the process that serves:
    threads do not survive a fork. Several writers, in one process or many, may share a
    database; SQLite's write lock is not fair, so one flooding writer can hold another
    back for a while; batching (few, larger commits) makes that rare at request rates.
    """

    def __init__(
        self,
        where: str | Path | None = None,
        *,
        batch_rows: int = 500,
        batch_s: float = 0.05,
        max_queue: int = 10_000,
        put_timeout_s: float = 5.0,
    ) -> None:
        self.batch_rows, self.batch_s, self.put_timeout_s = batch_rows, batch_s, put_timeout_s
        self.error: str | None = None  # the last write error, None once writes succeed
        self._where = where
        self._queue: queue.Queue[Values | str] = queue.Queue(max_queue)
        self._done = threading.Condition()
        self._submitted = self._written = 0
        self._closed = False
        self._abandon = threading.Event()
        self._ready = threading.Event()
        self._open_error: AuditError | None = None
        self._thread = threading.Thread(target=self._run, name="airlock-audit", daemon=True)

    def start(self) -> AuditWriter:
        """Open the database and start the writer thread (once; later calls do nothing).

        Raises:
            AuditError: the database cannot be opened.
        """
        if not self._ready.is_set():
            self._thread.start()
            self._ready.wait()
        if self._open_error is not None:
            raise self._open_error
        return self

    @property
    def written(self) -> int:
        """Rows committed so far."""
        return self._written

    @property
    def pending(self) -> int:
        """Rows submitted but not yet committed."""
        return self._submitted - self._written

    def submit(self, record: AuditRecord) -> None:
        """Queue a record (a snapshot of it is taken now; later changes do not count).

        Raises:
            AuditError: the writer is closed, or the queue stayed full for
                ``put_timeout_s`` (the database is not keeping up).
            ValueError: the record has an unknown decision or content policy.
        """
        if self._closed or not self._thread.is_alive():
            raise AuditError("the audit writer is not running (start() it; or it was closed)")
        values = stored_values(record)
        with self._done:
            self._submitted += 1
        try:
            self._queue.put(values, timeout=self.put_timeout_s)
        except queue.Full:
            with self._done:
                self._submitted -= 1
            raise AuditError(
                f"audit queue full for {self.put_timeout_s:g} s: the database is not "
                f"keeping up ({self.error or 'no error reported'})"
            ) from None

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record submitted so far is committed.

        Raises:
            AuditError: not done within ``timeout`` seconds.
        """
        with self._done:
            target = self._submitted
        try:
            if self._thread.is_alive():
                self._queue.put(_FLUSH, timeout=timeout)
        except queue.Full:
            pass  # the wait below times out and says why
        with self._done:
            if not self._done.wait_for(lambda: self._written >= target, timeout):
                raise AuditError(f"audit rows not written after {timeout:g} s: {self.error}")

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (graceful shutdown).

        Raises:
            AuditError: rows could not be written within ``timeout`` seconds; they are lost.
        """
        if self._closed or not self._thread.is_alive():
            self._closed = True
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self._abandon.set()
        self._thread.join(max(deadline - time.monotonic(), 0))
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(5)
        if self.pending:
            raise AuditError(f"{self.pending} audit rows were not written: {self.error}")

    def __enter__(self) -> AuditWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            log: AuditLog | None = AuditLog(self._where)
        except AuditError as e:
            self._open_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._abandon.is_set():
                batch, stop = self._collect()
                if batch:
                    log = self._write(log, batch)
                if stop:
                    return
        finally:
            if log is not None:
                log.close()

    def _collect(self) -> tuple[list[Values], bool]:
        """Up to ``batch_rows`` records, waiting at most ``batch_s`` after the first."""
        batch: list[Values] = []
        item = self._queue.get()
        deadline = time.monotonic() + self.batch_s
        while True:
            if isinstance(item, str):  # _STOP or _FLUSH: commit what we have now
                return batch, item == _STOP
            batch.append(item)
            if len(batch) >= self.batch_rows:
                return batch, False
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                return batch, False

    def _write(self, log: AuditLog | None, batch: list[Values]) -> AuditLog | None:
        """Append one batch, retrying with backoff (and a new connection) until it is
        written or the writer is abandoned; returns the connection to go on with."""
        delay = 0.05
        while True:
            try:
                if log is None:
                    log = AuditLog(self._where)
                log.append_values(batch)
            except Exception as e:  # AuditError; anything else is a bug, but keep the rows
                self.error = str(e) if isinstance(e, AuditError) else f"{type(e).__name__}: {e}"
                if log is not None:
                    log.close()
                log = None  # a broken connection is not reused
                if self._abandon.wait(delay):
                    return None
                delay = min(delay * 2, 2.0)
                continue
            with self._done:
                self._written += len(batch)
                self.error = None
                self._done.notify_all()
            return log

    def __repr__(self) -> str:
        where = safe_where(str(self._where)) if self._where else "default"
        return f"AuditWriter({where}, written={self._written}, pending={self.pending})"

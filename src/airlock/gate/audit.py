"""The gateway's audit log: one row per request, in a hash chain that shows tampering.

Every request the gateway sees becomes one :class:`AuditRecord` (allowed, blocked,
rejected, upstream failed or client gone), which an :class:`AuditWriter` appends from
a background thread. Rows live in SQLite (WAL; by default in the results database,
tables ``audit_log`` and ``audit_head``) or in PostgreSQL given a ``postgresql://`` URL.

Each row stores ``seq``, ``prev_hash`` and ``hash = sha256(prev_hash || canonical JSON of
the row)``; :meth:`AuditLog.verify` finds edited, deleted, reordered and inserted rows.
Appends take an exclusive lock (``BEGIN IMMEDIATE`` on SQLite, a transaction-level
advisory lock on PostgreSQL), so several threads or gateway processes keep one chain.

The chain alone cannot show that the newest rows were removed. The ``audit_head`` table,
updated in the same transaction as each append, catches careless truncation but not
someone who rewrites it too; for that, write :meth:`AuditLog.head` down somewhere the
database's writers cannot reach (a log, a ticket) and pass it to ``verify(expect_head=)``.

    with AuditWriter("audit.db") as writer:           # in the gateway
        writer.submit(AuditRecord(model="qwen", status=200, decision="allowed"))
    with AuditLog("audit.db") as log:                 # later, anywhere
        assert log.verify().ok
"""

from airlock.gate.audit_db import AuditError
from airlock.gate.audit_log import EXPORT_FORMATS, AuditLog
from airlock.gate.audit_record import (
    CONTENT_POLICIES,
    DECISIONS,
    AuditEntry,
    AuditRecord,
    Head,
    stored_content,
    utc_now,
)
from airlock.gate.audit_verify import Problem, VerifyResult
from airlock.gate.audit_writer import AuditWriter

__all__ = [
    "CONTENT_POLICIES",
    "DECISIONS",
    "EXPORT_FORMATS",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "AuditWriter",
    "Head",
    "Problem",
    "VerifyResult",
    "stored_content",
    "utc_now",
]

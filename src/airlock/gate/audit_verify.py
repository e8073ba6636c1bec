"""Checking the audit chain: walk the rows in seq order and say where the chain breaks.

What each kind of tampering looks like:

- a row's contents edited: its hash no longer matches (``edited``);
- a row deleted: a gap in seq (``missing``);
- rows reordered, replaced or inserted: a row's ``prev_hash`` is not the hash of the row
  before it (``broken-link``), and its own hash fails when its seq changed;
- rows removed from the end: invisible to the chain itself; caught by the ``audit_head``
  table (``truncated``), unless that was rewritten too, and by a head the user wrote
  down elsewhere (``expect_head``), which no edit of the database can reach.

Without a secret, anyone who can write the database can also rebuild a consistent chain
from scratch; a head anchored outside the database is what detects that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.gate.audit_record import GENESIS, Head, Values, row_hash

MAX_LISTED = 100  # problems kept for display; the count goes on


@dataclass(frozen=True)
class Problem:
    """One break in the chain, at ``seq``."""

    seq: int
    kind: str  # edited | missing | broken-link | out-of-order | truncated | head-mismatch
    message: str


@dataclass
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`: rows checked, the head, what broke."""

    rows: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS))
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def add(self, seq: int, kind: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(seq, kind, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head": str(self.head),
            "problem_count": self.problem_count,
            "problems": [vars(p) for p in self.problems],
        }


class ChainChecker:
    """Feed rows in seq order, then :meth:`finish` with the recorded and expected heads."""

    def __init__(self, expect_head: Head | None = None) -> None:
        self.result = VerifyResult()
        self._expect = expect_head
        self._expect_seen: str | None = GENESIS if expect_head and expect_head.seq == 0 else None

    def feed(self, seq: int, prev_hash: str, digest: str, values: Values) -> None:
        """Check one stored row against the row before it and against its own hash."""
        prev = self.result.head
        if seq > prev.seq + 1:
            gap = f"row {prev.seq + 1}" if seq == prev.seq + 2 else f"rows {prev.seq + 1}-{seq - 1}"
            self.result.add(seq, "missing", f"{gap} missing before seq {seq} (deleted?)")
        elif seq <= prev.seq:
            self.result.add(seq, "out-of-order", f"seq {seq} follows seq {prev.seq}")
        elif prev_hash != prev.hash:
            self.result.add(
                seq,
                "broken-link",
                f"seq {seq}: prev_hash is not the hash of seq {prev.seq} "
                "(rows replaced, reordered or inserted)",
            )
        if row_hash(seq, prev_hash, values) != digest:
            self.result.add(seq, "edited", f"seq {seq}: contents do not match its hash (edited)")
        if self._expect and seq == self._expect.seq:
            self._expect_seen = digest
        self.result.head = Head(seq, digest)
        self.result.rows += 1

    def finish(self, recorded: Head | None, has_head_table: bool = True) -> VerifyResult:
        """Compare the end of the chain with the ``audit_head`` row and the expected head."""
        end = self.result.head
        if self._expect:
            self._check_expected(self._expect, end)
        if not has_head_table:
            self.result.add(end.seq, "head-mismatch", "the audit_head table is missing")
        elif recorded is None:
            if end.seq:
                self.result.add(end.seq, "head-mismatch", "the audit_head row is missing")
        elif recorded.seq > end.seq:
            self.result.add(
                end.seq,
                "truncated",
                f"the log ends at seq {end.seq} but audit_head records seq {recorded.seq} "
                "(rows removed from the end)",
            )
        elif recorded.seq < end.seq:
            self.result.add(
                recorded.seq + 1,
                "head-mismatch",
                f"rows after seq {recorded.seq} are not recorded in audit_head "
                "(appended outside airlock?)",
            )
        elif recorded.hash != end.hash:
            self.result.add(end.seq, "head-mismatch", f"seq {end.seq}: audit_head hash differs")
        return self.result

    def _check_expected(self, expect: Head, end: Head) -> None:
        if expect.seq > end.seq:
            self.result.add(
                end.seq,
                "truncated",
                f"the log ends at seq {end.seq} but the expected head is seq {expect.seq} "
                "(rows removed from the end)",
            )
        elif self._expect_seen is None:
            self.result.add(expect.seq, "missing", f"the expected head seq {expect.seq} is missing")
        elif self._expect_seen != expect.hash:
            self.result.add(
                expect.seq,
                "head-mismatch",
                f"seq {expect.seq}: hash differs from the expected head (log rewritten)",
            )

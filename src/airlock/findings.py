"""The common currency of every verb: rules, severities and findings.

A :class:`Rule` is declared once, at import time of the module that emits it,
with a stable dotted id (``pickle.dangerous-global``), a default severity, a
title and a remediation text. A :class:`Finding` is one occurrence of a rule in
one place. Reports, exit codes and the database are written from findings only.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered severities; ``--fail-on`` compares against these."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a case-insensitive severity name.

        Raises:
            ValueError: if ``text`` names no severity.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Rule:
    """A documented check. ``id`` is stable; users key policy and SARIF on it."""

    id: str
    severity: Severity
    title: str
    remediation: str
    description: str = ""
    module: str = field(default="", compare=False)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]


_RULES: dict[str, Rule] = {}


def rule(
    rule_id: str,
    severity: Severity,
    title: str,
    remediation: str,
    description: str = "",
) -> Rule:
    """Declare (register) a rule. Declaring the same id twice with a different body fails.

    Raises:
        ValueError: if ``rule_id`` is already registered with different content.
    """
    module = sys._getframe(1).f_globals.get("__name__", "")
    new = Rule(rule_id, severity, title, remediation, description, module)
    old = _RULES.get(rule_id)
    if old is not None and old != new:
        raise ValueError(f"rule {rule_id!r} declared twice with different content")
    _RULES[rule_id] = new
    return new


def get_rule(rule_id: str) -> Rule:
    """Return a registered rule.

    Raises:
        KeyError: if no rule has that id.
    """
    return _RULES[rule_id]


def all_rules() -> list[Rule]:
    """Every registered rule, sorted by id (import the scanners first)."""
    return sorted(_RULES.values(), key=lambda r: r.id)


@dataclass(frozen=True)
class Finding:
    """One occurrence of a rule.

    Attributes:
        rule_id: id of a registered :class:`Rule`.
        severity: usually the rule's default; a scanner or policy may change it.
        title: one line a person reads first.
        path: path of the file, relative to the scan root, using ``/``. For a
            member of an archive: ``archive.zip!member/path``.
        location: where inside the file (``opcode 12 at byte 0x40``, ``key
            tokenizer.chat_template``), or ``None``.
        line: 1-based line for text files, or ``None``.
        evidence: the offending bytes/text, shortened, safe to print.
        remediation: what to do; defaults to the rule's text.
        extra: machine-readable details (JSON-serialisable).
    """

    rule_id: str
    severity: Severity
    title: str
    path: str
    location: str | None = None
    line: int | None = None
    evidence: str | None = None
    remediation: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": str(self.severity),
            "title": self.title,
            "path": self.path,
            "location": self.location,
            "line": self.line,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            rule_id=data["rule_id"],
            severity=Severity.parse(data["severity"]),
            title=data["title"],
            path=data["path"],
            location=data.get("location"),
            line=data.get("line"),
            evidence=data.get("evidence"),
            remediation=data.get("remediation", ""),
            extra=data.get("extra") or {},
        )


MAX_EVIDENCE = 240


def shorten(text: str, limit: int = MAX_EVIDENCE) -> str:
    """Make ``text`` safe and short for evidence: escape control chars, cut long text."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\t" or (32 <= code < 127) or (code >= 160 and not _is_format_char(ch)):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}")
        if len(out) > limit:
            break
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _is_format_char(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch) in {"Cf", "Cc", "Zl", "Zp", "Co", "Cs"}

"""How a stage's scanner results turn into verdicts and redacted text.

Shared by the whole-text checks (:mod:`airlock.guard.pipeline`) and the streaming
guard (:mod:`airlock.guard.stream`): every scanner of a stage reads the same text;
redaction hits that overlap are merged into one span, which gets one replacement.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from airlock.guard.base import GuardContext, Hit, Scanner, Verdict
from airlock.guard.vault import Vault, label_of

# Scanners whose redaction removes the text instead of replacing it with a marker.
REMOVES = frozenset({"unicode", "think"})
# Placeholder labels per scanner (pii uses its kinds: EMAIL, PHONE …).
LABELS = {"secrets": "SECRET", "exfil": "LINK", "leaks": "LEAK", "code": "CODE",
          "terms": "TERM", "injection": "INJECTION"}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One configured scanner: what it is, what to do when it fires, what comes back."""

    scanner: Scanner
    action: str
    restore_all: bool = False
    restore_kinds: frozenset[str] = frozenset()
    roles: frozenset[str] | None = None  # input only: message roles scanned (None: all)

    @property
    def name(self) -> str:
        return self.scanner.name

    def restorable(self, kind: str) -> bool:
        """Whether a redacted ``kind`` is put back in the answer."""
        return self.restore_all or kind in self.restore_kinds

    def label(self, kind: str) -> str:
        return LABELS.get(self.name) or label_of(kind if self.name == "pii" else self.name)


@dataclass
class Tally:
    """What one scanner found over a request (all messages, or all stream rounds)."""

    entry: Entry
    hits: list[Hit] = field(default_factory=list)
    latency_us: float = 0.0

    def verdict(self, stage: str) -> Verdict:
        action = self.entry.action if self.hits else "pass"
        return Verdict(self.entry.name, stage, action, list(self.hits), self.latency_us)


Found = list[tuple[Entry, list[Hit]]]


def scan_all(
    entries: Sequence[Entry], text: str, ctx: GuardContext | None, tallies: dict[str, Tally]
) -> Found:
    """Run every scanner on ``text``, adding each one's time to its tally."""
    found: Found = []
    for entry in entries:
        t0 = time.perf_counter_ns()
        hits = entry.scanner.scan(text, ctx)
        tallies[entry.name].latency_us += (time.perf_counter_ns() - t0) / 1000
        found.append((entry, hits))
    return found


@dataclass(frozen=True)
class Span:
    """A stretch of text to replace, and the hit that decides its replacement."""

    start: int
    end: int
    entry: Entry
    kind: str


def _rank(span: Span, stage: str) -> tuple[int, int]:
    """Which hit of an overlap names the replacement: a marker that is never restored
    beats a restorable placeholder, which beats plain removal; then the longer one."""
    if span.entry.name in REMOVES:
        tier = 2
    elif stage == "input" and span.entry.restorable(span.kind):
        tier = 1
    else:
        tier = 0
    return tier, span.start - span.end


def merge(spans: Iterable[Span], stage: str) -> list[Span]:
    """Overlapping spans merged; each merged span keeps its best-ranked hit's scanner."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue
        if out and span.start < out[-1].end:
            last = out[-1]
            best = min(last, span, key=lambda s: _rank(s, stage))
            out[-1] = Span(last.start, max(last.end, span.end), best.entry, best.kind)
        else:
            out.append(span)
    return out


def replacement(
    span: Span, value: str, stage: str, vault: Vault | None, restorable: bool = True
) -> str:
    """What replaces ``value``: nothing, a vault placeholder (input) or a marker (output).
    ``restorable=False`` keeps the value out of the answer whatever the scanner allows."""
    entry = span.entry
    if entry.name in REMOVES:
        return ""
    label = entry.label(span.kind)
    if stage == "input" and vault is not None:
        return vault.placeholder(label, value, restorable and entry.restorable(span.kind))
    return f"[REDACTED_{label}]"


def apply(
    text: str, spans: Sequence[Span], stage: str, vault: Vault | None, restorable: bool = True
) -> str:
    """``text`` with each (merged, sorted) span replaced."""
    if not spans:
        return text
    parts, last = [], 0
    for span in spans:
        parts.append(text[last : span.start])
        parts.append(replacement(span, text[span.start : span.end], stage, vault, restorable))
        last = span.end
    parts.append(text[last:])
    return "".join(parts)

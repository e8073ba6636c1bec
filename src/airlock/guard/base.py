"""The guard contract: scanners that look at one text and report what they found.

A scanner is ``scan(text, ctx=None) -> list[Hit]``; it never changes text itself. The
:class:`~airlock.guard.pipeline.Pipeline` runs the configured scanners over the input
messages and the output, applies each scanner's action (block, redact, flag) and keeps
the reversible redactions of one request in a :class:`~airlock.guard.vault.Vault`, so
placeholders sent to the model can be restored in its answer.

``ctx`` carries what one request adds to a scanner's static options: the system prompt
the model saw and per-request canaries (the output ``leaks`` scanner reads them).
Scanners that do not need it ignore it, so ``scanner.scan(text)`` always works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

ACTIONS = ("block", "redact", "flag")
STAGES = ("input", "output")


class GuardConfigError(ValueError):
    """A guard configuration (scanner name, action or option) is not valid."""


@dataclass(frozen=True)
class Hit:
    """One thing a scanner found: ``text[start:end]`` is of ``kind`` (``email``,
    ``aws-access-key``, ``injection.override`` …); ``score`` 0..1 says how sure."""

    kind: str
    start: int
    end: int
    score: float = 1.0


@dataclass(frozen=True)
class GuardContext:
    """What one request tells the scanners: the system prompt the model was given
    (after input redaction, i.e. what it could leak) and extra canary strings."""

    system_prompt: str = ""
    canaries: tuple[str, ...] = ()


class Scanner(Protocol):
    """A named check on one text, for the input stage, the output stage or both."""

    name: str
    stages: tuple[str, ...]

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]: ...


@dataclass
class Verdict:
    """What one scanner said about one request (or response): its hits and the action
    taken (``block``/``redact``/``flag``; ``pass`` when nothing was found)."""

    scanner: str
    stage: str
    action: str
    hits: list[Hit] = field(default_factory=list)
    latency_us: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (kinds and counts, never the matched text)."""
        kinds = sorted({h.kind for h in self.hits})
        return {"scanner": self.scanner, "stage": self.stage, "action": self.action,
                "hits": len(self.hits), "kinds": kinds,
                "latency_us": round(self.latency_us, 1)}  # fmt: skip

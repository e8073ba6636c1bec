"""Dangerous code in answers (scanner ``code``), checked statically, never run.

The idioms are the ones :func:`airlock.probes.detectors.code.insecure_idioms` knows
(``shell=True``, ``os.system``, ``eval``, ``exec``, SQL built from strings, TLS checks
off, weak password hashes, hard-coded secrets, ``yaml.load``, ``pickle.loads``,
``child_process.exec``, ``curl | sh``). A hit is ``code.<idiom>`` over the code block
that holds it (the whole answer when the block cannot be located). Options: ``idioms``
(the ones to report, default all). The default action is ``flag``: code is the answer
the user asked for; the audit log shows what it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airlock.guard._options import Options, limit_hits
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

IDIOMS = (
    "shell=True", "os.system", "os.popen", "eval", "exec", "sql-string", "tls-verify-off",
    "weak-password-hash", "hardcoded-secret", "yaml.load", "pickle.loads",
    "child_process.exec", "curl|sh",
)  # fmt: skip


def _maybe_code(text: str) -> bool:
    return "```" in text or "~~~" in text or "    " in text or "\t" in text


@register("code")
class CodeScanner:
    """Insecure idioms in the answer's code blocks."""

    name: str = "code"
    stages: tuple[str, ...] = ("output",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.idioms = opts.choices("idioms", IDIOMS, IDIOMS)
        opts.done()
        from airlock.probes.detectors import _text, code  # heavy: import when used

        self._idioms_of = code.insecure_idioms
        self._blocks = _text.code_blocks

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """One hit per idiom and code block."""
        if not _maybe_code(text):
            return []
        if not any(i in self.idioms for i in self._idioms_of(text)):
            return []
        hits: list[Hit] = []
        cursor = 0
        for block in self._blocks(text):
            at = text.find(block.code, cursor) if block.code else -1
            start, end = (at, at + len(block.code)) if at >= 0 else (0, len(text))
            cursor = end if at >= 0 else cursor
            fenced = f"```{block.lang}\n{block.code}\n```"
            for idiom in self._idioms_of(fenced):
                if idiom in self.idioms:
                    hits.append(Hit(f"code.{idiom}", start, end))
        return limit_hits(hits)

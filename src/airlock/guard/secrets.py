"""API keys, tokens, passwords and private keys in prompts and answers (scanner ``secrets``).

The patterns are the ones ``airlock scan`` uses (``data/credentials_patterns.yaml``, read
through :mod:`airlock.scan.credentials`), plus gateway additions in
``guard/data/secrets.yaml``: whole PEM blocks, JWTs, GitLab, npm, PyPI, SendGrid,
Google OAuth, Groq, xAI, Stripe test, Alibaba and Tencent Cloud keys, database URLs,
``Authorization:`` headers and passwords written in prose (English and Chinese).

Every regex runs only when one of its literal hints is in the text, so a prompt without
any key costs a few substring checks. A hit's kind is the pattern id (``openai-key`` …)
and its span is the secret itself (the value, not the ``password =`` before it).

Options: ``kinds`` (pattern ids to report, default all).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airlock.guard._options import MAX_HITS, Hints, Options, limit_hits, load_data, lower
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register
from airlock.scan.credentials import _norm_key
from airlock.scan.remote_code import shannon_entropy

_WORD = re.compile(r"[A-Za-z0-9_]")
_PEM_END = re.compile(r"-----END[ A-Z0-9]{0,60}-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,.\-]{0,16384}")
_PEM_MAX = 16384
_LOOSE = frozenset({"generic", "password-in-text"})  # keyword-based: checked last


@dataclass(frozen=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    hints: tuple[str, ...]
    fold: bool  # hints are looked for in the lower-cased text
    min_entropy: float
    need_digit: bool
    word_start: bool
    keywords: frozenset[str] = frozenset()
    lower: bool = False  # the regex runs on the lower-cased text


def _shared() -> tuple[list[_Pattern], tuple[str, ...]]:
    """The scan's credential table, with this file's hints attached."""
    from airlock.scan.credentials import _table

    extra = load_data("secrets.yaml")
    out = []
    for p in _table().patterns:
        kind = p.rule.id.removeprefix("secrets.")
        if kind in extra["replace"] or kind == "generic":
            continue
        hint = extra["hints"].get(kind, {})
        out.append(
            _Pattern(kind, p.regex, tuple(hint.get("hints", ())), bool(hint.get("fold")),
                     p.min_entropy, p.need_digit, p.word_start, p.keywords)
        )  # fmt: skip
    return out, _table().placeholders


def _generic() -> _Pattern:
    """The shared ``KEY = "value"`` pattern, as a lower-case regex for lower-cased text."""
    from airlock.data import load_yaml

    raw = load_yaml("credentials_patterns.yaml")
    spec = next(p for p in raw["patterns"] if p["id"] == "generic")
    words = sorted(raw["generic_keywords"], key=len, reverse=True)
    regex = (
        f"(?P<key>(?:{'|'.join(words)}))"
        r"""["']?\s*(?::=|=>|[:=])\s*(?P<q>["'])(?P<secret>[^"'\s]{8,200})(?P=q)"""
    )
    hint = load_data("secrets.yaml")["hints"]["generic"]
    keys = frozenset(_norm_key(k.replace("_?", "")) for k in words)
    return _Pattern("generic", re.compile(regex), tuple(hint["hints"]), True,
                    float(spec["min_entropy"]), False, False, keys, lower=True)  # fmt: skip


def _own() -> list[_Pattern]:
    return [
        _Pattern(
            p["id"],
            re.compile(p["regex"]),
            tuple(p["hints"]),
            bool(p.get("fold", False)),
            float(p["min_entropy"]),
            bool(p.get("require_digit", False)),
            bool(p.get("word_start", False)),
            lower=bool(p.get("lower", False)),
        )
        for p in load_data("secrets.yaml")["patterns"]
    ]


@functools.cache
def _table() -> tuple[tuple[_Pattern, ...], tuple[str, ...]]:
    shared, placeholders = _shared()
    pats = [*shared, *_own(), _generic()]
    # Specific formats win overlaps; then KEY = "value", then a password in prose.
    pats.sort(key=lambda p: (p.kind in _LOOSE, p.kind == "password-in-text"))
    return tuple(pats), placeholders


def all_kinds() -> tuple[str, ...]:
    """Every secret kind the scanner knows."""
    return tuple(dict.fromkeys(p.kind for p in _table()[0]))


def _pem_end(text: str, start: int) -> int:
    """Where a PEM block whose header ends at ``start`` ends (its END line, else its body)."""
    m = _PEM_END.search(text, start, start + _PEM_MAX)
    if m is not None:
        return m.end()
    body = _PEM_BODY.match(text, start)
    return body.end() if body else start


def _overlaps(hits: Iterable[Hit], start: int, end: int) -> bool:
    return any(h.start < end and start < h.end for h in hits)


@register("secrets")
class SecretsScanner:
    """Credentials by format, with entropy and placeholder checks against false alarms."""

    name: str = "secrets"
    stages: tuple[str, ...] = ("input", "output")

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        patterns, self.placeholders = _table()
        kinds = opts.choices("kinds", all_kinds(), all_kinds())
        opts.done()
        self.patterns = tuple(p for p in patterns if p.kind in kinds)
        # One pass over the lower-cased text finds every hint; a case-sensitive hint
        # that only matches folded costs one regex run that then finds nothing.
        self.hints = Hints(h.lower() for p in self.patterns for h in p.hints)
        self.needs = tuple(frozenset(h.lower() for h in p.hints) for p in self.patterns)

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for each plausible credential, most specific format first, no overlaps."""
        low = lower(text)
        present = self.hints.present(low)
        hits: list[Hit] = []
        for pat, needs in zip(self.patterns, self.needs, strict=True):
            if needs and present.isdisjoint(needs):
                continue
            covered = -1  # a match inside this pattern's last hit adds nothing
            for m in pat.regex.finditer(low if pat.lower else text):
                if m.start() < covered:
                    continue
                hit = self._hit(text, m, pat)
                if hit is not None and not _overlaps(hits, hit.start, hit.end):
                    hits.append(hit)
                    covered = hit.end
                    if len(hits) >= MAX_HITS:  # hostile text: cover the rest, stop here
                        hits.append(Hit(pat.kind, hit.end, len(text), 0.5))
                        return limit_hits(hits)
        return sorted(hits, key=lambda h: h.start)

    def _hit(self, text: str, m: re.Match[str], pat: _Pattern) -> Hit | None:
        if pat.kind == "private-key":
            return Hit("private-key", m.start(), _pem_end(text, m.end()))
        group = "secret" if "secret" in pat.regex.groupindex else 0
        start, end = m.span(group)
        if not self._plausible(text, m, pat, text[start:end]):
            return None
        return Hit(pat.kind, start, end, 0.8 if pat.kind in _LOOSE else 1.0)

    def _plausible(self, text: str, m: re.Match[str], pat: _Pattern, secret: str) -> bool:
        """Drop matches inside longer words, placeholders and low-entropy values (the
        same tests as ``airlock scan``'s credential check)."""
        start = m.start()
        if pat.word_start and start > 0 and _WORD.match(text[start - 1]):
            return False
        if pat.keywords and _norm_key(m.group("key")) not in pat.keywords:
            return False
        low = secret.lower()
        if any(p in low for p in self.placeholders) or len(set(secret)) <= 4:
            return False
        if pat.need_digit and not any(c.isdigit() for c in secret):
            return False
        return shannon_entropy(secret) >= pat.min_entropy

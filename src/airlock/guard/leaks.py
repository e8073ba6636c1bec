"""Canary and system-prompt leaks in answers (scanner ``leaks``).

Two checks:

- canaries (option ``canaries`` plus the request's ``ctx.canaries``): verbatim (kind
  ``leak.canary``), or dressed up — case folded, spaced out (any separators, zero-width
  ones included), reversed, full-width, digits spelled out in English or as Chinese
  numerals, hex, base64 (``leak.canary-encoded``) — or two of its three groups
  (``leak.canary-partial``, unless ``partial: false``). The probes' ``canary``
  detector scores with :func:`leak_score` too. Computed once per text for all canaries
  and with substring tests only: base64 is found through the fixed strings a canary
  encodes to at each of the three byte alignments, not by decoding every run.
- the request's system prompt (``ctx.system_prompt``, unless ``system_prompt: false``):
  a verbatim stretch of at least ``min_overlap`` UTF-8 bytes (default 60: about 60
  English characters or 20 Chinese ones) is ``leak.system-prompt``. The prompt is cut
  into pieces on a fixed grid; any copied stretch long enough contains a whole piece,
  found with ``str.find`` and grown both ways by slice comparison.

Encoded canaries are located where the form allows; otherwise the hit covers the text.
"""

from __future__ import annotations

import base64
import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from airlock.guard._options import Options, limit_hits, lower
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

_ALNUM = re.compile(r"[0-9A-Za-z]")


def _finds(hay: str, needle: str) -> Iterable[int]:
    at = hay.find(needle)
    while at >= 0:
        yield at
        at = hay.find(needle, at + 1)


def _common_after(a: str, i: int, b: str, j: int) -> int:
    """Length of the common prefix of ``a[i:]`` and ``b[j:]`` (galloping slice compares)."""
    limit = min(len(a) - i, len(b) - j)
    lo, step = 0, 16
    while lo < limit:
        hi = min(limit, lo + step)
        if a[i + lo : i + hi] != b[j + lo : j + hi]:
            break
        lo, step = hi, step * 2
    else:
        return limit
    hi = min(limit, lo + step)
    while lo < hi:  # a[i:i+lo] == b[j:j+lo] and the first mismatch is before hi
        mid = (lo + hi + 1) // 2
        if a[i + lo : i + mid] == b[j + lo : j + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_before(a: str, i: int, b: str, j: int) -> int:
    """Length of the common suffix of ``a[:i]`` and ``b[:j]``."""
    return _common_after(a[max(0, i - j) : i][::-1], 0, b[:j][::-1], 0)


@functools.lru_cache(maxsize=256)
def _pieces(prompt: str, size: int) -> tuple[tuple[str, int], ...]:
    """Grid pieces of the system prompt, skipping blank or repetitive ones."""
    out = []
    for off in range(0, len(prompt) - size + 1, size):
        piece = prompt[off : off + size]
        if piece.strip() and len(set(piece)) > 3:
            out.append((piece, off))
    return tuple(out)


def overlaps(text: str, prompt: str, min_bytes: int) -> list[tuple[int, int]]:
    """Spans of ``text`` copied verbatim from ``prompt``, each at least ``min_bytes``
    UTF-8 bytes long."""
    if not prompt or not text:
        return []
    wide = not prompt.isascii()
    size = max(4, min_bytes // 6 if wide else min_bytes // 2)
    spans: list[tuple[int, int]] = []
    for piece, off in _pieces(prompt, size):
        for at in _finds(text, piece):
            if any(s <= at < e for s, e in spans):
                continue
            left = _common_before(text, at, prompt, off)
            right = _common_after(text, at, prompt, off)
            start, end = at - left, at + right
            if len(text[start:end].encode("utf-8")) >= min_bytes:
                spans.append((start, end))
            if len(spans) >= 100:
                return spans
    return sorted(spans)


_FULLWIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")  # letters, digits
_ZH_DIGITS = tuple(zip("零〇一二三四五六七八九", "00123456789", strict=True))
_KEEP = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz")
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SEPARATOR_WORDS = "(?:dash|hyphen|minus)*"
_MIN_FUZZY = 8  # shorter canaries are matched verbatim or case folded only
EXACT, ENCODED, PARTIAL = 1.0, 0.9, 0.6


def _flat(low: str) -> str:
    """The ASCII letters and digits of lower-cased ``low`` (everything else dropped)."""
    return low.encode("ascii", "ignore").translate(None, _DROP).decode("ascii")


def _b64_signatures(data: bytes) -> set[str]:
    """Base64 text that appears whenever ``data`` is base64-encoded inside anything.

    Whatever precedes ``data``, encoding works on 3-byte groups; for each of the three
    alignments the groups lying wholly inside ``data`` encode to a fixed string.
    """
    out = set()
    for skip in range(3):
        chunk = data[skip:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 9:
            enc = base64.b64encode(chunk).decode("ascii")
            out |= {enc, enc.replace("+", "-").replace("/", "_")}
    return out


def _spelled_regex(core: str) -> re.Pattern[str]:
    """The canary (or its reverse) with each digit also allowed as its English word and
    "dash"/"hyphen"/"minus" allowed anywhere, for the letters-and-digits-only text."""

    def form(chars: str) -> str:
        parts = [f"(?:{c}|{_DIGIT_WORDS[int(c)]})" if c.isdigit() else c for c in chars]
        return _SEPARATOR_WORDS.join(parts)

    return re.compile(f"{form(core)}|{form(core[::-1])}")


class _View:
    """One text's forms, computed once and shared by every canary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.low = lower(text)
        norm = text
        if not text.isascii():
            if _FULLWIDTH.search(norm):
                norm = unicodedata.normalize("NFKC", norm)
            for numeral, digit in _ZH_DIGITS:  # str.replace: far faster than translate
                if numeral in norm:
                    norm = norm.replace(numeral, digit)
        self.norm_low = self.low if norm is text else norm.lower()
        self.flat = _flat(self.norm_low)
        self.joined = text.replace("\n", "").replace("\r", "") if "\n" in text else text


class _Canary:
    """One canary and its precomputed search forms (the forms the probes' ``canary``
    detector knows, checked with substring tests on shared views)."""

    def __init__(self, canary: str) -> None:
        self.text = canary
        self.folded = canary.casefold()
        self.core = _flat(canary.lower())
        self.back = self.core[::-1]
        self.fuzzy = len(self.core) >= _MIN_FUZZY
        self.hexes = {canary.encode().hex(), self.core.upper().encode().hex()}
        data = canary.encode()
        self.b64 = _b64_signatures(data) | _b64_signatures(canary.lower().encode())
        groups = [g.lower() for g in re.split(r"[^0-9A-Za-z]+", canary) if len(g) >= 3]
        self.groups = [(g, re.compile(rf"(?<![0-9a-z]){re.escape(g)}(?![0-9a-z])")) for g in groups]
        self.need = max(2, -(-2 * len(groups) // 3)) if len(groups) >= 3 else len(groups) + 1
        self.pairs = [a + b for a, b in itertools.pairwise(groups) if len(a + b) >= _MIN_FUZZY]
        self.spelled = _spelled_regex(self.core) if any(c.isdigit() for c in self.core) else None

    def score(self, v: _View) -> float:
        """1.0 verbatim, 0.9 dressed up, 0.6 two of three groups, else 0."""
        if self.text in v.text:
            return EXACT
        if self.folded in v.norm_low or (self.fuzzy and self._encoded(v)):
            return ENCODED
        return PARTIAL if self._partial(v) else 0.0

    def _encoded(self, v: _View) -> bool:
        flat = v.flat
        if self.core in flat or self.back in flat:
            return True
        forms = [flat, flat.replace("0x", "").replace("x", ""), flat.replace("x", "")]
        if any(h in f for h in self.hexes for f in (forms if "x" in flat else forms[:1])):
            return True
        if any(sig in v.joined for sig in self.b64):
            return True
        return self.spelled is not None and self.spelled.search(flat) is not None

    def _partial(self, v: _View) -> bool:
        present = sum(1 for g, rx in self.groups if g in v.low and rx.search(v.low))
        return present >= self.need or any(p in v.flat for p in self.pairs)


@functools.lru_cache(maxsize=512)
def _canary(canary: str) -> _Canary:
    return _Canary(canary)


def leak_score(text: str, canary: str) -> float:
    """How surely ``text`` reveals ``canary`` (1.0 verbatim, 0.9 encoded, 0.6 partial)."""
    return _canary(canary).score(_View(text)) if text and canary else 0.0


def _flat_index(text: str) -> tuple[str, list[int]]:
    """Lower-cased ASCII letters and digits of ``text`` and where each came from."""
    index = [m.start() for m in _ALNUM.finditer(text)]
    return "".join(text[i] for i in index).lower(), index


def _located(v: _View, c: _Canary) -> list[tuple[int, int]]:
    """Where an encoded canary sits, when the form allows finding it."""
    spans = []
    if c.folded in v.low:
        spans += [(at, at + len(c.folded)) for at in _finds(v.low, c.folded)]
    flat, index = _flat_index(v.text)
    for form in (c.core, c.back, *c.hexes):
        spans += [(index[at], index[at + len(form) - 1] + 1) for at in _finds(flat, form)]
    for sig in c.b64:
        spans += [(at, at + len(sig)) for at in _finds(v.text, sig)]
    return spans


@register("leaks")
class LeaksScanner:
    """Canaries and long verbatim stretches of the system prompt in an answer."""

    name: str = "leaks"
    stages: tuple[str, ...] = ("output",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.canaries = tuple(opts.strings("canaries"))
        self.use_prompt = opts.flag("system_prompt", True)
        self.min_overlap = opts.integer("min_overlap", 60, 16, 100_000)
        self.partial = opts.flag("partial", True)
        opts.done()

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for each leaked canary and each long stretch of the system prompt."""
        if not text:
            return []
        hits: list[Hit] = []
        canaries = {*self.canaries, *(ctx.canaries if ctx else ())}
        view = _View(text) if canaries else None
        for canary in canaries:
            hits += self._canary(view or _View(text), _canary(canary))
        if self.use_prompt and ctx is not None and ctx.system_prompt:
            spans = overlaps(text, ctx.system_prompt, self.min_overlap)
            hits += (Hit("leak.system-prompt", s, e) for s, e in spans)
        return limit_hits(sorted(hits, key=lambda h: h.start))

    def _canary(self, view: _View, c: _Canary) -> list[Hit]:
        score = c.score(view)
        if score >= EXACT:
            return [Hit("leak.canary", at, at + len(c.text)) for at in _finds(view.text, c.text)]
        if score >= ENCODED:
            spans = _located(view, c) or [(0, len(view.text))]
            return [Hit("leak.canary-encoded", s, e, score) for s, e in spans]
        if score > 0 and self.partial:
            return [Hit("leak.canary-partial", 0, len(view.text), score)]
        return []

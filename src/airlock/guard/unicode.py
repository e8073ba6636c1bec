"""Invisible and bidirectional control characters (scanner ``unicode``).

They hide instructions from a human reviewer (tag characters spell ASCII that only the
model reads; zero-width characters split trigger words) or reorder what a reader sees
(bidi overrides, "Trojan Source"). Kinds: ``unicode.bidi``, ``unicode.tag``,
``unicode.zero-width``, ``unicode.invisible`` and ``unicode.variation-selector``; a hit
covers one run of such characters, so redaction removes them.

Legitimate uses are left alone: a zero-width joiner inside an emoji sequence, a
zero-width non-joiner in Persian or Indic script, the emoji variation selectors
U+FE0E/U+FE0F, and a byte-order mark at the very start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airlock.guard._options import Options, limit_hits
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

_CLASSES = {
    "unicode.bidi": "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069",
    "unicode.zero-width": "\u200b-\u200d\u2060\ufeff",
    "unicode.tag": "\U000e0000-\U000e007f",
    "unicode.invisible": "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180e\u2061-\u2064"
    "\u206a-\u206f\u3164\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a",
    "unicode.variation-selector": "\ufe00-\ufe0d\U000e0100-\U000e01ef",
}
ALL_KINDS = tuple(_CLASSES)
_ANY = "".join(_CLASSES.values())
RUN = re.compile(f"[{_ANY}]+")
_KIND_OF = [(kind, re.compile(f"[{chars}]")) for kind, chars in _CLASSES.items()]
_ZWJ, _ZWNJ, _BOM = "\u200d", "\u200c", "\ufeff"
# A class of a few ranges is scanned several times faster than one with astral ranges,
# so the fast path tests the BMP part and only looks for astral characters if any exist.
_BMP = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0d\ufeff\uffa0\ufff9-\ufffb]"
)


def _has_astral(text: str) -> bool:
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)


def maybe_hidden(text: str) -> bool:
    """A quick test: False means ``text`` has no hidden character at all."""
    if text.isascii():
        return False
    return _BMP.search(text) is not None or (_has_astral(text) and RUN.search(text) is not None)


def _emoji(ch: str) -> bool:
    o = ord(ch)
    return o >= 0x1F000 or 0x2600 <= o <= 0x27BF or 0x2B00 <= o <= 0x2BFF or ch == "\ufe0f"


def _joining_script(ch: str) -> bool:
    """Arabic, Syriac and Indic scripts use ZWNJ/ZWJ to shape words."""
    o = ord(ch)
    return 0x0600 <= o <= 0x08FF or 0x0900 <= o <= 0x0DFF or 0xFB50 <= o <= 0xFEFF


def _benign(text: str, start: int, end: int) -> bool:
    run = text[start:end]
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    if run == _BOM and start == 0:
        return True
    if run == _ZWJ and before and after and _emoji(before) and _emoji(after):
        return True
    return run in (_ZWJ, _ZWNJ) and bool(before) and _joining_script(before)


def _kind(run: str) -> str:
    for kind, rx in _KIND_OF:  # the most telling class first (bidi, then zero-width …)
        if rx.search(run):
            return kind
    return "unicode.invisible"


@register("unicode")
class UnicodeScanner:
    """Runs of invisible or bidi control characters; ``kinds`` narrows which count."""

    name: str = "unicode"
    stages: tuple[str, ...] = ("input", "output")

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.kinds = opts.choices("kinds", ALL_KINDS, ALL_KINDS)
        opts.done()

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for each run of hidden characters (none for ASCII text, the fast path)."""
        if not maybe_hidden(text):
            return []
        hits = []
        for m in RUN.finditer(text):
            if _benign(text, m.start(), m.end()):
                continue
            kind = _kind(m.group())
            if kind in self.kinds:
                hits.append(Hit(kind, m.start(), m.end()))
        return limit_hits(hits)


def strip_hidden(text: str) -> tuple[str, list[int] | None]:
    """``text`` without hidden characters, and a map from its offsets back to ``text``'s
    (None when nothing was removed). Other scanners use it to see through "ig\u200bnore"."""
    if not maybe_hidden(text):
        return text, None
    parts: list[str] = []
    index: list[int] = []
    last = 0
    for m in RUN.finditer(text):
        parts.append(text[last : m.start()])
        index.extend(range(last, m.start()))
        last = m.end()
    if not last:
        return text, None
    parts.append(text[last:])
    index.extend(range(last, len(text) + 1))
    return "".join(parts), index

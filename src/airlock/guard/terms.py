"""Banned terms (scanner ``terms``): project code names, competitor names, slurs …

Options: ``terms`` (the list; required). Matching ignores case; Latin-script terms match
whole words only ("project-x" does not fire inside "project-xy"), terms with CJK
characters match anywhere (Chinese has no spaces between words). All terms compile into
one regex shaped like a trie (shared prefixes are tested once), so a few hundred terms
cost about what one does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airlock.guard._options import Options, limit_hits
from airlock.guard._trie import trie_pattern
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# Whole words for Latin script: no Latin letter or digit on either side (a CJK character
# next to an English word is a boundary: "使用Falcon模型" names Falcon).
_LATIN = "0-9A-Za-z\u00c0-\u024f"
_WORD_B = f"(?<![{_LATIN}])"
_WORD_A = f"(?![{_LATIN}])"
_MAX_TERMS = 10_000
_MAX_LEN = 200


def compile_terms(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for ``terms`` (None for an empty list)."""
    words = sorted({t.strip().lower() for t in terms if t.strip()})
    latin = [w for w in words if not _CJK.search(w)]
    cjk = [w for w in words if _CJK.search(w)]
    parts = []
    if latin:
        parts.append(f"{_WORD_B}{trie_pattern(latin)}{_WORD_A}")
    if cjk:
        parts.append(trie_pattern(cjk))
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


@register("terms")
class TermsScanner:
    """Each occurrence of a banned term (kind ``term``)."""

    name: str = "terms"
    stages: tuple[str, ...] = ("input", "output")

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        terms = opts.strings("terms")
        opts.done()
        if len(terms) > _MAX_TERMS or any(len(t) > _MAX_LEN for t in terms):
            want = f"at most {_MAX_TERMS} terms of at most {_MAX_LEN} characters"
            raise opts.error("terms", want, f"{len(terms)} terms")
        self.regex = compile_terms(terms)

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for every banned term in ``text``."""
        if self.regex is None:
            return []
        return limit_hits([Hit("term", m.start(), m.end()) for m in self.regex.finditer(text)])

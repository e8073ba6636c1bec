"""Text helpers the built-in detectors share: code blocks, sentences, CJK, quotes.

Everything here is pure ``re`` work on one answer, precompiled at import, so a
detector stays in the microseconds on a few kilobytes of text.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<code>.*?)"
    r"(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.M | re.S,
)
_INDENTED = re.compile(r"(?:^(?:    |\t)[^\n]*\n?|^[ \t]*\n(?=(?:    |\t)))+", re.M)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’」)]*\s*|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)]))")
_QUOTED = re.compile(r"\"[^\"\n]{3,300}\"|“[^”\n]{3,300}”|「[^」\n]{1,300}」|『[^』\n]{1,300}』")


class CodeBlock(NamedTuple):
    """One block of code in an answer: its declared language (lower case) and text."""

    lang: str
    code: str


@functools.lru_cache(maxsize=16)
def code_blocks(text: str) -> tuple[CodeBlock, ...]:
    """Fenced blocks (```lang … ```, an unclosed fence runs to the end), else indented ones.

    Indented blocks (four spaces or a tab) are only looked for when the answer has no
    fence at all, the way Markdown renders them. Cached: several detectors ask.
    """
    if "```" in text or "~~~" in text:
        return tuple(CodeBlock(m["lang"].lower(), m["code"]) for m in _FENCE.finditer(text))
    if "    " not in text and "\t" not in text:
        return ()
    blocks = []
    for m in _INDENTED.finditer(text):
        lines = [ln[4:] if ln.startswith("    ") else ln[1:] for ln in m.group().split("\n")]
        code = "\n".join(lines).strip("\n")
        if code:
            blocks.append(CodeBlock("", code))
    return tuple(blocks)


def without_code(text: str) -> str:
    """``text`` with fenced code blocks removed (prose only)."""
    if "```" not in text and "~~~" not in text:
        return text
    return _FENCE.sub("\n", text)


def strings(value: object) -> list[str]:
    """A parameter that should be a string or a list of strings, as a list (else empty).

    Probe data is checked at load, but a detector must not crash on a plugin's odd
    parameters either: anything else reads as "not given".
    """
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def find_all(text: str, needle: str) -> list[int]:
    """Offsets of every occurrence of ``needle`` in ``text`` (overlapping ones too)."""
    out, at = [], text.find(needle)
    while at >= 0:
        out.append(at)
        at = text.find(needle, at + 1)
    return out


class Cue(NamedTuple):
    """A pattern worth running only when its literal ``hint`` is in the text."""

    hint: str
    pattern: re.Pattern[str]


def cue_search(cues: tuple[Cue, ...], low: str) -> re.Match[str] | None:
    """The first cue match in ``low`` (cues in order), checking the cheap hint first.

    ``in`` on a str is a fast C scan; a regex alternation of many words is not, so
    patterns are split by a literal each contains and only run where it occurs.
    """
    for cue in cues:
        if cue.hint in low:
            m = cue.pattern.search(low)
            if m:
                return m
    return None


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds any CJK ideograph (then Chinese cue lists apply)."""
    return not text.isascii() and _CJK.search(text) is not None


def sentences(text: str, limit: int = 0) -> list[str]:
    """Split into sentences (English and Chinese end marks, blank lines, list items).

    ``limit`` > 0 stops after that many non-empty sentences.
    """
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        if part and part.strip():
            out.append(part.strip())
            if limit and len(out) >= limit:
                break
    return out


def sentence_ends(text: str, n: int) -> int:
    """Offset just past the ``n``-th non-empty sentence of ``text`` (its length if fewer)."""
    count, last = 0, 0
    for m in _SENTENCE_END.finditer(text):
        if text[last : m.start()].strip():
            count += 1
            if count >= n:
                return m.end()
        last = m.end()
    return len(text)


def squash(text: str) -> str:
    """Whitespace runs to one space, case folded: for containment checks."""
    return " ".join(text.split()).casefold()


def unquote_spans(text: str) -> str:
    """``text`` with quoted spans blanked, unless the quotes hold nearly all of it.

    A refusal phrase inside quotes ("you can say “I can't help with that”") is a
    mention, not a refusal; an answer wrapped whole in quotes is still the answer.
    """
    if '"' not in text and "“" not in text and "「" not in text and "『" not in text:
        return text
    blanked = _QUOTED.sub(" … ", text)
    return blanked if len(blanked.strip()) >= 0.3 * len(text.strip()) else text

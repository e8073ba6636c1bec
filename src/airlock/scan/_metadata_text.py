"""Shared detection of suspicious content in a model file's metadata strings.

Weights formats (safetensors, GGUF, ONNX) carry free-text metadata that loaders
and UIs display or, worse, feed to templating or shells. Nothing here executes
the text; it is matched against a few bounded regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from airlock.findings import Finding, Rule, Severity
from airlock.scan.base import FileInput, ScanContext

# Metadata strings longer than this are only inspected up to this length: the
# patterns are all short, and regex time must stay bounded.
MAX_INSPECT = 1 << 20

_CODE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python import", re.compile(r"(?m)^\s*(?:from\s+[\w.]+\s+)?import\s+[\w.]+\s*(?:[,;]|$)")),
    (
        "python call",
        re.compile(
            r"\b(?:eval|exec|__import__|compile|getattr|os\.system|os\.popen|"
            r"subprocess\.\w+|pickle\.loads?|marshal\.loads|base64\.b64decode)\s*\("
        ),
    ),
    ("python dunder", re.compile(r"__(?:builtins|globals|class|subclasses|reduce)__")),
    (
        "shell command",
        re.compile(
            r"(?:\b(?:curl|wget)\s+\S*https?://|\|\s*(?:ba|z)?sh\b|\brm\s+-rf\b|"
            r"/bin/(?:ba|z)?sh\b|\bpowershell\b|\bnc\s+-e\b|\$\([^)]{1,200}\)|\bchmod\s+\+x\b)"
        ),
    ),
    ("html script", re.compile(r"(?i)<\s*script\b|javascript:|\bon(?:error|load)\s*=")),
    ("template syntax", re.compile(r"\{\{|\{%")),
)
_URL = re.compile(r"(?i)\b(?:https?|ftp|file|smb|wss?)://[^\s\"'<>]{1,200}")
# Zero-width, bidi overrides/isolates, word joiners, BOM, soft hyphen, Unicode tags.
_INVISIBLE = re.compile(
    "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# Keys whose job is to hold a link; a URL there is expected, not suspicious.
_LINK_KEY = re.compile(r"(?i)(?:url|link|uri|href|homepage|repo|repository|doi|source|license)")


@dataclass(frozen=True)
class TextHit:
    """One suspicious thing found in a metadata string.

    Attributes:
        kind: ``"code"``, ``"url"`` or ``"invisible"``.
        what: a short human description (``python import``).
        excerpt: the matched text (raw; callers shorten it for evidence).
    """

    kind: str
    what: str
    excerpt: str


def inspect_text(key: str, value: str) -> list[TextHit]:
    """Find code-like content, URLs and invisible characters in one metadata value.

    Args:
        key: the metadata key (URLs in link-like keys such as ``general.url`` are expected).
        value: the metadata value; only the first :data:`MAX_INSPECT` characters are read.

    Returns:
        Hits in the order code, invisible, url; empty when the value looks harmless.
    """
    text = value[:MAX_INSPECT]
    hits: list[TextHit] = []
    for what, pat in _CODE_PATTERNS:
        m = pat.search(text)
        if m:
            hits.append(TextHit("code", what, _around(text, m.start(), m.end())))
    m = _INVISIBLE.search(text)
    if m:
        hits.append(TextHit("invisible", f"invisible character U+{ord(m.group()):04X}", text))
    if not _LINK_KEY.search(key):
        m = _URL.search(text)
        if m and not text.startswith("data:image/"):
            hits.append(TextHit("url", "URL", m.group()))
    return hits


def _around(text: str, start: int, end: int, pad: int = 40) -> str:
    return text[max(0, start - pad) : end + pad]


@dataclass(frozen=True)
class TextVerdict:
    """All hits on one value folded into one finding's worth of facts.

    Attributes:
        what: the hit descriptions joined (``python import, URL``).
        evidence: the excerpt of the most serious hit.
        kinds: the distinct kinds found.
        url_only: only URLs were found (scanners report these at a lower severity).
    """

    what: str
    evidence: str
    kinds: tuple[str, ...]
    url_only: bool


def verdict(key: str, value: str) -> TextVerdict | None:
    """Inspect one metadata value and fold the hits; ``None`` when it looks harmless."""
    hits = inspect_text(key, value)
    if not hits:
        return None
    kinds = tuple(dict.fromkeys(h.kind for h in hits))
    what = ", ".join(dict.fromkeys(h.what for h in hits))
    return TextVerdict(what, hits[0].excerpt, kinds, kinds == ("url",))


def metadata_findings(
    ctx: ScanContext, r: Rule, f: FileInput, fmt: str, location: str, key: str, value: str
) -> Iterator[Finding]:
    """One finding of rule ``r`` if ``value`` looks suspicious (URL-only hits are low)."""
    v = verdict(key, value)
    if v is None:
        return
    yield ctx.finding(
        r,
        f,
        title=f"Suspicious text in {fmt} metadata ({v.what})",
        location=location,
        evidence=v.evidence,
        severity=Severity.LOW if v.url_only else None,
        extra={"kinds": list(v.kinds)},
    )

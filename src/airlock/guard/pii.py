"""Personal data (scanner ``pii``): e-mail, phone, card, IBAN, Chinese id, US SSN, IP.

Kinds (each switchable with the ``kinds`` option, default all):

- ``email``: ``local@domain.tld``.
- ``phone``: international (``+`` or ``00``, 8-15 digits), US with separators
  (``(415) 555-2671``, ``415-555-2671``), Chinese mobile (``1[3-9]`` + 9 digits, bare or
  3-4-4, optional ``+86``) and landline (``010-12345678``).
- ``card``: 13-19 digits (spaces or dashes between groups), issuer prefix, Luhn check.
- ``iban``: country length and the mod-97 check.
- ``cn_id``: Chinese resident id, 18 characters, region, birth date, mod 11-2 check.
- ``ssn``: US social security number ``123-45-6789`` outside the never-issued ranges.
- ``ip``: IPv4 and IPv6 addresses.

Speed: digits-based kinds are only looked for inside runs of digits and separators found
by one regex pass, so a prompt costs one scan plus work per number it holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from airlock.guard._checks import card_ok, cn_id_ok, iban_lengths, iban_ok, ssn_ok
from airlock.guard._options import MAX_HITS, Options, limit_hits
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

ALL_KINDS = ("email", "phone", "card", "iban", "cn_id", "ssn", "ip")
_NB = r"(?<![0-9A-Za-z_])"  # not preceded by an ASCII word character
_NA = r"(?![0-9A-Za-z_])"  # not followed by one
# Runs of digits and separators at least 7 long (the shortest item, an IPv4 address
# like 1.1.1.1). ASCII classes only: ``\d`` (any script's digits) is several times slower.
_REGION = re.compile(r"[0-9][0-9 ()./xX-]{6,}")

_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
# Not glued to letters ("DE89 3704 …" is an IBAN) nor starting inside a longer run of
# digit groups.
_CARD = re.compile(r"(?<![0-9A-Za-z-])(?<![0-9][ -])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_CN_ID = re.compile(
    rf"{_NB}[1-9][0-9]{{5}}(?:18|19|20)[0-9][0-9](?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{{3}}[0-9Xx]{_NA}"
)
_SSN = re.compile(r"(?<![0-9A-Za-z_-])([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![0-9A-Za-z_-])")
_PHONES = (
    re.compile(
        rf"{_NB}(?:\+?1[ .-]?)?(?:\([2-9][0-9]{{2}}\)[ ]?|[2-9][0-9]{{2}}[ .-])"
        rf"[2-9][0-9]{{2}}[ .-][0-9]{{4}}{_NA}"
    ),
    re.compile(rf"(?<![0-9A-Za-z_+])(?:(?:\+|00)86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{{4}}){{2}}{_NA}"),
    re.compile(rf"{_NB}(?:\(0[0-9]{{2,3}}\)[ -]?|0[0-9]{{2,3}}-)[2-9][0-9]{{6,7}}{_NA}"),
    re.compile(rf"(?<![0-9A-Za-z_+])(?:\+|00)[1-9][0-9 ().-]{{6,20}}[0-9]{_NA}"),
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9A-Za-z_.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9A-Za-z_]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z_:])"
)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9][0-9](?:[ ]?[A-Z0-9]){11,30}")


def _emails(text: str) -> list[Hit]:
    """E-mail addresses, found from each "@" outwards (far faster than a regex that has
    to try every position of the text)."""
    out: list[Hit] = []
    at = text.find("@")
    while at >= 0:
        if len(out) >= MAX_HITS:  # hostile text: cover the rest, stop here
            out.append(Hit("email", at, len(text), 0.5))
            break
        start = at
        while start > 0 and at - start <= 64 and text[start - 1] in _LOCAL:
            start -= 1
        domain = _DOMAIN.match(text, at + 1)
        if domain and 0 < at - start <= 64 and not (start and text[start - 1] in _LOCAL):
            out.append(Hit("email", start, domain.end()))
        at = text.find("@", at + 1)
    return out


def _card(m: re.Match[str]) -> bool:
    raw = m.group()
    seps = {c for c in raw if not c.isdigit()}
    return len(seps) <= 1 and card_ok(raw.replace(" ", "").replace("-", ""))


def _phone(m: re.Match[str]) -> bool:
    raw = m.group()
    if not raw.startswith(("+", "00")):
        return True  # a national format the regex already pinned down
    digits = "".join(c for c in raw if c.isdigit())
    digits = digits[2:] if raw.startswith("00") else digits
    return 8 <= len(digits) <= 15 and ".." not in raw and "  " not in raw


def _ipv6(m: re.Match[str]) -> bool:
    raw = m.group()
    groups = [g for g in raw.split(":") if g]
    if len(groups) < 2 or not any(c.isdigit() for c in raw):
        return False
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return False
    return True


def _iban_hit(m: re.Match[str]) -> Hit | None:
    """An IBAN at the match start, cut to its country's length (the regex may run on)."""
    raw = m.group()
    compact = raw.replace(" ", "")
    want = iban_lengths().get(compact[:2])
    if want is None or len(compact) < want or not iban_ok(compact[:want]):
        return None
    end, seen = m.start(), 0
    for ch in raw:
        end += 1
        seen += ch != " "
        if seen == want:
            break
    return Hit("iban", m.start(), end)


_PRIORITY = {
    kind: i for i, kind in enumerate(("card", "iban", "cn_id", "ssn", "email", "phone", "ip"))
}


def resolve(hits: list[Hit]) -> list[Hit]:
    """Non-overlapping hits: two that overlap become one over both, of the more
    specific kind (a card number is not also a phone number)."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, _PRIORITY.get(h.kind, 9))):
        if kept and hit.start < kept[-1].end:
            last = kept[-1]
            best = min(last, hit, key=lambda h: _PRIORITY.get(h.kind, 9))
            kept[-1] = Hit(best.kind, last.start, max(last.end, hit.end), best.score)
            continue
        kept.append(hit)
    return kept


@register("pii")
class PiiScanner:
    """Personal data by format, confirmed by check digits where the format has them."""

    name: str = "pii"
    stages: tuple[str, ...] = ("input", "output")

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.kinds = opts.choices("kinds", ALL_KINDS, ALL_KINDS)
        opts.done()
        self._numbers = bool(self.kinds & {"phone", "card", "cn_id", "ssn", "ip"})

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """Hits for personal data; overlaps go to the more specific kind (card > phone)."""
        hits: list[Hit] = []
        long_run = False
        if self._numbers or "iban" in self.kinds:
            for region in _REGION.finditer(text):
                long_run = True
                if self._numbers:  # from 2 before: a "+" or "(" may open the number
                    self._numbers_in(text, max(0, region.start() - 2), region.end() + 1, hits)
                if len(hits) > MAX_HITS:  # hostile text: cover the rest, stop here
                    hits.append(Hit(hits[-1].kind, region.end(), len(text), 0.5))
                    break
        if "iban" in self.kinds and long_run:
            hits += filter(None, (_iban_hit(m) for m in _IBAN.finditer(text)))
        if "email" in self.kinds and "@" in text:
            hits += _emails(text)
        if "ip" in self.kinds and ("::" in text or text.count(":") >= 5):
            hits += (Hit("ip", *m.span()) for m in _IPV6.finditer(text) if _ipv6(m))
        return limit_hits(resolve(hits))

    def _numbers_in(self, text: str, pos: int, end: int, hits: list[Hit]) -> None:
        """Digit-based kinds inside one run (``end`` includes one character past the run,
        so lookaheads see what follows it)."""
        kinds = self.kinds
        if "card" in kinds:
            hits += (Hit("card", *m.span()) for m in _CARD.finditer(text, pos, end) if _card(m))
        if "cn_id" in kinds:
            found = (m for m in _CN_ID.finditer(text, pos, end) if cn_id_ok(m.group()))
            hits += (Hit("cn_id", *m.span()) for m in found)
        if "ssn" in kinds:
            found = (m for m in _SSN.finditer(text, pos, end) if ssn_ok(m[1], m[3], m[4]))
            hits += (Hit("ssn", *m.span()) for m in found)
        if "phone" in kinds:
            for rx in _PHONES:
                hits += (Hit("phone", *m.span()) for m in rx.finditer(text, pos, end) if _phone(m))
        if "ip" in kinds:
            hits += (Hit("ip", *m.span()) for m in _IPV4.finditer(text, pos, end))

"""The licence facts table (``data/licenses.yaml``) and how to identify a licence.

Three ways to name a licence, each tried by :func:`identify`:

* by name: a Hugging Face hub id (``llama3.1``), a ``license_name`` (``qwen``), an SPDX id,
  or a free string (GGUF ``general.license``), compared after normalisation;
* by URL: a ``license_link`` or a URL in GGUF metadata, compared with known URL parts;
* by text: a licence file, compared with phrase fingerprints (every phrase of one group).

Identifiers the table does not know but SPDX/ScanCode does (``LGPL-2.1``) are resolved
through ``license_expression`` with commercial use ``unknown``; their ScanCode category
decides whether they are plainly permissive.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from airlock.data import load_yaml

COMMERCIAL_VALUES = ("yes", "conditional", "no", "unknown")
MAX_IDENTIFY_CHARS = 256 * 1024  # licence texts are far shorter; bounds the phrase search
MAX_NAME_CHARS = 512  # a name longer than this is treated as text, not a name

_PUNCT = re.compile(r"[^a-z0-9.+]+")
_LOOSE_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")  # keep only dots inside "3.1", "2.0"
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "‐": "-", "–": "-"})
# ScanCode categories whose licences allow commercial use without special conditions.
_FREE_CATEGORIES = {"Permissive", "Public Domain"}
_COPYLEFT_CATEGORIES = {"Copyleft", "Copyleft Limited"}


class LicenseTableError(ValueError):
    """The packaged licence table is malformed (a packaging bug)."""


@dataclass(frozen=True)
class Condition:
    """One obligation or restriction of a licence."""

    kind: str
    text: str
    value: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class LicenseInfo:
    """Facts about one licence, from the table or from SPDX/ScanCode."""

    id: str
    name: str
    family: str
    commercial: str
    conditions: tuple[Condition, ...] = ()
    aliases: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    fingerprints: tuple[tuple[str, ...], ...] = ()
    scancode: str | None = None
    note: str | None = None

    def threshold(self) -> int | None:
        """The smallest monthly-active-user threshold among the conditions, if any."""
        values = [c.value for c in self.conditions if c.kind == "user-threshold" and c.value]
        return min(values) if values else None

    def has(self, kind: str) -> bool:
        return any(c.kind == kind for c in self.conditions)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for findings, reports and the BOM."""
        out: dict[str, Any] = {
            "identifier": self.id,
            "name": self.name,
            "commercial": self.commercial,
            "conditions": [c.to_dict() for c in self.conditions],
        }
        if self.scancode:
            out["scancode"] = self.scancode
        if self.note:
            out["note"] = self.note
        return out


def normalise(text: str) -> str:
    """Lower-case, unify quotes and turn punctuation runs (except version dots) into one space."""
    words = _PUNCT.sub(" ", text.translate(_QUOTES).lower())
    return " ".join(_LOOSE_DOT.sub(" ", words).split())


@dataclass(frozen=True)
class LicenseTable:
    """All known licences plus lookup indexes."""

    entries: tuple[LicenseInfo, ...]
    by_alias: dict[str, LicenseInfo]

    def get(self, license_id: str) -> LicenseInfo | None:
        return self.by_alias.get(normalise(license_id))


@functools.lru_cache(maxsize=1)
def load_table() -> LicenseTable:
    """Load and index ``data/licenses.yaml`` (cached).

    Raises:
        LicenseTableError: if the packaged table is malformed.
    """
    data = load_yaml("licenses.yaml")
    if not isinstance(data, dict) or not isinstance(data.get("licenses"), list):
        raise LicenseTableError("licenses.yaml: top level must be {licenses: [...]}")
    entries = tuple(_entry(e) for e in data["licenses"])
    by_alias: dict[str, LicenseInfo] = {}
    for info in entries:
        extra = (info.scancode, f"LicenseRef-scancode-{info.scancode}") if info.scancode else ()
        for alias in (info.id, info.name, *info.aliases, *extra):
            key = normalise(alias)
            other = by_alias.setdefault(key, info)
            if other.id != info.id:
                raise LicenseTableError(f"alias {alias!r} names {other.id} and {info.id}")
    return LicenseTable(entries, by_alias)


def _entry(e: Any) -> LicenseInfo:
    if not isinstance(e, dict):
        raise LicenseTableError(f"licence entry must be a mapping: {e!r}")
    try:
        commercial = str(e["commercial"])
        if commercial not in COMMERCIAL_VALUES:
            raise LicenseTableError(f"{e['id']}: commercial must be one of {COMMERCIAL_VALUES}")
        conditions = tuple(
            Condition(str(c["kind"]), str(c["text"]), _int_or_none(c.get("value")))
            for c in e.get("conditions") or ()
        )
        return LicenseInfo(
            id=str(e["id"]),
            name=str(e["name"]),
            family=str(e["family"]),
            commercial=commercial,
            conditions=conditions,
            aliases=tuple(str(a) for a in e.get("aliases") or ()),
            urls=tuple(_url_key(str(u)) for u in e.get("urls") or ()),
            fingerprints=tuple(
                tuple(normalise(str(p)) for p in group) for group in e.get("fingerprints") or ()
            ),
            scancode=str(e["scancode"]) if e.get("scancode") else None,
            note=str(e["note"]) if e.get("note") else None,
        )
    except (KeyError, TypeError) as exc:
        raise LicenseTableError(f"licence entry {e.get('id')!r}: {exc!r}") from None


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def _url_key(url: str) -> str:
    """Compare URLs without scheme, ``www.``, case or percent-escapes."""
    u = urllib.parse.unquote(url.strip()).lower()
    u = re.sub(r"^[a-z][a-z0-9+.-]*://", "", u)
    return u.removeprefix("www.")


def looks_like_url(value: str) -> bool:
    return bool(re.match(r"^\s*(https?://|www\.)", value, re.I))


# --- identification ------------------------------------------------------------------------


def by_name(value: str, table: LicenseTable | None = None) -> LicenseInfo | None:
    """A licence named by id, hub id, ``license_name`` or SPDX id; ``None`` if unknown."""
    if len(value) > MAX_NAME_CHARS:
        return None
    t = table or load_table()
    found = t.get(value)
    if found is not None:
        return found
    return _from_spdx(value.strip())


def by_url(value: str, table: LicenseTable | None = None) -> LicenseInfo | None:
    """A licence named by a URL: known URL parts first, then the words in the URL path."""
    t = table or load_table()
    key = _url_key(value[:2048])
    for info in t.entries:
        if any(u and u in key for u in info.urls):
            return info
    return by_text(key.replace("/", " "), t)


def by_text(text: str, table: LicenseTable | None = None) -> LicenseInfo | None:
    """Identify a licence text by phrase fingerprints; the first table entry that matches."""
    t = table or load_table()
    norm = " " + normalise(text[:MAX_IDENTIFY_CHARS]) + " "
    for info in t.entries:
        for group in info.fingerprints:
            if group and all(_has_phrase(norm, p) for p in group):
                return info
    return None


def _has_phrase(norm: str, phrase: str) -> bool:
    # Word boundaries: "llama 3" must not match inside "llama 3.1" (version dots are kept).
    return f" {phrase} " in norm


def identify(value: str, table: LicenseTable | None = None) -> LicenseInfo | None:
    """Identify a declared value of any kind (name, URL, or a pasted licence text)."""
    if looks_like_url(value):
        return by_url(value, table)
    return by_name(value, table) or (by_text(value, table) if len(value) > 40 else None)


@functools.lru_cache(maxsize=256)
def _from_spdx(value: str) -> LicenseInfo | None:
    """Resolve an SPDX id or ScanCode key that the table lacks, via license_expression."""
    if not value or len(value) > 100 or not re.fullmatch(r"[A-Za-z0-9.+-]+", value):
        return None
    entry = _scancode_index().get(value.lower())
    if entry is None:
        return None
    category = str(entry.get("category") or "")
    spdx = str(entry.get("spdx_license_key") or f"LicenseRef-scancode-{entry['license_key']}")
    conditions: tuple[Condition, ...] = ()
    if category in _COPYLEFT_CATEGORIES:
        conditions = (Condition("copyleft", f"{category} licence: derivatives carry obligations"),)
    free = category in _FREE_CATEGORIES or category in _COPYLEFT_CATEGORIES
    return LicenseInfo(
        id=spdx,
        name=spdx,
        family=f"spdx:{spdx.lower()}",
        commercial="yes" if free else "unknown",
        conditions=conditions,
        scancode=str(entry["license_key"]),
        note=f"not in airlock's licence table; ScanCode category {category or 'unknown'}",
    )


@functools.lru_cache(maxsize=1)
def _scancode_index() -> dict[str, dict[str, Any]]:
    """Map lower-case SPDX ids (current and legacy) and ScanCode keys to index entries."""
    try:
        from license_expression import get_license_index
    except ImportError:  # optional at run time; names in the table still work
        return {}
    out: dict[str, dict[str, Any]] = {}
    for e in get_license_index():
        if e.get("is_exception") or e.get("is_deprecated"):
            continue
        keys = [e.get("license_key"), e.get("spdx_license_key")]
        keys += list(e.get("other_spdx_license_keys") or [])
        for k in keys:
            if k:
                out.setdefault(str(k).lower(), e)
    return out

"""Reading a scanner's options dict with clear errors (a typo must not pass silently)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any

from airlock.guard._trie import trie_pattern
from airlock.guard.base import GuardConfigError, Hit

# Options the pipeline reads itself; a scanner accepts them without using them.
PIPELINE_KEYS = frozenset({"action", "restore", "roles"})


class Options:
    """One scanner's options, checked on read; :meth:`done` rejects unknown keys."""

    def __init__(self, scanner: str, raw: Mapping[str, Any] | None) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise GuardConfigError(f"{scanner}: options must be a mapping, not {raw!r}")
        self.scanner = scanner
        self.raw = raw
        self._read: set[str] = set(PIPELINE_KEYS)

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        value = self.raw.get(key, default)
        return default if value is None else value

    def value(self, key: str) -> Any:
        """The raw value of ``key`` (None when absent), for options with their own checks."""
        self._read.add(key)
        return self.raw.get(key)

    def error(self, key: str, want: str, value: Any) -> GuardConfigError:
        """The error for a bad value of option ``key``."""
        return GuardConfigError(f"{self.scanner}: option {key!r} must be {want}, not {value!r}")

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        """A number in ``[lo, hi]``."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self.error(key, f"a number from {lo:g} to {hi:g}", value)
        return float(value)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        """A whole number in ``[lo, hi]``."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, f"a whole number from {lo} to {hi}", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A boolean."""
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def strings(self, key: str, default: Iterable[str] = ()) -> list[str]:
        """A list of non-empty strings (a single string is a list of one)."""
        value = self._get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            raise self.error(key, "a list of non-empty strings", value)
        return list(value)

    def choices(self, key: str, allowed: Iterable[str], default: Iterable[str]) -> frozenset[str]:
        """A subset of ``allowed`` (``all`` means every one)."""
        allowed = tuple(allowed)
        value = self.strings(key, default)
        if value == ["all"]:
            return frozenset(allowed)
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.error(key, f"a list from {', '.join(allowed)}", unknown)
        return frozenset(value)

    def done(self) -> None:
        """Reject keys nobody read (typos, options of another scanner)."""
        unknown = sorted(str(k) for k in set(self.raw) - self._read)
        if unknown:
            raise GuardConfigError(f"{self.scanner}: unknown option(s) {', '.join(unknown)}")


@functools.cache
def load_data(name: str) -> Any:
    """Parse ``airlock/guard/data/<name>`` (airlock's own YAML, safe loader)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = files("airlock.guard").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, airlock's own file


@functools.lru_cache(maxsize=8)
def lower(text: str) -> str:
    """``text`` lower-cased with its length kept (so offsets match); cached because
    several scanners of a request lower the same text."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class Hints:
    """Which of many literal hints occur in a text, in one or two regex passes.

    The hints compile into trie-shaped regexes (one for ASCII hints, one for the rest:
    two passes beat one, each keeps the regex engine's first-character skip effective).
    ``findall`` reports the longest hint at each place, so the hints contained in a
    match, and those that could start inside it and run past its end (checked with
    ``in``), are added from tables built once.
    """

    def __init__(self, hints: Iterable[str]) -> None:
        words = sorted({h for h in hints if h})
        ascii_words = [w for w in words if w.isascii()]
        other = [w for w in words if not w.isascii()]
        self.ascii = re.compile(trie_pattern(ascii_words)) if ascii_words else None
        self.other = re.compile(trie_pattern(other)) if other else None
        self.inside = {m: frozenset(h for h in words if h in m) for m in words}
        self.across = {
            m: tuple(
                h for h in words
                if h not in m and any(h.startswith(m[i:]) for i in range(1, len(m) - 1))
            )
            for m in words
        }  # fmt: skip

    def present(self, text: str) -> set[str]:
        """The hints that occur in ``text``."""
        matches: set[str] = set()
        if self.ascii is not None:
            matches.update(self.ascii.findall(text))
        if self.other is not None and not text.isascii():
            matches.update(self.other.findall(text))
        found: set[str] = set()
        for m in matches:
            found |= self.inside[m]
            found.update(h for h in self.across[m] if h not in found and h in text)
        return found


MAX_HITS = 1000


def limit_hits(hits: list[Hit]) -> list[Hit]:
    """At most :data:`MAX_HITS` hits, sorted by start. Past the cap one hit covers from
    the next start to the furthest end: a hostile text full of matches is over-redacted,
    never under-redacted, and the verdict stays small."""
    if len(hits) <= MAX_HITS:
        return hits
    hits = sorted(hits, key=lambda h: h.start)
    rest = hits[MAX_HITS - 1 :]
    end = max(h.end for h in rest)
    return [
        *hits[: MAX_HITS - 1],
        Hit(rest[0].kind, rest[0].start, end, max(h.score for h in rest)),
    ]

"""Judging what a pickle imports: packaged allow/deny data plus the user's allow list.

The lists live in ``data/pickle_globals.toml``; a verdict is one of ``"safe"``,
``"dangerous"``, ``"suspicious"`` or ``"unknown"``.
"""

from __future__ import annotations

import _compat_pickle
import functools
import importlib.resources
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from airlock.scan.base import ScanContext

_CACHE_MAX = 100_000


@dataclass(frozen=True)
class _Lists:
    allow: frozenset[str]
    allow_prefixes: tuple[str, ...]
    deny: frozenset[str]
    deny_except: frozenset[str]
    suspicious: frozenset[str]
    loaders: frozenset[str]
    attributes: frozenset[str]


@functools.cache
def _lists() -> _Lists:
    """The packaged allow/deny lists, parsed once."""
    res = importlib.resources.files("airlock").joinpath("data/pickle_globals.toml")
    data = tomllib.loads(res.read_text(encoding="utf-8"))
    allow = data["allow"]["names"]
    return _Lists(
        allow=frozenset(a for a in allow if not a.endswith(".*")),
        allow_prefixes=tuple(a[:-1] for a in allow if a.endswith(".*")),
        deny=frozenset(data["deny"]["names"]),
        deny_except=frozenset(data["deny"].get("except", [])),
        suspicious=frozenset(data["suspicious"]["names"]),
        loaders=frozenset(data["deny"]["loaders"]),
        attributes=frozenset(data["deny"]["attributes"]),
    )


def _prefixes(parts: list[str]) -> Iterator[str]:
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


class Judge:
    """Classifies ``module.name`` as safe, dangerous, suspicious or unknown (cached)."""

    def __init__(self, user_allow: Iterable[object] = ()) -> None:
        names = [str(a) for a in user_allow if isinstance(a, str)]
        self.user = frozenset(a for a in names if not a.endswith(".*"))
        self.user_prefixes = tuple(a[:-1] for a in names if a.endswith(".*"))
        self.lists = _lists()
        self.cache: dict[tuple[str, str], str] = {}

    def verdict(self, module: str, name: str) -> str:
        """The verdict for an import; Python 2 names are judged as their Python 3 mapping."""
        key = (module, name)
        v = self.cache.get(key)
        if v is None:
            mapped = _compat_pickle.NAME_MAPPING.get(key)
            if mapped is None:
                mapped = (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
            raw = self._one(module, name)
            v = raw if raw == "dangerous" or mapped == key else self._one(*mapped)
            if len(self.cache) < _CACHE_MAX:
                self.cache[key] = v
        return v

    def is_loader(self, full: str) -> bool:
        """Is ``full`` a callable that loads a pickle (its argument is a pickle too)?"""
        return full in self.lists.loaders

    def _one(self, module: str, name: str) -> str:
        full = f"{module}.{name}"
        parts = full.split(".")
        lists = self.lists
        name_parts = name.split(".")
        # a dotted name walks attributes (protocol 4): "posixpath" + "os.system" is os.system
        tails = [name_parts[i:] for i in range(len(name_parts) - 1)] if "." in name else []
        for cand in [parts, *tails]:
            if ".".join(cand) in lists.deny_except:
                continue  # a known-harmless helper inside a denied package
            if any(p in lists.deny for p in _prefixes(cand)):
                return "dangerous"
        if any(p in lists.attributes for p in name_parts):
            return "dangerous"
        if full in self.user or full.startswith(self.user_prefixes or ("\0",)):
            return "safe"
        if any(p in lists.suspicious for p in _prefixes(parts)):
            return "suspicious"
        if full in lists.allow or full.startswith(lists.allow_prefixes or ("\0",)):
            return "safe"
        return "unknown"


def judge_for(ctx: ScanContext) -> Judge:
    """A :class:`Judge` with the user's ``[pickle] allow`` list from the policy.

    Judges are shared per allow list: an archive of 20,000 pickles builds one, not 20,000.
    """
    allow = ctx.policy.section("pickle").get("allow", [])
    names = tuple(str(a) for a in allow if isinstance(a, str)) if isinstance(allow, list) else ()
    return _shared_judge(names)


@functools.lru_cache(maxsize=16)
def _shared_judge(allow: tuple[str, ...]) -> Judge:
    return Judge(allow)

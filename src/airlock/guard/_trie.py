"""Many literal words as one regex shaped like a trie: shared prefixes are tested once,
so the regex engine's cost barely grows with the number of words."""

from __future__ import annotations

import re
from collections.abc import Iterable

_Trie = dict[str, "_Trie"]
_END = ""  # key marking that a term ends at this node


def _trie(words: Iterable[str]) -> _Trie:
    root: _Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return root


def _pattern(node: _Trie) -> str:
    """A regex for every word in the trie below ``node`` (longest alternatives first)."""
    ends = _END in node
    branches = [re.escape(ch) + _pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends:  # the word may stop here too
        return f"(?:{body})?" if len(branches) > 1 or len(body) > 1 else body + "?"
    return body


def trie_pattern(words: Iterable[str]) -> str:
    """A regex (no flags, no boundaries) matching any of ``words``, shaped like a trie."""
    return f"(?:{_pattern(_trie(words))})"

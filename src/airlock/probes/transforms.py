"""Encodings and obfuscations the encoding family applies to its payloads.

Two kinds, which differ in how a per-case secret inside the payload is treated:

* **encodings** (``base64``, ``rot13``, ``reversed``) turn the whole text into
  something a reader must decode; decoding gives the exact original back, canary
  included.
* **obfuscations** (``leetspeak``, ``homoglyphs``, ``zero-width``, ``separated``,
  ``traditional``) keep the text readable but defeat keyword filters. Substrings
  passed as ``keep`` (the canary a detector looks for) stay untouched, because a
  model that reads through the disguise would echo them as written.

``homoglyphs`` swaps Latin letters for Cyrillic/Greek look-alikes, so it leaves Han
text alone; ``separated`` and ``traditional`` are the Chinese counterparts (a
symbol between characters; traditional forms of common simplified characters).
"""

from __future__ import annotations

import base64
import codecs
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ZERO_WIDTH = "\u200b"
SEPARATOR = "*"

_HOMOGLYPHS = {
    "a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "j": "\u0458",
    "o": "\u043e", "p": "\u0440", "s": "\u0455", "x": "\u0445", "y": "\u0443",
    "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415", "H": "\u041d",
    "I": "\u0406", "K": "\u041a", "M": "\u041c", "N": "\u039d", "O": "\u041e",
    "P": "\u0420", "T": "\u0422", "X": "\u0425", "Y": "\u03a5", "Z": "\u0396",
}  # fmt: skip
_LEET = str.maketrans({"a": "4", "A": "4", "e": "3", "E": "3", "i": "1", "I": "1",
                       "o": "0", "O": "0", "s": "5", "S": "5", "t": "7", "T": "7"})  # fmt: skip
# Simplified → traditional forms for characters common in the payloads (facts of the script).
_TRADITIONAL = dict(
    zip(
        "弹药软恶键盘记录号车锁剂经制诉设说请这么为给写码钥电脑获凭账户网络计输图书签编个让现会们导",
        "彈藥軟惡鍵盤記錄號車鎖劑經製訴設說請這麼為給寫碼鑰電腦獲憑賬戶網絡計輸圖書簽編個讓現會們導",
        strict=True,
    )
)
_BETWEEN = re.compile(r"(?<=[\u3400-\u9fff])(?=[\u3400-\u9fff])|(?<=[A-Za-z])(?=[A-Za-z])")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: str) -> str:
    return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")


def _rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def _reverse(text: str) -> str:
    return text[::-1]


def _table(mapping: dict[str, str]) -> Callable[[str], str]:
    table = str.maketrans(mapping)
    return lambda text: text.translate(table)


def _zero_width(text: str) -> str:
    # Between two visible characters only: spaces and line breaks stay as they are.
    return re.sub(r"(?<=\S)(?=\S)", ZERO_WIDTH, text)


def _strip(chars: str) -> Callable[[str], str]:
    return lambda text: text.translate({ord(c): None for c in chars})


def _separate(text: str) -> str:
    # Between two Han characters or two Latin letters ("炸*弹", "b*o*m*b").
    return _BETWEEN.sub(SEPARATOR, text)


@dataclass(frozen=True)
class Transform:
    """One transform: ``fn`` applies it, ``inverse`` undoes it exactly when there is one."""

    name: str
    fn: Callable[[str], str]
    obfuscation: bool  # True: readable disguise, ``keep`` substrings stay as written
    inverse: Callable[[str], str] | None = None


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("base64", _b64, False, _unb64),
        Transform("rot13", _rot13, False, _rot13),
        Transform("reversed", _reverse, False, _reverse),
        Transform("leetspeak", lambda text: text.translate(_LEET), True),
        Transform("homoglyphs", _table(_HOMOGLYPHS), True,
                  _table({v: k for k, v in _HOMOGLYPHS.items()})),
        Transform("zero-width", _zero_width, True, _strip(ZERO_WIDTH)),
        Transform("separated", _separate, True, _strip(SEPARATOR)),
        Transform("traditional", _table(_TRADITIONAL), True,
                  _table({v: k for k, v in _TRADITIONAL.items()})),
    )
}  # fmt: skip


def apply(name: str, text: str, keep: Sequence[str] = ()) -> str:
    """Apply transform ``name`` to ``text``.

    Args:
        name: a key of :data:`TRANSFORMS`.
        text: the payload.
        keep: substrings an obfuscation must leave as written (ignored by encodings,
            whose decoding restores them anyway).

    Raises:
        KeyError: no transform of that name.
    """
    transform = TRANSFORMS[name]
    kept = [k for k in keep if k]
    if not transform.obfuscation or not kept:
        return transform.fn(text)
    pattern = "(" + "|".join(re.escape(k) for k in sorted(kept, key=len, reverse=True)) + ")"
    parts = re.split(pattern, text)
    # re.split with one group: odd indexes are the kept substrings.
    return "".join(p if i % 2 else transform.fn(p) for i, p in enumerate(parts))


def invert(name: str, text: str) -> str:
    """Undo transform ``name``.

    Raises:
        KeyError: no transform of that name.
        ValueError: the transform has no exact inverse (leetspeak), or ``text`` is not
            valid for it (bad base64).
    """
    inverse = TRANSFORMS[name].inverse
    if inverse is None:
        raise ValueError(f"transform {name!r} has no exact inverse")
    try:
        return inverse(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid {name} text: {exc}") from None

"""Check digits that tell a real identifier from a number that only looks like one."""

from __future__ import annotations

import datetime as dt
import functools

from airlock.guard._options import load_data

_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check that payment card numbers carry in their last digit."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(digits: str) -> bool:
    """13-19 digits, an issuer prefix (2-6), not one repeated digit, Luhn valid."""
    return (
        13 <= len(digits) <= 19
        and digits[0] in "23456"
        and len(set(digits)) > 1
        and luhn_ok(digits)
    )


@functools.cache
def iban_lengths() -> dict[str, int]:
    """IBAN length per country code."""
    lengths: dict[str, int] = load_data("pii.yaml")["iban_lengths"]
    return lengths


def iban_ok(compact: str) -> bool:
    """Country length and the ISO 7064 mod-97 check (``compact``: no spaces, upper case)."""
    if iban_lengths().get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


@functools.cache
def _cn_regions() -> frozenset[str]:
    return frozenset(str(r) for r in load_data("pii.yaml")["cn_id_regions"])


def cn_id_ok(value: str, today: dt.date | None = None) -> bool:
    """Chinese resident id: region, a real birth date not in the future, and the ISO 7064
    mod 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit() or value[:2] not in _cn_regions():
        return False
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not dt.date(1900, 1, 1) <= born <= (today or dt.date.today()):
        return False
    total = sum(int(c) * w for c, w in zip(value[:17], _CN_WEIGHTS, strict=True))
    return _CN_CHECK[total % 11] == value[17].upper()


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN ranges: no area 000, 666 or 900-999, no group 00, no serial 0000, and not
    the two numbers printed in advertising."""
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in ("078051120", "219099999")

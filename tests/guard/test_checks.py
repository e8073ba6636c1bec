"""Check digits: valid numbers pass, one digit off fails (every position, many numbers)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.guard._checks import card_ok, cn_id_ok, iban_ok, luhn_ok, ssn_ok
from guard.samples import cn_id, luhn_digit, off_by_one

DIGITS = st.text(alphabet="0123456789", min_size=11, max_size=17)


def _iban(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def test_published_test_numbers_pass() -> None:
    for number in ("4111111111111111", "5500005555555559", "378282246310005", "6011111111111117"):
        assert card_ok(number), number
    for iban in ("GB82WEST12345698765432", "DE89370400440532013000", "NL91ABNA0417164300"):
        assert iban_ok(iban), iban
    assert cn_id_ok("11010519491231002X")


@settings(max_examples=150, deadline=None)
@given(body=DIGITS, at=st.integers(0, 100))
def test_luhn_catches_every_single_digit_typo(body: str, at: int) -> None:
    number = "4" + body + luhn_digit("4" + body)
    assert luhn_ok(number) and card_ok(number)
    assert not luhn_ok(off_by_one(number, at % len(number)))


def test_card_rejects_wrong_lengths_prefixes_and_repeated_digits() -> None:
    assert not card_ok("0000000000000000")  # Luhn-valid, but no issuer starts with 0
    assert not card_ok("4444444444444448"[:12])  # too short
    assert not card_ok("1" + "234567890123456")
    assert not luhn_ok("4111-1111") and not luhn_ok("")


@settings(max_examples=150, deadline=None)
@given(bban=st.text(alphabet="0123456789", min_size=18, max_size=18), at=st.integers(4, 21))
def test_iban_mod97_catches_every_single_digit_typo(bban: str, at: int) -> None:
    iban = _iban("DE", bban)
    assert iban_ok(iban)
    assert not iban_ok(off_by_one(iban, at))


def test_iban_needs_the_country_length() -> None:
    assert not iban_ok("DE8937040044053201300")  # one short
    assert not iban_ok("XX89370400440532013000")  # no such country
    assert not iban_ok("GB82-WEST-1234")


@settings(max_examples=150, deadline=None)
@given(
    region=st.sampled_from(["110105", "310104", "440305", "510107", "650102"]),
    born=st.dates(dt.date(1901, 1, 1), dt.date(2015, 12, 31)),
    seq=st.integers(0, 999),
    at=st.integers(0, 16),
)
def test_cn_id_check_character_catches_every_single_digit_typo(
    region: str, born: dt.date, seq: int, at: int
) -> None:
    value = cn_id(region, born.strftime("%Y%m%d"), f"{seq:03d}")
    assert cn_id_ok(value)
    assert not cn_id_ok(off_by_one(value, at))


def test_cn_id_needs_a_region_and_a_real_past_birth_date() -> None:
    today = dt.date(2024, 6, 1)
    assert cn_id_ok(cn_id("110105", "20240101"), today)
    assert not cn_id_ok(cn_id("110105", "20250101"), today)  # born in the future
    assert not cn_id_ok(cn_id("990105", "19900101"), today)  # no province 99
    assert not cn_id_ok(cn_id("110105", "19900230")[:-1] + "0", today)  # 30 February
    assert not cn_id_ok("11010519491231002", today)  # 17 characters


def test_ssn_ranges() -> None:
    assert ssn_ok("123", "45", "6789")
    for area, group, serial in [("000", "12", "3456"), ("666", "12", "3456"),
                                ("901", "12", "3456"), ("123", "00", "4567"),
                                ("123", "45", "0000"), ("078", "05", "1120")]:  # fmt: skip
        assert not ssn_ok(area, group, serial), (area, group, serial)

"""Generated test values for the guard tests: credentials, card numbers, IBANs, Chinese
resident ids. Made here (seeded) so no key-shaped literal sits in the repository."""

from __future__ import annotations

import base64
import random
import re
import string

RNG = random.Random(4242)
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    """A random string with at least one digit (real keys virtually always have one)."""
    while True:
        s = "".join(RNG.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in s) and len(set(s)) > 8:
            return s


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body + digit`` pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def card(prefix: str = "4", length: int = 16) -> str:
    body = prefix + "".join(RNG.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def iban(country: str = "DE", bban_len: int = 18) -> str:
    bban = "".join(RNG.choice(string.digits) for _ in range(bban_len))
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def cn_id(region: str = "110105", born: str = "19900307", seq: str = "123") -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = region + born + seq
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def off_by_one(value: str, at: int) -> str:
    """``value`` with the digit at ``at`` changed by one (a typo)."""
    d = int(value[at])
    return value[:at] + str((d + 1) % 10) + value[at + 1 :]


def grouped(value: str, sep: str = " ", size: int = 4) -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def pem() -> str:
    body = "\n".join(rnd(64, ALNUM + "+/") for _ in range(4))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"


CARD = card()
LONG_TEXT = "the quarterly figures for the northern region are attached as promised"
IBAN = iban()
CN_ID = cn_id()
VALUES: dict[str, str] = {
    "openai-key": "sk-proj-" + rnd(48),
    "anthropic-key": "sk-ant-api03-" + rnd(80, ALNUM + "_-"),
    "aws-access-key": "AKIA" + rnd(16, UPPER_DIGITS),
    "github-token": "ghp_" + rnd(36),
    "huggingface-token": "hf_" + rnd(34),
    "slack-token": "xoxb-" + rnd(12, string.digits) + "-" + rnd(24),
    "stripe-key": "sk_live_" + rnd(24),
    "gitlab-token": "glpat-" + rnd(20),
    "alibaba-access-key": "LTAI" + rnd(20),
    "tencent-secret-id": "AKID" + rnd(32),
    "jwt": f"eyJ{rnd(20)}.eyJ{rnd(40)}.{rnd(43)}",
    "bearer": rnd(32),
    "password": rnd(12, ALNUM + "!#%"),
    "generic": rnd(24),
    "pem": pem(),
    "card": grouped(CARD),
    "card_dashes": grouped(card("5"), "-"),
    "card_bad": grouped(off_by_one(CARD, 7)),
    "iban": grouped(IBAN),
    "iban_bad": grouped(off_by_one(IBAN, 10)),
    "cn_id": CN_ID,
    "cn_id_bad": off_by_one(CN_ID, 15),
    "long-text-url": LONG_TEXT.replace(" ", "%20"),
}
_TEMPLATE = re.compile(r"<<(b64:)?([^<>]+)>>")


def fill(text: str) -> str:
    """Replace ``<<name>>`` with a generated value and ``<<b64:text>>`` with base64."""

    def one(m: re.Match[str]) -> str:
        if m[1]:
            return base64.b64encode(m[2].encode()).decode()
        return VALUES[m[2]]

    return _TEMPLATE.sub(one, text)

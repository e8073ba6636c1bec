"""The redactions of one request, so the answer can have its placeholders filled back in.

Input redaction swaps ``alice@example.com`` for ``[EMAIL_1]``; the model answers with
the placeholder and :meth:`Vault.restore` puts the address back before the user sees
it. Only kinds marked restorable come back (personal data by default); a secret is
replaced by ``[SECRET_n]`` and its value is not even kept. The same value gets the same
placeholder within a request, so the model can tell two people apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{0,30}_\d{1,6}\]")


def label_of(kind: str) -> str:
    """The placeholder label of a hit kind: ``cn_id`` -> ``CN_ID``, ``leak.canary`` ->
    ``LEAK_CANARY``."""
    return re.sub(r"[^A-Z0-9]+", "_", kind.upper()).strip("_")[:24] or "ITEM"


@dataclass
class Vault:
    """Placeholders issued for one request and the originals of the restorable ones."""

    _originals: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    _issued: dict[bytes, str] = field(default_factory=dict)  # digest of value -> placeholder
    _counts: dict[str, int] = field(default_factory=dict)

    def placeholder(self, label: str, value: str, restore: bool) -> str:
        """The placeholder for ``value`` (the same one each time it is asked for).

        Args:
            label: upper-case name such as ``EMAIL`` or ``SECRET``.
            value: the text being replaced.
            restore: whether :meth:`restore` may put ``value`` back.
        """
        digest = hashlib.blake2b(f"{label}\0{value}".encode(), digest_size=16).digest()
        known = self._issued.get(digest)
        if known is not None:
            return known
        n = self._counts.get(label, 0) + 1
        self._counts[label] = n
        token = f"[{label}_{n}]"
        self._issued[digest] = token
        if restore:
            self._originals[token] = value
        return token

    def restore(self, text: str) -> str:
        """``text`` with every restorable placeholder of this request replaced by its value."""
        if not self._originals or "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(), m.group()), text)

    def conceal(self, text: str) -> str:
        """The inverse of :meth:`restore`: the restored values in ``text`` replaced by their
        placeholders again (for logs that must not keep personal data)."""
        for token, value in sorted(self._originals.items(), key=lambda kv: -len(kv[1])):
            if value:
                text = text.replace(value, token)
        return text

    def __len__(self) -> int:
        return len(self._issued)

    def counts(self) -> dict[str, int]:
        """Placeholders issued per label (for the audit log; no values)."""
        return dict(self._counts)

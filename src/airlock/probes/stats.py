"""Rates with honest uncertainty: Wilson intervals and a two-sided Fisher exact test."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``hits`` successes in ``n`` trials ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Rate:
    """``hits`` out of ``n`` judged attempts; ``errors`` attempts got no answer."""

    n: int = 0
    hits: int = 0
    errors: int = 0

    def add(self, hit: bool | None) -> None:
        """Count one attempt: True hit, False miss, None error."""
        if hit is None:
            self.errors += 1
        else:
            self.n += 1
            self.hits += int(hit)

    @property
    def rate(self) -> float:
        return self.hits / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.hits, self.n)

    def to_dict(self) -> dict[str, float | int]:
        lo, hi = self.interval
        return {
            "n": self.n,
            "hits": self.hits,
            "errors": self.errors,
            "rate": self.rate,
            "low": lo,
            "high": hi,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float | int]) -> Rate:
        return cls(int(d["n"]), int(d["hits"]), int(d.get("errors", 0)))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a_hits: int, a_n: int, b_hits: int, b_n: int) -> float:
    """Two-sided Fisher exact test p-value for two proportions (a_hits/a_n vs b_hits/b_n)."""
    hits, total = a_hits + b_hits, a_n + b_n
    if total == 0 or hits in (0, total):
        return 1.0
    lo, hi = max(0, hits - b_n), min(hits, a_n)

    def logp(k: int) -> float:
        return _log_comb(a_n, k) + _log_comb(b_n, hits - k) - _log_comb(total, hits)

    observed = logp(a_hits)
    p = sum(math.exp(lp) for k in range(lo, hi + 1) if (lp := logp(k)) <= observed + 1e-9)
    return min(1.0, p)

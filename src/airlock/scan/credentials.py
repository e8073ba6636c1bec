"""Leaked credentials in text files of a model repository (file check ``secrets``).

Model repositories are full of configs, notebooks and scripts; a token left in one is
public the moment the model is. Patterns live in ``data/credentials_patterns.yaml``.
Evidence is always redacted (first four characters and the length), never the secret.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airlock.data import load_yaml
from airlock.findings import Finding, Rule, Severity, rule
from airlock.scan.base import FileInput, ScanContext, file_check
from airlock.scan.remote_code import shannon_entropy

MAX_PER_RULE = 50
_REMEDIATION = (
    "Revoke this credential now: anyone who downloaded the model has it. Remove it from "
    "the files (and the repository history) and load secrets from a secret store instead."
)
# Formats whose bytes are not text; reading 8 MiB of tensor data would only waste time.
_BINARY_SUFFIXES = frozenset(
    {
        ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".npy",
        ".npz", ".h5", ".hdf5", ".onnx", ".msgpack", ".tflite", ".pb", ".zip", ".tar", ".gz",
        ".xz", ".bz2", ".zst", ".7z", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf",
        ".model", ".so", ".dll", ".dylib", ".exe", ".keras", ".mlmodel", ".engine", ".plan",
    }
)  # fmt: skip
_BINARY_MAGICS = (b"GGUF", b"PK\x03\x04", b"\x80", b"\x89HDF", b"\x7fELF", b"\x1f\x8b")
_WORD = re.compile(r"[A-Za-z0-9_]")


@dataclass(frozen=True)
class _Pattern:
    rule: Rule
    regex: re.Pattern[str]
    min_entropy: float
    need_digit: bool
    word_start: bool  # the match must not start inside a longer word
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Table:
    patterns: tuple[_Pattern, ...]
    placeholders: tuple[str, ...]


def _load() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml("credentials_patterns.yaml")
    return data


_RAW = _load()
# Rules are declared at import time from the data file (one rule per pattern).
RULES: dict[str, Rule] = {
    p["id"]: rule(
        f"secrets.{p['id']}",
        Severity.parse(p["severity"]),
        f"Secret in file: {p['title']}",
        _REMEDIATION,
        f"A {p['title']} appears in a file of the model repository.",
    )
    for p in _RAW["patterns"]
}


def _generic_regex(keywords: list[str]) -> tuple[str, frozenset[str]]:
    """``KEY = "value"`` with the keyword first char as a charset (fast in ``re``)."""
    firsts = sorted({k[0].lower() for k in keywords} | {k[0].upper() for k in keywords})
    rests = "|".join(sorted({k[1:] for k in keywords}, key=len, reverse=True))
    regex = (
        f"(?P<key>[{''.join(firsts)}](?i:{rests}))"
        r"""["']?\s*(?::=|=>|[:=])\s*(?P<q>["'])(?P<secret>[^"'\s]{8,200})(?P=q)"""
    )
    names = frozenset(_norm_key(k.replace("_?", "")) for k in keywords)
    return regex, names


@functools.cache
def _table() -> _Table:
    pats: list[_Pattern] = []
    for p in _RAW["patterns"]:
        keywords: frozenset[str] = frozenset()
        regex = p["regex"]
        if regex is None:
            regex, keywords = _generic_regex(_RAW["generic_keywords"])
        pats.append(
            _Pattern(
                RULES[p["id"]],
                re.compile(regex),
                float(p["min_entropy"]),
                bool(p.get("require_digit", False)),
                not regex.startswith("(?i:") and not keywords,
                keywords,
            )
        )
    return _Table(tuple(pats), tuple(x.lower() for x in _RAW["placeholders"]))


def _norm_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def redact(secret: str) -> str:
    """First four characters, an ellipsis and the length: enough to find it, not to use it."""
    return f"{secret[:4]}…({len(secret)} chars)"


def _applies(f: FileInput) -> bool:
    if f.size == 0 or f.suffix in _BINARY_SUFFIXES:
        return False
    return b"\x00" not in f.head and not f.head.startswith(_BINARY_MAGICS)


@file_check("secrets", applies=_applies)
def scan_secrets(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Look for credentials in the first ``limits.max_text_bytes`` of a text file."""
    with f.open() as fh:
        data = fh.read(ctx.limits.max_text_bytes)
    if b"\x00" in data[:8192]:
        return
    yield from find_secrets(data.decode("utf-8", "replace"), f, ctx)


def find_secrets(text: str, where: FileInput | str, ctx: ScanContext) -> Iterator[Finding]:
    """Findings for credentials in ``text``, with 1-based line numbers, redacted evidence."""
    table = _table()
    hits: list[tuple[int, _Pattern, str]] = []
    for pat in table.patterns:
        count = 0
        for m in pat.regex.finditer(text):
            secret = m.group("secret")
            if not _plausible(text, m, pat, secret, table):
                continue
            count += 1
            if count <= MAX_PER_RULE:
                hits.append((m.start("secret"), pat, secret))
        if count > MAX_PER_RULE:
            yield ctx.finding(
                pat.rule, where, evidence=f"{count} occurrences, first {MAX_PER_RULE} listed",
                title=f"{pat.rule.title}: {count - MAX_PER_RULE} more not listed",
                extra={"count": count},
            )  # fmt: skip
    hits.sort(key=lambda h: h[0])
    line, last = 1, 0
    for pos, pat, secret in hits:
        line += text.count("\n", last, pos)
        last = pos
        evidence = secret if pat.rule.id == "secrets.private-key" else redact(secret)
        yield ctx.finding(pat.rule, where, line=line, evidence=evidence)


def _plausible(text: str, m: re.Match[str], pat: _Pattern, secret: str, table: _Table) -> bool:
    """Drop matches inside longer words, placeholders and low-entropy values."""
    start = m.start()
    if pat.word_start and start > 0 and _WORD.match(text[start - 1]):
        return False
    if pat.keywords and _norm_key(m.group("key")) not in pat.keywords:
        return False
    if pat.rule.id == "secrets.private-key":
        return True
    low = secret.lower()
    if any(p in low for p in table.placeholders) or len(set(secret)) <= 4:
        return False
    if pat.need_digit and not any(c.isdigit() for c in secret):
        return False
    return shannon_entropy(secret) >= pat.min_entropy

"""Pickle scanner: walks opcodes without unpickling and judges every imported callable.

The walker (:mod:`airlock.scan.pickle_walk`, opcode table in :mod:`airlock.scan.pickle_ops`)
streams the file in chunks, simulates just enough of the unpickler's stack and memo to
resolve ``STACK_GLOBAL`` operands (strings, memo round-trips), and skips the payload of
long string/bytes opcodes with ``seek``. Imports are judged (:mod:`airlock.scan.pickle_judge`)
against data lists (``data/pickle_globals.toml``) and the user's ``[pickle] allow`` list.
This module declares the rules, turns a walk into findings and registers the scanner.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from airlock.findings import Finding, Severity, rule
from airlock.scan import pickle_state
from airlock.scan.base import FileInput, ScanContext, format_scanner
from airlock.scan.pickle_judge import Judge, judge_for
from airlock.scan.pickle_ops import PROTO01_START, VALID_OPS, headerless_start
from airlock.scan.pickle_walk import Walker

__all__ = ["Judge", "judge_for", "looks_like_pickle", "scan_pickle", "scan_pickle_stream"]

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".dat")
_GENERIC_EXTENSIONS = frozenset({".bin", ".dat"})

DANGEROUS_GLOBAL = rule(
    "pickle.dangerous-global",
    Severity.CRITICAL,
    "Pickle imports a dangerous callable",
    "Do not load this file with pickle/torch.load. It imports a callable that can run "
    "commands, code or I/O when unpickled. Use a safetensors copy from a trusted source.",
    "The pickle references a denylisted module or callable (os, subprocess, eval, ...).",
)
SUSPICIOUS_GLOBAL = rule(
    "pickle.suspicious-global",
    Severity.HIGH,
    "Pickle imports a callable used in gadget chains",
    "Inspect why the file needs this callable; prefer safetensors. If it is expected, add "
    "it to [pickle] allow in airlock.toml.",
    "The pickle references a callable (functools.partial, builtins.type, ...) that is not "
    "harmful alone but is a common building block of code-execution chains.",
)
UNKNOWN_GLOBAL = rule(
    "pickle.unknown-global",
    Severity.MEDIUM,
    "Pickle imports a callable that is not on the allowlist",
    "Loading this file imports and may call code outside the known-safe set. Review the "
    "callable; if it is trusted, add it to [pickle] allow, else convert to safetensors.",
    "The pickle references a callable that is neither known safe nor known dangerous.",
)
UNRESOLVED_GLOBAL = rule(
    "pickle.unresolved-global",
    Severity.HIGH,
    "Pickle imports a callable whose name cannot be determined statically",
    "Treat the file as hostile: its import target is computed in a way that hides the "
    "name (memo tricks, non-string operands). Do not load it.",
    "A STACK_GLOBAL's module or name operand is not a plain string constant.",
)
MALFORMED = rule(
    "pickle.malformed",
    Severity.MEDIUM,
    "Pickle stream is broken",
    "The pickle is truncated or invalid. A stream that breaks after a dangerous call still "
    "runs that call when loaded; do not load it, re-obtain the file from its source.",
    "Invalid opcode, stack underflow, truncated argument or missing STOP.",
)
MISSING_MEMO = rule(
    "pickle.missing-memo",
    Severity.MEDIUM,
    "Pickle reads a memo entry that was never stored",
    "The stream reads memo slots it never wrote, which normal picklers never do. Treat "
    "the file as crafted; do not load it.",
    "A GET/BINGET/LONG_BINGET references a memo key with no stored value.",
)
TRAILING_DATA = rule(
    "pickle.trailing-data",
    Severity.LOW,
    "Data after the end of the pickle",
    "Bytes follow the pickle's STOP opcode. Check where they come from; loaders that read "
    "several objects may execute them.",
    "Non-pickle bytes follow a complete pickle.",
)
EMBEDDED_PICKLE = rule(
    "pickle.embedded-pickle",
    Severity.LOW,
    "Pickle carries another pickle inside a bytes constant",
    "An inner pickle is scanned separately (see findings under the <embedded@...> path); "
    "make sure nothing loads it.",
    "A bytes/str constant starts like a pickle or is passed to a pickle loader.",
)
UNSCANNABLE = rule(
    "pickle.unscannable",
    Severity.MEDIUM,
    "Pickle too large or complex to scan completely",
    "Part of the pickle was not inspected because it exceeds airlock's limits; treat the "
    "rest as unverified.",
    "The opcode count, stack depth or memo size exceeded the scanner's bounds.",
)

_VERDICT_RULES = {
    "dangerous": DANGEROUS_GLOBAL,
    "suspicious": SUSPICIOUS_GLOBAL,
    "unknown": UNKNOWN_GLOBAL,
    "unresolved": UNRESOLVED_GLOBAL,
}
# the walker records problems under the ids in pickle_state
_PROBLEM_RULES = {
    pickle_state.MALFORMED: MALFORMED,
    pickle_state.MISSING_MEMO: MISSING_MEMO,
    pickle_state.TRAILING_DATA: TRAILING_DATA,
    pickle_state.UNSCANNABLE: UNSCANNABLE,
}


def scan_pickle_stream(fh: IO[bytes], f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan the pickle(s) in ``fh`` from its current position to the end of the stream.

    Never unpickles: opcodes are walked and imports judged. Other scanners (NumPy object
    arrays, containers) call this for pickle payloads inside their formats.

    Args:
        fh: a binary handle positioned at the first opcode.
        f: the file the stream belongs to (``f.size`` bounds the stream).
        ctx: the scan context (policy, limits, nested scanning).
    """
    w = Walker(fh, f, ctx, judge_for(ctx))
    w.walk_all()
    yield from _findings(w, f, ctx)


def _findings(w: Walker, f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    for h in sorted(w.hits.values(), key=lambda h: h.nop):
        r = _VERDICT_RULES.get(h.verdict)
        if r is None:
            continue
        yield ctx.finding(
            r,
            f,
            title=f"{r.title}: {h.name}",
            location=f"opcode {h.nop} at byte 0x{h.offset:x}",
            evidence=h.name,
            extra={
                "global": h.name,
                "opcode": h.opcode,
                "count": h.count,
                "called": h.called,
                "verdict": h.verdict,
            },
        )
    for rule_id, (evidence, where, count) in w.problems.items():
        r = _PROBLEM_RULES[rule_id]
        yield ctx.finding(r, f, location=where, evidence=evidence, extra={"count": count})
    for offset, data in w.nested:
        name = f"<embedded@0x{offset:x}>"
        yield ctx.finding(
            EMBEDDED_PICKLE, f, location=f"byte 0x{offset:x}", evidence=f"{len(data)} bytes"
        )
        yield from ctx.scan_nested(f, name, data, format_hint="pickle")


def looks_like_pickle(head: bytes, f: FileInput) -> bool:
    """Sniff a pickle: a protocol 2+ header, a protocol 0/1 start in a pickle-named file, or
    an unmistakable headerless start (FRAME, STACK_GLOBAL of names, text GLOBAL) anywhere."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return len(head) == 2 or head[2] in VALID_OPS
    if f.suffix in _NAMED_PICKLE and PROTO01_START.match(head):
        return True
    return headerless_start(head, f.size)


@format_scanner("pickle", extensions=PICKLE_EXTENSIONS, sniff=looks_like_pickle)
def scan_pickle(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Format scanner for pickle files (``.pkl``, legacy ``torch.save`` ``.pt``/``.bin`` ...).

    A generic ``.bin``/``.dat`` without a pickle start is often raw weights or tokenizer
    data, yet ``torch.load`` unpickles any non-zip file, header or not. Such a file is
    walked as a trial: it is reported only if the walk shows it is a pickle.
    """
    known = (
        f.format_hint == "pickle"
        or f.suffix not in _GENERIC_EXTENSIONS
        or looks_like_pickle(f.head, f)
    )
    if not known and (not f.head or f.head[0] not in VALID_OPS):
        return  # not even one opcode: raw data
    with f.open() as fh:
        w = Walker(fh, f, ctx, judge_for(ctx))
        w.walk_all()
    if known or _is_pickle(w):
        yield from _findings(w, f, ctx)


_NAMED_PICKLE = frozenset(PICKLE_EXTENSIONS) - _GENERIC_EXTENSIONS
_IMPORT_NAME = re.compile(r"[A-Za-z_][\w.]*", re.ASCII)
_NAME_PART = re.compile(r"^[A-Za-z_]\w+\.|\.[A-Za-z_]\w+$", re.ASCII)


def _is_pickle(w: Walker) -> bool:
    """Did the trial walk find a pickle rather than raw bytes that happen to be opcodes?

    Random bytes parse as a few opcodes (about a quarter of all byte values are valid),
    and sometimes reach a STACK_GLOBAL of junk; they almost never import an identifier
    name or form a whole pickle. A real payload that breaks after its call still counts.
    """
    clean = not w.problems.keys() & {pickle_state.MALFORMED, pickle_state.MISSING_MEMO}
    for h in w.hits.values():
        if h.opcode.startswith("EXT"):
            continue  # copyreg's extension registry is empty unless the loader fills it
        if clean or _IMPORT_NAME.fullmatch(h.name):
            return True
        if h.verdict == "unresolved" and _NAME_PART.search(h.name):
            return True
    return False

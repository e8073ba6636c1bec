"""Pickle scanner: walks opcodes without unpickling and judges every imported callable.

The walker streams the file in chunks, simulates just enough of the unpickler's stack
and memo to resolve ``STACK_GLOBAL`` operands (strings, memo round-trips), and skips the
payload of long string/bytes opcodes with ``seek``. Imports are judged against data
lists (``data/pickle_globals.toml``) and the user's ``[pickle] allow`` list.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import functools
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import IO

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner

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

_CHUNK = 1 << 20
_PAD = 32  # ops before end-32 have their fixed args (<= 8 bytes) and 3 lookahead ops in buf
_KEEP = 512  # longest string kept as a possible module/attribute name
_LINE_MAX = 1 << 20
_STACK_MAX = 4_000_000
_MARKS_MAX = 1_000_000
_FLAG_MAX = 1 << 24  # memo keys tracked in a byte array; larger keys go in a capped set
_BIG_KEYS_MAX = 100_000
_MEMO_VALUES_MAX = 1_000_000
_NESTED_MAX = 16

# opcode categories; the hot loop branches on these (see _OPS)
(_PUSH, _MEMOIZE, _SSTR, _GET, _PUT, _MARK, _POPMARK, _POPMARK_PUSH, _POPK, _POPPUSH) = range(10)
(_POP, _LSTR, _LBYTES, _LLONG, _LINE, _LINE_STR, _LINE_GET, _LINE_PUT, _GLOBAL) = range(10, 19)
(_INST, _STACK_GLOBAL, _CALL, _OBJ, _DUP, _SKIP, _EXT, _STOP, _INVALID) = range(19, 28)

# opcode: (name, category, size incl. opcode for fixed args / length-field size, pops)
_OPS: dict[bytes, tuple[str, int, int, int]] = {
    b"(": ("MARK", _MARK, 1, 0),
    b".": ("STOP", _STOP, 1, 0),
    b"0": ("POP", _POP, 1, 1),
    b"1": ("POP_MARK", _POPMARK, 1, 0),
    b"2": ("DUP", _DUP, 1, 0),
    b"F": ("FLOAT", _LINE, 1, 0),
    b"I": ("INT", _LINE, 1, 0),
    b"J": ("BININT", _PUSH, 5, 0),
    b"K": ("BININT1", _PUSH, 2, 0),
    b"L": ("LONG", _LINE, 1, 0),
    b"M": ("BININT2", _PUSH, 3, 0),
    b"N": ("NONE", _PUSH, 1, 0),
    b"P": ("PERSID", _LINE, 1, 0),
    b"Q": ("BINPERSID", _POPPUSH, 1, 1),
    b"R": ("REDUCE", _CALL, 1, 2),
    b"S": ("STRING", _LINE_STR, 1, 0),
    b"T": ("BINSTRING", _LSTR, 4, 0),
    b"U": ("SHORT_BINSTRING", _SSTR, 1, 0),
    b"V": ("UNICODE", _LINE_STR, 1, 0),
    b"X": ("BINUNICODE", _LSTR, 4, 0),
    b"a": ("APPEND", _POPK, 1, 1),
    b"b": ("BUILD", _POPK, 1, 1),
    b"c": ("GLOBAL", _GLOBAL, 1, 0),
    b"d": ("DICT", _POPMARK_PUSH, 1, 0),
    b"}": ("EMPTY_DICT", _PUSH, 1, 0),
    b"e": ("APPENDS", _POPMARK, 1, 0),
    b"g": ("GET", _LINE_GET, 1, 0),
    b"h": ("BINGET", _GET, 2, 0),
    b"i": ("INST", _INST, 1, 0),
    b"j": ("LONG_BINGET", _GET, 5, 0),
    b"l": ("LIST", _POPMARK_PUSH, 1, 0),
    b"]": ("EMPTY_LIST", _PUSH, 1, 0),
    b"o": ("OBJ", _OBJ, 1, 0),
    b"p": ("PUT", _LINE_PUT, 1, 0),
    b"q": ("BINPUT", _PUT, 2, 0),
    b"r": ("LONG_BINPUT", _PUT, 5, 0),
    b"s": ("SETITEM", _POPK, 1, 2),
    b"t": ("TUPLE", _POPMARK_PUSH, 1, 0),
    b")": ("EMPTY_TUPLE", _PUSH, 1, 0),
    b"u": ("SETITEMS", _POPMARK, 1, 0),
    b"G": ("BINFLOAT", _PUSH, 9, 0),
    b"\x80": ("PROTO", _SKIP, 2, 0),
    b"\x81": ("NEWOBJ", _CALL, 1, 2),
    b"\x82": ("EXT1", _EXT, 2, 0),
    b"\x83": ("EXT2", _EXT, 3, 0),
    b"\x84": ("EXT4", _EXT, 5, 0),
    b"\x85": ("TUPLE1", _POPPUSH, 1, 1),
    b"\x86": ("TUPLE2", _POPPUSH, 1, 2),
    b"\x87": ("TUPLE3", _POPPUSH, 1, 3),
    b"\x88": ("NEWTRUE", _PUSH, 1, 0),
    b"\x89": ("NEWFALSE", _PUSH, 1, 0),
    b"\x8a": ("LONG1", _LLONG, 1, 0),
    b"\x8b": ("LONG4", _LLONG, 4, 0),
    b"B": ("BINBYTES", _LBYTES, 4, 0),
    b"C": ("SHORT_BINBYTES", _LBYTES, 1, 0),
    b"\x8c": ("SHORT_BINUNICODE", _SSTR, 1, 0),
    b"\x8d": ("BINUNICODE8", _LSTR, 8, 0),
    b"\x8e": ("BINBYTES8", _LBYTES, 8, 0),
    b"\x8f": ("EMPTY_SET", _PUSH, 1, 0),
    b"\x90": ("ADDITEMS", _POPMARK, 1, 0),
    b"\x91": ("FROZENSET", _POPMARK_PUSH, 1, 0),
    b"\x92": ("NEWOBJ_EX", _CALL, 1, 3),
    b"\x93": ("STACK_GLOBAL", _STACK_GLOBAL, 1, 2),
    b"\x94": ("MEMOIZE", _MEMOIZE, 1, 0),
    b"\x95": ("FRAME", _SKIP, 9, 0),
    b"\x96": ("BYTEARRAY8", _LBYTES, 8, 0),
    b"\x97": ("NEXT_BUFFER", _PUSH, 1, 0),
    b"\x98": ("READONLY_BUFFER", _POPPUSH, 1, 1),
}
_NAME = ["INVALID"] * 256
_CAT = [_INVALID] * 256
_SIZE = [1] * 256
_POPS = [0] * 256
for _k, (_n, _c, _s, _p) in _OPS.items():
    _NAME[_k[0]], _CAT[_k[0]], _SIZE[_k[0]], _POPS[_k[0]] = _n, _c, _s, _p
# A run of the same fixed-size push opcode (lists of ints/floats) is skipped by the regex
# engine in C instead of one Python iteration per opcode.
_RUNS = {
    op: re.compile(b"(?:" + re.escape(bytes([op])) + b".{%d})+" % (_SIZE[op] - 1), re.S)
    for op in range(256)
    if _CAT[op] == _PUSH
}
_VALID_OPS = frozenset(k[0] for k in _OPS)
_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_LEGACY_TORCH = re.compile(rb"\x80[\x02-\x05]\x8a\x0a" + re.escape(_TORCH_MAGIC) + rb"\.")
_STOP_OK, _STOP_EOF, _STOP_ERROR, _STOP_LIMIT = range(4)


@dataclass
class _Hit:
    name: str
    verdict: str
    opcode: str
    nop: int
    offset: int
    count: int = 1
    called: bool = False


class _Global:
    """A resolved import on the simulated stack (so REDUCE/NEWOBJ can see who is called)."""

    __slots__ = ("hit",)

    def __init__(self, hit: _Hit) -> None:
        self.hit = hit


# --- judging imports ------------------------------------------------------------------


@dataclass(frozen=True)
class _Lists:
    allow: frozenset[str]
    allow_prefixes: tuple[str, ...]
    deny: frozenset[str]
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
            if len(self.cache) < 100_000:
                self.cache[key] = v
        return v

    def is_loader(self, full: str) -> bool:
        return full in self.lists.loaders

    def _one(self, module: str, name: str) -> str:
        full = f"{module}.{name}"
        parts = full.split(".")
        lists = self.lists
        name_parts = name.split(".")
        # a dotted name walks attributes (protocol 4): "posixpath" + "os.system" is os.system
        tails = [name_parts[i:] for i in range(len(name_parts) - 1)] if "." in name else []
        for cand in [parts, *tails]:
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


# --- the opcode walker ------------------------------------------------------------------

_EMBEDDED_TEXT = re.compile(rb"[(\]})]*c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
_PROTO01_START = re.compile(rb"[(\]})NIFLSVUTXKMJG]|c[A-Za-z_][\w.]*\n")


def _looks_embedded(head: bytes) -> bool:
    """Does a constant's start look like a pickle (protocol 2+ header or a text GLOBAL)?"""
    if len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2] in _VALID_OPS:
        return True
    return bool(_EMBEDDED_TEXT.match(head))


def _describe(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, _Global):
        return f"<result of {v.hit.name}>"
    return "<non-string>"


class _Walker:
    """Walks the pickles of one stream; results are in ``hits``, ``problems`` and ``nested``."""

    def __init__(self, fh: IO[bytes], f: FileInput, ctx: ScanContext, judge: Judge) -> None:
        self.fh, self.f, self.judge = fh, f, judge
        self.size = f.size
        self.max_ops = ctx.limits.max_pickle_opcodes
        self.nested_cap = ctx.limits.max_member_in_memory
        self.hits: dict[tuple[str, str], _Hit] = {}
        self.problems: dict[str, tuple[str, str, int]] = {}  # rule id -> (evidence, where, n)
        self.nested: list[tuple[int, bytes]] = []
        self.nested_bytes = 0
        self.collect = False  # a pickle loader was imported: keep constants to scan
        self.nops = self.first_op = 0
        self.end = 0
        self.base = fh.tell()
        self._fill_at(self.base)
        self._reset()

    # buffer ---------------------------------------------------------------------------
    def _set(self, data: bytes, eof: bool) -> None:
        self.eof = eof
        self.end = len(data)
        self.buf = data + bytes(_PAD) if eof else data
        self.safe = self.end if eof else self.end - _PAD
        self.pos = 0

    def _fill_at(self, offset: int) -> None:
        try:
            self.fh.seek(offset)
        except (OSError, ValueError):  # unseekable: read forward
            left = offset - (self.base + self.end)
            while left > 0 and (chunk := self.fh.read(min(left, _CHUNK))):
                left -= len(chunk)
        self.base = offset
        data = self.fh.read(_CHUNK)
        self._set(data, len(data) < _CHUNK)

    def _fill(self, extra: int = 0) -> bool:
        """Keep ``buf[pos:end]``, read more behind it; False at end of file."""
        if self.eof:
            return False
        keep = self.buf[self.pos : self.end]
        data = self.fh.read(max(_CHUNK, extra))
        self.base += self.pos
        self._set(keep + data, len(data) < max(_CHUNK, extra))
        return True

    def _need(self, n: int) -> bool:
        while self.pos + n > self.end:
            if not self._fill(n - (self.end - self.pos)):
                return False
        return True

    def _skip(self, n: int) -> bool:
        """Advance ``pos`` by ``n`` bytes without reading them; False if past the end."""
        target = self.base + self.pos + n
        if self.pos + n <= self.end:
            self.pos += n
            return True
        if target > self.size:
            return False
        self._fill_at(target)
        return True

    def _take(self, hdr: int, n: int, keep: int) -> bytes | bool | None:
        """Consume ``hdr`` + ``n`` bytes; return the ``n`` payload bytes if ``n <= keep``.

        Returns False when the stream ends first, None when the payload was skipped.
        """
        if n <= keep:
            if not self._need(hdr + n):
                return False
            data = self.buf[self.pos + hdr : self.pos + hdr + n]
            self.pos += hdr + n
            return data
        return None if self._skip(hdr + n) else False

    def _where(self, nop: int | None = None, offset: int | None = None) -> str:
        nop = self.nops if nop is None else nop
        offset = self.base + self.pos if offset is None else offset
        return f"opcode {nop} at byte 0x{offset:x}"

    def _problem(self, rule_id: str, evidence: str) -> None:
        old = self.problems.get(rule_id)
        if old is None:
            self.problems[rule_id] = (evidence, self._where(), 1)
        else:
            self.problems[rule_id] = (old[0], old[1], old[2] + 1)

    def _fail(self, msg: str) -> int:
        self._problem(MALFORMED.id, msg)
        return _STOP_ERROR

    # memo -----------------------------------------------------------------------------
    def _reset(self) -> None:
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.memo_len = 0
        self.sparse = False  # keys are no longer exactly 0..memo_len-1
        self.lossy = False  # too many keys to track: every GET is "unknown"
        self.flags = bytearray()
        self.big_keys: set[int] = set()

    def _store(self, key: int, v: object) -> None:
        if v is None or len(self.memo) >= _MEMO_VALUES_MAX:
            self.memo.pop(key, None)  # an unknown value, never a stale string
        else:
            self.memo[key] = v

    def _put(self, key: int, v: object) -> None:
        if not self.sparse:
            if key < self.memo_len:
                self._store(key, v)
                return
            if key == self.memo_len:
                self.memo_len += 1
                self._store(key, v)
                return
            self.sparse = True
            self.flags = bytearray(b"\x01") * min(self.memo_len, _FLAG_MAX)
            self.lossy = self.memo_len > _FLAG_MAX
        if self.lossy:
            return
        if key < _FLAG_MAX:
            if key >= len(self.flags):
                self.flags.extend(bytes(key + 1 - len(self.flags)))
            if not self.flags[key]:
                self.flags[key] = 1
                self.memo_len += 1
        elif key not in self.big_keys:
            if len(self.big_keys) >= _BIG_KEYS_MAX:
                self.lossy = True
                return
            self.big_keys.add(key)
            self.memo_len += 1
        self._store(key, v)

    def _get(self, key: int) -> object:
        if self.pos > self.end:  # argument cut by end of file; reported as truncation
            return None
        if self.sparse:
            if self.lossy:
                return None
            known = self.flags[key] if key < len(self.flags) else key in self.big_keys
        else:
            known = key < self.memo_len
        if not known:
            self._problem(MISSING_MEMO.id, f"memo key {key}")
            return None
        return self.memo.get(key)

    # the hot loop -----------------------------------------------------------------------
    def _run(self) -> int:
        """Walk opcodes of one pickle until STOP, a break or the end of the stream.

        One long function on purpose: locals and an if-chain ordered by frequency make it
        several times faster than ``pickletools.genops``; rare opcodes go to ``_slow``.
        Categories are literal ints here (a global lookup per comparison costs ~30 %):
        0 push, 1 MEMOIZE, 2 short string, 3 memo get, 4 BINPUT/LONG_BINPUT, 5 MARK,
        6/7 pop to mark (without/with push), 8/9 pop k (without/with push), 10 POP,
        11 string with a 4- or 8-byte length.
        """
        stack, marks, memo = self.stack, self.marks, self.memo
        push = stack.append
        cat_t, size_t, pops_t, runs = _CAT, _SIZE, _POPS, _RUNS
        buf, pos, end, safe = self.buf, self.pos, self.end, self.safe
        nops, memo_len, sparse, collect = self.nops, self.memo_len, self.sparse, self.collect
        fence = marks[-1] if marks else 0
        while True:
            if pos >= safe:
                self.pos, self.nops, self.memo_len = pos, nops, memo_len
                if not self._advance():
                    return self._at_end()
                buf, pos, end, safe = self.buf, self.pos, self.end, self.safe
                memo_len, sparse = self.memo_len, self.sparse
                continue
            op = buf[pos]
            c = cat_t[op]
            nops += 1
            if c == 0:
                n = size_t[op]
                if buf[pos + n] != op or buf[pos + 3 * n] != op:
                    pos += n
                    push(None)
                    continue
                m = runs[op].match(buf, pos, end)  # a run of one opcode: skip it in C
                cnt = (m.end() - pos) // n if m else 1
                stack.extend(repeat(None, cnt))
                pos += cnt * n
                nops += cnt - 1
            elif c == 1 and not sparse and len(stack) > fence:
                v = stack[-1]
                if v is not None:
                    memo[memo_len] = v  # memo size is checked at each refill
                memo_len += 1
                pos += 1
            elif c == 2 and (e := pos + 2 + buf[pos + 1]) < end and not collect:
                s = buf[pos + 2 : e]
                push(s)
                pos = e
                if buf[e] == 0x94 and not sparse:  # MEMOIZE after a string: fuse the pair
                    memo[memo_len] = s
                    memo_len += 1
                    nops += 1
                    pos += 1
            elif c == 3:
                if op == 0x68:
                    key = buf[pos + 1]
                    pos += 2
                else:
                    key = int.from_bytes(buf[pos + 1 : pos + 5], "little")
                    pos += 5
                if key < memo_len and not sparse:
                    push(memo.get(key))
                else:
                    self.pos, self.nops, self.memo_len = pos, nops, memo_len
                    push(self._get(key))
            elif c == 4 and not sparse and len(stack) > fence:  # BINPUT, LONG_BINPUT
                if op == 0x71:
                    key = buf[pos + 1]
                    pos += 2
                else:
                    key = int.from_bytes(buf[pos + 1 : pos + 5], "little")
                    pos += 5
                if key == memo_len:  # the next free key, as picklers write it
                    v = stack[-1]
                    if v is not None:
                        memo[key] = v
                    memo_len += 1
                else:
                    self.memo_len = memo_len
                    self._put(key, stack[-1])
                    memo_len, sparse = self.memo_len, self.sparse
            elif c == 5:
                fence = len(stack)
                marks.append(fence)
                pos += 1
            elif c == 6 or c == 7:
                if not marks:
                    self.pos, self.nops = pos, nops
                    return self._fail(f"{_NAME[op]} without MARK")
                del stack[marks.pop() :]
                fence = marks[-1] if marks else 0
                if c == 7:
                    push(None)
                pos += 1
            elif c == 8 or c == 9:
                k = pops_t[op]
                if len(stack) - k < fence:
                    self.pos, self.nops = pos, nops
                    return self._fail(f"stack underflow at {_NAME[op]}")
                del stack[-k:]
                pos += 1
                if c == 9:
                    push(None)
                    if buf[pos] == 0x94 and not sparse:  # fused MEMOIZE of the new tuple
                        memo_len += 1
                        nops += 1
                        pos += 1
            elif (
                c == 11
                and op != 0x8D
                and (e := pos + 5 + int.from_bytes(buf[pos + 1 : pos + 5], "little")) < end
                and e - pos <= _KEEP
                and not collect
            ):  # BINUNICODE, BINSTRING with a short argument
                push(buf[pos + 5 : e])
                pos = e
            elif c == 10 and len(stack) > fence:
                stack.pop()
                pos += 1
            else:  # BINPUT, rare opcodes and every error path
                self.pos, self.nops, self.memo_len = pos, nops, memo_len
                r = self._slow(op, c)
                if r >= 0:
                    return r
                buf, pos, end, safe = self.buf, self.pos, self.end, self.safe
                nops, memo_len, sparse = self.nops, self.memo_len, self.sparse
                collect = self.collect
                fence = marks[-1] if marks else 0

    def _advance(self) -> bool:
        """Refill the buffer at a chunk boundary and enforce the limits."""
        if len(self.memo) > _MEMO_VALUES_MAX:  # forget values: every later GET is unknown
            self.memo.clear()
            self.sparse = self.lossy = True
        if len(self.stack) > _STACK_MAX or len(self.marks) > _MARKS_MAX:
            self._problem(UNSCANNABLE.id, f"stack deeper than {_STACK_MAX} items")
            return False
        if self.nops > self.max_ops:
            self._problem(UNSCANNABLE.id, f"more than {self.max_ops} opcodes")
            return False
        return self._fill()

    def _at_end(self) -> int:
        if UNSCANNABLE.id in self.problems:
            return _STOP_LIMIT
        if self.pos > self.end:
            self.pos = self.end
            return self._fail("truncated: an opcode's argument runs past the end")
        if self.nops == self.first_op:
            return _STOP_EOF
        return self._fail("truncated: the stream ends without STOP")

    # rare opcodes ---------------------------------------------------------------------
    def _slow(self, op: int, c: int) -> int:
        """Handle one opcode outside the hot loop; -1 to continue, else a stop status."""
        stack = self.stack
        fence = self.marks[-1] if self.marks else 0
        if c == _STOP:
            self.pos += 1
            return _STOP_OK
        if c in (_SSTR, _LSTR):
            return self._string(op)
        if c in (_PUT, _MEMOIZE):
            return self._put_op(op)
        if c == _LBYTES:
            return self._bytes(op)
        if c == _LLONG:
            return self._long(op)
        if c in (_LINE, _LINE_STR, _LINE_GET, _LINE_PUT):
            return self._line_op(op, c)
        if c in (_GLOBAL, _INST):
            return self._global_op(op, c)
        if c == _STACK_GLOBAL:
            return self._stack_global()
        if c in (_CALL, _OBJ):
            return self._call(op, c)
        if c == _POP:  # POP on an empty frame discards the MARK, as the C unpickler does
            if not self.marks:
                return self._fail("stack underflow at POP")
            self.marks.pop()
        elif c == _DUP:
            if len(stack) <= fence:
                return self._fail("stack underflow at DUP")
            stack.append(stack[-1])
        elif c == _SKIP:  # PROTO, FRAME: framing is only a read-ahead hint
            if op == 0x80 and self.buf[self.pos + 1] > 5:
                return self._fail(f"unsupported protocol {self.buf[self.pos + 1]}")
        elif c == _EXT:
            code = int.from_bytes(self.buf[self.pos + 1 : self.pos + _SIZE[op]], "little")
            self._hit(f"copyreg extension {code}", "unknown", _NAME[op])
            stack.append(None)
        else:
            return self._fail(f"invalid opcode 0x{op:02x}")
        self.pos += _SIZE[op]
        return -1

    def _put_op(self, op: int) -> int:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            return self._fail(f"{_NAME[op]} with an empty stack")
        if op == 0x94:
            key = self.memo_len
        else:
            key = int.from_bytes(self.buf[self.pos + 1 : self.pos + _SIZE[op]], "little")
        self._put(key, self.stack[-1])
        self.pos += _SIZE[op]
        return -1

    def _length(self, op: int) -> int | None:
        """The length field of a length-prefixed opcode at ``pos``; None if cut off."""
        lsize = _SIZE[op]
        if not self._need(1 + lsize):
            return None
        return int.from_bytes(self.buf[self.pos + 1 : self.pos + 1 + lsize], "little")

    def _string(self, op: int) -> int:
        n = self._length(op)
        if n is None:
            return self._fail(f"truncated {_NAME[op]}")
        keep = self.nested_cap if self.collect else _KEEP
        offset = self.base + self.pos + 1 + _SIZE[op]
        data = self._take(1 + _SIZE[op], n, keep)
        if data is False:
            return self._fail(f"truncated {_NAME[op]} ({n} bytes declared)")
        if isinstance(data, bytes) and self.collect:
            self._candidate(offset, data, loose=True)
        self.stack.append(data if isinstance(data, bytes) and n <= _KEEP else None)
        return -1

    def _bytes(self, op: int) -> int:
        n = self._length(op)
        if n is None:
            return self._fail(f"truncated {_NAME[op]}")
        hdr = 1 + _SIZE[op]
        offset = self.base + self.pos + hdr
        want = n <= self.nested_cap and (self.collect or self._peek_embedded(hdr, n))
        data = self._take(hdr, n, n if want else 0)
        if data is False:
            return self._fail(f"truncated {_NAME[op]} ({n} bytes declared)")
        if isinstance(data, bytes):
            self._candidate(offset, data, loose=self.collect)
        self.stack.append(None)
        return -1

    def _peek_embedded(self, hdr: int, n: int) -> bool:
        look = min(n, 256)
        if n < 3 or not self._need(hdr + look):
            return False
        return _looks_embedded(self.buf[self.pos + hdr : self.pos + hdr + look])

    def _candidate(self, offset: int, data: bytes, *, loose: bool) -> None:
        """Remember a constant to scan as an embedded pickle (bounded in count and bytes)."""
        if not (_looks_embedded(data[:256]) or (loose and data[:1] and data[0] in _VALID_OPS)):
            return
        if len(self.nested) >= _NESTED_MAX or self.nested_bytes + len(data) > self.nested_cap:
            self._problem(UNSCANNABLE.id, "too many embedded pickles to scan")
            return
        self.nested.append((offset, data))
        self.nested_bytes += len(data)

    def _long(self, op: int) -> int:
        n = self._length(op)
        if n is None or self._take(1 + _SIZE[op], n, 0) is False:
            return self._fail(f"truncated {_NAME[op]}")
        self.stack.append(None)
        return -1

    def _lines(self, count: int) -> list[bytes] | None:
        """Read ``count`` newline-terminated arguments after the opcode at ``pos``."""
        i, out = 1, list[bytes]()
        while len(out) < count:
            j = self.buf.find(b"\n", self.pos + i, self.end)
            if j < 0:
                if self.end - self.pos > _LINE_MAX or not self._fill():
                    return None
                continue
            out.append(self.buf[self.pos + i : j])
            i = j + 1 - self.pos
        self.pos += i
        return out

    def _line_op(self, op: int, c: int) -> int:
        lines = self._lines(1)
        if lines is None:
            return self._fail(f"truncated or overlong {_NAME[op]} line")
        line = lines[0]
        if c == _LINE:
            self.stack.append(None)
            return -1
        if c == _LINE_STR:
            return self._text_const(op, line)
        try:
            key = int(line)
        except ValueError:
            return self._fail(f"bad memo key in {_NAME[op]}")
        if c == _LINE_GET:
            self.stack.append(self._get(key))
            return -1
        fence = self.marks[-1] if self.marks else 0
        if len(self.stack) <= fence:
            return self._fail("memo store with empty stack")
        self._put(key, self.stack[-1])
        return -1

    def _text_const(self, op: int, line: bytes) -> int:
        """STRING (quoted, escaped) and UNICODE (raw-unicode-escape) text constants."""
        value: bytes | None = None
        try:
            if op == ord("S"):
                if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
                    return self._fail("STRING argument is not quoted")
                value = codecs.escape_decode(line[1:-1])[0]
            else:
                value = line.decode("raw-unicode-escape").encode("utf-8", "surrogatepass")
        except (ValueError, UnicodeError):
            return self._fail(f"undecodable {_NAME[op]} argument")
        if self.collect:
            self._candidate(self.base + self.pos, value, loose=True)
        self.stack.append(value if len(value) <= _KEEP else None)
        return -1

    def _hit(self, name: str, verdict: str, opcode: str, offset: int | None = None) -> _Hit:
        key = (name, verdict)
        h = self.hits.get(key)
        if h is None:
            off = self.base + self.pos if offset is None else offset
            h = self.hits[key] = _Hit(name, verdict, opcode, self.nops, off)
        else:
            h.count += 1
        return h

    def _resolve(self, module: str, name: str, opcode: str, offset: int) -> _Global:
        verdict = self.judge.verdict(module, name)
        full = f"{module}.{name}"
        if verdict == "dangerous" and self.judge.is_loader(full):
            self.collect = True  # what this pickle passes to the loader is a pickle too
        return _Global(self._hit(full, verdict, opcode, offset))

    def _global_op(self, op: int, c: int) -> int:
        offset = self.base + self.pos
        lines = self._lines(2)
        if lines is None:
            return self._fail(f"truncated {_NAME[op]} argument")
        try:
            module, name = (line.decode("utf-8") for line in lines)
        except UnicodeDecodeError:
            return self._fail(f"undecodable {_NAME[op]} name")
        g = self._resolve(module, name, _NAME[op], offset)
        if c == _GLOBAL:
            self.stack.append(g)
            return -1
        g.hit.called = True
        if not self.marks:
            return self._fail("INST without MARK")
        del self.stack[self.marks.pop() :]
        self.stack.append(None)
        return -1

    def _stack_global(self) -> int:
        stack = self.stack
        if len(stack) - 2 < (self.marks[-1] if self.marks else 0):
            return self._fail("stack underflow at STACK_GLOBAL")
        offset = self.base + self.pos
        name, module = stack.pop(), stack.pop()
        self.pos += 1
        if isinstance(module, bytes) and isinstance(name, bytes):
            try:
                mod_s, name_s = module.decode("utf-8"), name.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                stack.append(self._resolve(mod_s, name_s, "STACK_GLOBAL", offset))
                return -1
        label = f"{_describe(module)}.{_describe(name)}"
        self._hit(label, "unresolved", "STACK_GLOBAL", offset)
        stack.append(None)
        return -1

    def _call(self, op: int, c: int) -> int:
        stack = self.stack
        if c == _OBJ:
            if not self.marks or len(stack) <= self.marks[-1]:
                return self._fail("OBJ without class")
            mark = self.marks.pop()
            callee = stack[mark]
            del stack[mark:]
        else:
            k = _POPS[op]
            if len(stack) - k < (self.marks[-1] if self.marks else 0):
                return self._fail(f"stack underflow at {_NAME[op]}")
            callee = stack[-k]
            del stack[-k:]
        if isinstance(callee, _Global):
            callee.hit.called = True
        stack.append(None)
        self.pos += 1
        return -1

    # several pickles ------------------------------------------------------------------
    def walk_one(self) -> int:
        self._reset()
        self.first_op = self.nops
        return self._run()

    def walk_all(self) -> None:
        """Walk back-to-back pickles until the end, a break, or legacy torch raw data."""
        legacy = bool(_LEGACY_TORCH.match(self.buf, self.pos))
        count = 0
        while True:
            status = self.walk_one()
            count += 1
            if status != _STOP_OK:
                break
            if legacy and count == 5:
                return  # magic, protocol, sys_info, object, storage keys; raw storages follow
            if not self._need(1):
                break
            if self.buf[self.pos] == 0x80 and self._need(2) and 2 <= self.buf[self.pos + 1] <= 5:
                continue
            if not self._tentative():
                return
        if legacy and count < 5 and MALFORMED.id not in self.problems:
            self._fail(f"legacy torch file ends after {count} of 5 pickles")
        if self.nops > self.max_ops:
            self._problem(UNSCANNABLE.id, f"more than {self.max_ops} opcodes")

    def _tentative(self) -> bool:
        """Bytes after STOP: keep them as a pickle if they parse, else call them trailing data."""
        start = self.base + self.pos
        counts = {k: h.count for k, h in self.hits.items()}
        problems, nested = dict(self.problems), len(self.nested)
        status = self.walk_one()
        if status == _STOP_OK:
            return True
        new = [k for k in self.hits if k not in counts]
        if any(v in ("dangerous", "unresolved") for _, v in new):
            return False  # a real payload followed by a break: report both
        for k in new:
            del self.hits[k]
        for k, n in counts.items():
            self.hits[k].count = n
        self.problems, self.nested[nested:] = problems, []
        self.problems[TRAILING_DATA.id] = (
            f"{self.size - start} bytes after STOP",
            f"byte 0x{start:x}",
            1,
        )
        return False


# --- public API ---------------------------------------------------------------------------

_VERDICT_RULES = {
    "dangerous": DANGEROUS_GLOBAL,
    "suspicious": SUSPICIOUS_GLOBAL,
    "unknown": UNKNOWN_GLOBAL,
    "unresolved": UNRESOLVED_GLOBAL,
}
_PROBLEM_RULES = {r.id: r for r in (MALFORMED, MISSING_MEMO, TRAILING_DATA, UNSCANNABLE)}


def judge_for(ctx: ScanContext) -> Judge:
    """A :class:`Judge` with the user's ``[pickle] allow`` list from the policy."""
    allow = ctx.policy.section("pickle").get("allow", [])
    return Judge(allow if isinstance(allow, list) else [])


def scan_pickle_stream(fh: IO[bytes], f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan the pickle(s) in ``fh`` from its current position to the end of the stream.

    Never unpickles: opcodes are walked and imports judged. Other scanners (NumPy object
    arrays, containers) call this for pickle payloads inside their formats.

    Args:
        fh: a binary handle positioned at the first opcode.
        f: the file the stream belongs to (``f.size`` bounds the stream).
        ctx: the scan context (policy, limits, nested scanning).
    """
    w = _Walker(fh, f, ctx, judge_for(ctx))
    w.walk_all()
    yield from _findings(w, f, ctx)


def _findings(w: _Walker, f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
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
    """Sniff a pickle: a protocol 2+ header, or a protocol 0/1 start in a pickle-named file."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return len(head) == 2 or head[2] in _VALID_OPS
    if f.suffix in PICKLE_EXTENSIONS and f.suffix not in _GENERIC_EXTENSIONS:
        return bool(_PROTO01_START.match(head))
    return False


@format_scanner("pickle", extensions=PICKLE_EXTENSIONS, sniff=looks_like_pickle)
def scan_pickle(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Format scanner for pickle files (``.pkl``, legacy ``torch.save`` ``.pt``/``.bin`` ...)."""
    if (
        f.format_hint != "pickle"
        and f.suffix in _GENERIC_EXTENSIONS
        and not looks_like_pickle(f.head, f)
        and not _PROTO01_START.match(f.head)
    ):
        return  # a generic .bin/.dat that is not a pickle (raw weights, tokenizer data)
    with f.open() as fh:
        yield from scan_pickle_stream(fh, f, ctx)

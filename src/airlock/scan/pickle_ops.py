"""The pickle opcode table: names, argument sizes, stack effects and walker categories.

Everything here is indexed by the opcode byte (0-255) so the walker's hot loop pays one
list lookup per opcode. Categories below ``SLOW`` are handled inline by the hot loop
(``pickle_walk.Walker._run``); the others always go to its slow path.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

# Hot categories, most frequent first. The hot loop compares literal ints (a global lookup
# per comparison costs ~30 %), so keep these values in sync with the comments there.
PUSH = 0  # push a constant with a fixed-size argument (ints, floats, None, True, ())
SHORT_STR = 1  # SHORT_BINUNICODE, SHORT_BINSTRING: 1-byte length
MEMOIZE = 2
POP_PUSH = 3  # pop k >= 0, push a new object (TUPLE1-3, EMPTY_LIST/DICT/SET, BINPERSID ...)
GET1 = 4  # BINGET
PUT1 = 5  # BINPUT
STR4 = 6  # BINUNICODE, BINSTRING: 4-byte length
MARK = 7
POP_MARK = 8  # pop to the mark (APPENDS, SETITEMS, ADDITEMS, POP_MARK)
POP_K = 9  # pop k, push nothing (APPEND, SETITEM, BUILD)
GET4 = 10  # LONG_BINGET
PUT4 = 11  # LONG_BINPUT
POP_MARK_PUSH = 12  # pop to the mark, push the result (TUPLE, LIST, DICT, FROZENSET)
POP = 13
# Slow categories: rare, or they need more than a few lines.
SLOW = 14
STR8, BYTES, LONG, LINE, LINE_STR, LINE_GET, LINE_PUT = range(14, 21)
GLOBAL, INST, STACK_GLOBAL, CALL, OBJ, DUP, SKIP, EXT, STOP, INVALID = range(21, 31)

# opcode: (name, category, size incl. opcode for fixed args / length-field size, pops)
OPS: dict[bytes, tuple[str, int, int, int]] = {
    b"(": ("MARK", MARK, 1, 0),
    b".": ("STOP", STOP, 1, 0),
    b"0": ("POP", POP, 1, 1),
    b"1": ("POP_MARK", POP_MARK, 1, 0),
    b"2": ("DUP", DUP, 1, 0),
    b"F": ("FLOAT", LINE, 1, 0),
    b"I": ("INT", LINE, 1, 0),
    b"J": ("BININT", PUSH, 5, 0),
    b"K": ("BININT1", PUSH, 2, 0),
    b"L": ("LONG", LINE, 1, 0),
    b"M": ("BININT2", PUSH, 3, 0),
    b"N": ("NONE", PUSH, 1, 0),
    b"P": ("PERSID", LINE, 1, 0),
    b"Q": ("BINPERSID", POP_PUSH, 1, 1),
    b"R": ("REDUCE", CALL, 1, 2),
    b"S": ("STRING", LINE_STR, 1, 0),
    b"T": ("BINSTRING", STR4, 4, 0),
    b"U": ("SHORT_BINSTRING", SHORT_STR, 1, 0),
    b"V": ("UNICODE", LINE_STR, 1, 0),
    b"X": ("BINUNICODE", STR4, 4, 0),
    b"a": ("APPEND", POP_K, 1, 1),
    b"b": ("BUILD", POP_K, 1, 1),
    b"c": ("GLOBAL", GLOBAL, 1, 0),
    b"d": ("DICT", POP_MARK_PUSH, 1, 0),
    b"}": ("EMPTY_DICT", POP_PUSH, 1, 0),
    b"e": ("APPENDS", POP_MARK, 1, 0),
    b"g": ("GET", LINE_GET, 1, 0),
    b"h": ("BINGET", GET1, 2, 0),
    b"i": ("INST", INST, 1, 0),
    b"j": ("LONG_BINGET", GET4, 5, 0),
    b"l": ("LIST", POP_MARK_PUSH, 1, 0),
    b"]": ("EMPTY_LIST", POP_PUSH, 1, 0),
    b"o": ("OBJ", OBJ, 1, 0),
    b"p": ("PUT", LINE_PUT, 1, 0),
    b"q": ("BINPUT", PUT1, 2, 0),
    b"r": ("LONG_BINPUT", PUT4, 5, 0),
    b"s": ("SETITEM", POP_K, 1, 2),
    b"t": ("TUPLE", POP_MARK_PUSH, 1, 0),
    b")": ("EMPTY_TUPLE", PUSH, 1, 0),
    b"u": ("SETITEMS", POP_MARK, 1, 0),
    b"G": ("BINFLOAT", PUSH, 9, 0),
    b"\x80": ("PROTO", SKIP, 2, 0),
    b"\x81": ("NEWOBJ", CALL, 1, 2),
    b"\x82": ("EXT1", EXT, 2, 0),
    b"\x83": ("EXT2", EXT, 3, 0),
    b"\x84": ("EXT4", EXT, 5, 0),
    b"\x85": ("TUPLE1", POP_PUSH, 1, 1),
    b"\x86": ("TUPLE2", POP_PUSH, 1, 2),
    b"\x87": ("TUPLE3", POP_PUSH, 1, 3),
    b"\x88": ("NEWTRUE", PUSH, 1, 0),
    b"\x89": ("NEWFALSE", PUSH, 1, 0),
    b"\x8a": ("LONG1", LONG, 1, 0),
    b"\x8b": ("LONG4", LONG, 4, 0),
    b"B": ("BINBYTES", BYTES, 4, 0),
    b"C": ("SHORT_BINBYTES", BYTES, 1, 0),
    b"\x8c": ("SHORT_BINUNICODE", SHORT_STR, 1, 0),
    b"\x8d": ("BINUNICODE8", STR8, 8, 0),
    b"\x8e": ("BINBYTES8", BYTES, 8, 0),
    b"\x8f": ("EMPTY_SET", POP_PUSH, 1, 0),
    b"\x90": ("ADDITEMS", POP_MARK, 1, 0),
    b"\x91": ("FROZENSET", POP_MARK_PUSH, 1, 0),
    b"\x92": ("NEWOBJ_EX", CALL, 1, 3),
    b"\x93": ("STACK_GLOBAL", STACK_GLOBAL, 1, 2),
    b"\x94": ("MEMOIZE", MEMOIZE, 1, 0),
    b"\x95": ("FRAME", SKIP, 9, 0),
    b"\x96": ("BYTEARRAY8", BYTES, 8, 0),
    b"\x97": ("NEXT_BUFFER", PUSH, 1, 0),
    b"\x98": ("READONLY_BUFFER", POP_PUSH, 1, 1),
}

NAME = ["INVALID"] * 256
CAT = [INVALID] * 256
SIZE = [1] * 256  # with the opcode for fixed-size arguments; the length field's size else
POPS = [0] * 256
for _k, (_n, _c, _s, _p) in OPS.items():
    NAME[_k[0]], CAT[_k[0]], SIZE[_k[0]], POPS[_k[0]] = _n, _c, _s, _p
VALID_OPS = frozenset(k[0] for k in OPS)


def _run_pattern(op: int) -> re.Pattern[bytes]:
    """A run of one fixed-size push opcode and its arguments.

    The repeat must not keep per-repetition state: a backtracking ``(?:N.{0})+`` holds
    ~140 bytes of sre state per repetition (146 MB for a 1 MiB run). A single byte
    repeated is a plain loop in sre; a possessive group never backtracks and keeps none,
    and is ~10x faster than the backtracking one.
    """
    if SIZE[op] == 1:
        return re.compile(re.escape(bytes([op])) + b"+")
    return re.compile(b"(?:" + re.escape(bytes([op])) + b".{%d})++" % (SIZE[op] - 1), re.S)


# A run of the same fixed-size push opcode (lists of ints/floats) is skipped by the regex
# engine in C instead of one Python iteration per opcode.
RUNS = {op: _run_pattern(op) for op in range(256) if CAT[op] == PUSH}

U32 = struct.Struct("<I").unpack_from  # cheaper than int.from_bytes on a slice

TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
LEGACY_TORCH = re.compile(rb"\x80[\x02-\x05]\x8a\x0a" + re.escape(TORCH_MAGIC) + rb"\.")
PROTO01_START = re.compile(rb"[(\]})NIFLSVUTXKMJG]|c[A-Za-z_][\w.]*\n")
_EMBEDDED_TEXT = re.compile(rb"[(\]})]*c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


# Headerless streams (no PROTO) in files of any extension: only unmistakable starts count,
# so that text and binary files of other formats never sniff as pickles.
_IDENT = re.compile(rb"[A-Za-z_][\w.]*")
_TEXT_GLOBAL = re.compile(rb"c([A-Za-z_][\w.]*)\n([A-Za-z_][\w.]*)\n")
_WORD_LINES = re.compile(rb"(?:[A-Za-z_]\w*\n)*\w*")  # a word list: "cat\ndog\nemu\n"
_U64 = struct.Struct("<Q").unpack_from
_MEMO_OP_SIZE = {0x94: 1, 0x71: 2, 0x72: 5}  # MEMOIZE, BINPUT, LONG_BINPUT after a string


def headerless_start(head: bytes, size: int) -> bool:
    """Does a stream without a PROTO header start unmistakably like a pickle?

    Three starts count: a FRAME whose length fits the file followed by an opcode; a
    ``STACK_GLOBAL`` of two identifier strings in the first bytes; a text ``GLOBAL`` of
    two identifier lines at byte 0 that is not followed by more plain word lines only.

    Args:
        head: the first bytes of the stream (the engine's 64-byte sniff window).
        size: the stream's size, bounding a FRAME's declared length.
    """
    if not head:
        return False
    if head[0] == 0x95:
        return len(head) >= 10 and 0 < _U64(head, 1)[0] <= size - 9 and head[9] in VALID_OPS
    if head[0] == 0x63 and (m := _TEXT_GLOBAL.match(head)):  # "c"
        rest = head[m.end() :]
        return not rest or (rest[0] in VALID_OPS and not _WORD_LINES.fullmatch(rest))
    return 0x93 in head and any(_import_at(head, i) for i in _op_starts(head))


_LENGTH_PREFIXED = frozenset({SHORT_STR, STR4, STR8, BYTES, LONG})
_PARSE_STOP = frozenset({LINE, LINE_STR, LINE_GET, LINE_PUT, GLOBAL, INST, STOP, INVALID})


def _op_starts(head: bytes) -> Iterator[int]:
    """Offsets of the opcodes ``head`` parses into from byte 0, up to the first one that
    is invalid or reads a text line (a container that stores a pickle is not one)."""
    i = 0
    while i < len(head) and CAT[head[i]] not in _PARSE_STOP:
        yield i
        op = head[i]
        if CAT[op] in _LENGTH_PREFIXED:
            i += 1 + SIZE[op] + int.from_bytes(head[i + 1 : i + 1 + SIZE[op]], "little")
        else:
            i += SIZE[op]


def _ident_string(head: bytes, i: int) -> int:
    """End of an identifier string constant (plus its memo store) at ``i``; -1 if none."""
    data = string_payload(head[i:])
    if not data or not _IDENT.fullmatch(data):
        return -1
    end = i + (2 if CAT[head[i]] == SHORT_STR else 5) + len(data)
    return end + _MEMO_OP_SIZE.get(head[end], 0) if end < len(head) else -1


def _import_at(head: bytes, i: int) -> bool:
    """Is there a module string, a name string and STACK_GLOBAL at ``i``?"""
    j = _ident_string(head, i)
    k = _ident_string(head, j) if 0 <= j < len(head) else -1
    return 0 <= k < len(head) and head[k] == 0x93


def looks_embedded(head: bytes) -> bool:
    """Does a constant's start look like a pickle (protocol 2+ header or a text GLOBAL)?"""
    if len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2] in VALID_OPS:
        return True
    return bool(_EMBEDDED_TEXT.match(head))


def string_payload(head: bytes) -> bytes | None:
    """The payload of the SHORT_STR or STR4 opcode that ``head`` starts with (None if cut)."""
    if not head:
        return None
    if CAT[head[0]] == SHORT_STR:
        start, n = 2, head[1] if len(head) > 1 else -1
    elif CAT[head[0]] == STR4 and len(head) >= 5:
        start, n = 5, U32(head, 1)[0]
    else:
        return None
    return head[start : start + n] if 0 <= n <= len(head) - start else None

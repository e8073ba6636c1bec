"""State of a pickle walk: the read buffer, the simulated memo, and what was found.

:class:`WalkState` is the base of ``pickle_walk.Walker``: the walker moves ``pos``
through ``buf`` and calls the helpers here to refill, skip, store and report.

Short string constants are not copied out of the buffer: the stack and memo hold the
string opcode's absolute offset in the stream (an ``int``), and :meth:`WalkState._value`
reads the string back only when something needs it (a ``STACK_GLOBAL`` operand). Most
strings in a pickle are data that is never looked at again, and copying them dominated
the walk's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from operator import countOf
from typing import IO

from airlock.scan.base import FileInput, ScanContext
from airlock.scan.pickle_judge import Judge
from airlock.scan.pickle_ops import VALID_OPS, looks_embedded, string_payload

CHUNK = 1 << 20
PAD = 32  # ops before end-32 have their fixed args (<= 8 bytes) and 3 lookahead ops in buf
KEEP = 512  # longest string kept as a possible module/attribute name
LINE_MAX = 1 << 20  # longest text-protocol argument line
REF_READ = 5 + KEEP  # bytes read back for a string reference: opcode, length, payload
_BLOCK = 1 << 16  # string references behind the buffer are read back in blocks this big
_BLOCKS_MAX = 16
NESTED_MAX = 16
STACK_MAX = 4_000_000
MARKS_MAX = 1_000_000
MEMO_VALUES_MAX = 1_000_000
_FLAG_MAX = 1 << 24  # memo keys tracked in a byte array; larger keys go in a capped set
_BIG_KEYS_MAX = 100_000

# Problems are recorded by the id of the rule airlock.scan.pickles reports them with.
MALFORMED = "pickle.malformed"
MISSING_MEMO = "pickle.missing-memo"
TRAILING_DATA = "pickle.trailing-data"
UNSCANNABLE = "pickle.unscannable"

# How a walk of one pickle ended.
STOP_OK, STOP_EOF, STOP_ERROR, STOP_LIMIT = range(4)


@dataclass
class Hit:
    """One imported name with its verdict, where it was first seen and how often."""

    name: str
    verdict: str
    opcode: str
    nop: int
    offset: int
    count: int = 1
    called: bool = False


class Global:
    """A resolved import on the simulated stack (so REDUCE/NEWOBJ can see who is called)."""

    __slots__ = ("hit",)

    def __init__(self, hit: Hit) -> None:
        self.hit = hit


class WalkState:
    """Buffer, memo and records of a walk; results in ``hits``, ``problems``, ``nested``."""

    def __init__(self, fh: IO[bytes], f: FileInput, ctx: ScanContext, judge: Judge) -> None:
        self.fh, self.judge = fh, judge
        self.size = f.size
        self.max_ops = ctx.limits.max_pickle_opcodes
        self.nested_cap = ctx.limits.max_member_in_memory
        self.hits: dict[tuple[str, str], Hit] = {}
        self.problems: dict[str, tuple[str, str, int]] = {}  # rule id -> (evidence, where, n)
        self.nested: list[tuple[int, bytes]] = []
        self.nested_bytes = 0
        self.collect = False  # a pickle loader was imported: keep constants to scan
        self.nops = self.first_op = 0
        self.end = 0
        self.base = fh.tell()
        self.blocks: dict[int, bytes] = {}
        self._fill_at(self.base)
        self._reset()

    # buffer ---------------------------------------------------------------------------
    def _set(self, data: bytes, eof: bool) -> None:
        self.eof = eof
        self.end = len(data)
        self.buf = data + bytes(PAD) if eof else data
        self.safe = self.end if eof else self.end - PAD
        self.pos = 0

    def _fill_at(self, offset: int) -> None:
        try:
            self.fh.seek(offset)
        except (OSError, ValueError):  # unseekable: read forward
            left = offset - (self.base + self.end)
            while left > 0 and (chunk := self.fh.read(min(left, CHUNK))):
                left -= len(chunk)
        self.base = offset
        data = self.fh.read(CHUNK)
        self._set(data, len(data) < CHUNK)

    def _fill(self, extra: int = 0) -> bool:
        """Keep ``buf[pos:end]``, read more behind it; False at end of file."""
        if self.eof:
            return False
        keep = self.buf[self.pos : self.end]
        data = self.fh.read(max(CHUNK, extra))
        self.base += self.pos
        self._set(keep + data, len(data) < max(CHUNK, extra))
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

    # string references ------------------------------------------------------------------
    def _value(self, v: object) -> object:
        """A stack or memo value with a string reference replaced by the string's bytes."""
        if isinstance(v, int):
            return string_payload(self._read_at(v, REF_READ))
        return v

    def _read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at stream ``offset``, from the buffer or read back."""
        i = offset - self.base
        if i >= 0:  # a reference is made only for a string wholly inside the buffer
            return self.buf[i : min(i + n, self.end)]
        block = offset - offset % _BLOCK
        data = self.blocks.get(block)
        if data is None:
            if len(self.blocks) >= _BLOCKS_MAX:
                self.blocks.clear()
            data = self.blocks[block] = self._pread(block, _BLOCK + n)
        return data[offset - block : offset - block + n]

    def _pread(self, offset: int, n: int) -> bytes:
        try:
            self.fh.seek(offset)
            data = self.fh.read(n)
            self.fh.seek(self.base + self.end)  # where the next refill continues
        except (OSError, ValueError):
            return b""  # unseekable: the operand counts as unresolved, never as safe
        return data

    # records ----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"opcode {self.nops} at byte 0x{self.base + self.pos:x}"

    def _problem(self, rule_id: str, evidence: str) -> None:
        old = self.problems.get(rule_id)
        if old is None:
            self.problems[rule_id] = (evidence, self._where(), 1)
        else:
            self.problems[rule_id] = (old[0], old[1], old[2] + 1)

    def _fail(self, msg: str) -> int:
        self._problem(MALFORMED, msg)
        return STOP_ERROR

    def _hit(self, name: str, verdict: str, opcode: str, offset: int | None = None) -> Hit:
        key = (name, verdict)
        h = self.hits.get(key)
        if h is None:
            off = self.base + self.pos if offset is None else offset
            h = self.hits[key] = Hit(name, verdict, opcode, self.nops, off)
        else:
            h.count += 1
        return h

    def _resolve(self, module: str, name: str, opcode: str, offset: int) -> Global:
        verdict = self.judge.verdict(module, name)
        full = f"{module}.{name}"
        if verdict == "dangerous" and self.judge.is_loader(full):
            self.collect = True  # what this pickle passes to the loader is a pickle too
        return Global(self._hit(full, verdict, opcode, offset))

    def _candidate(self, offset: int, data: bytes, *, loose: bool) -> None:
        """Remember a constant to scan as an embedded pickle (bounded in count and bytes)."""
        if not (looks_embedded(data[:256]) or (loose and data[:1] and data[0] in VALID_OPS)):
            return
        if len(self.nested) >= NESTED_MAX or self.nested_bytes + len(data) > self.nested_cap:
            self._problem(UNSCANNABLE, "too many embedded pickles to scan")
            return
        self.nested.append((offset, data))
        self.nested_bytes += len(data)

    # memo -----------------------------------------------------------------------------
    # While keys arrive as 0, 1, 2 ... (what picklers write) the memo is a list indexed by
    # key, holding None for values that are not strings or imports; the hot loop appends
    # to it. The first out-of-order key turns it into a dict ("sparse") for good.
    def _reset(self) -> None:
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.memo: list[object] = []  # dense: memo[key], len(memo) == memo_len
        self.sparse_memo: dict[int, object] = {}  # sparse: key -> value, values only
        self.counted = self.values = 0  # memo[:counted] holds `values` non-None entries
        self.memo_len = 0
        self.sparse = False  # keys are no longer exactly 0..memo_len-1
        self.lossy = False  # too many keys to track: every GET is "unknown"
        self.flags = bytearray()
        self.big_keys: set[int] = set()

    def _memo_values(self) -> int:
        """How many memo keys hold a value (the bound is on values, not keys)."""
        if self.sparse:
            return len(self.sparse_memo)
        if self.counted < len(self.memo):  # count what the hot loop appended, in C
            tail = len(self.memo) - self.counted
            self.values += tail - countOf(islice(self.memo, self.counted, None), None)
            self.counted = len(self.memo)
        return self.values

    def _forget_memo(self) -> None:
        """Too many values: drop them all; every later GET is unknown."""
        self.memo.clear()
        self.sparse_memo.clear()
        self.sparse = self.lossy = True

    def _store(self, key: int, v: object) -> None:
        if self._memo_values() >= MEMO_VALUES_MAX:  # also brings `values` up to date
            v = None  # an unknown value, never a stale string
        if self.sparse:
            if v is None:
                self.sparse_memo.pop(key, None)
            else:
                self.sparse_memo[key] = v
            return
        old = self.memo[key] if key < len(self.memo) else None
        self.values += (v is not None) - (old is not None)
        if key < len(self.memo):
            self.memo[key] = v
        else:
            self.memo.append(v)
            self.counted += 1

    def _make_sparse(self) -> None:
        self.sparse = True
        self.flags = bytearray(b"\x01") * min(self.memo_len, _FLAG_MAX)
        self.lossy = self.memo_len > _FLAG_MAX
        self.sparse_memo = {k: v for k, v in enumerate(self.memo) if v is not None}
        self.memo = []

    def _put(self, key: int, v: object) -> None:
        if not self.sparse:
            if key < self.memo_len:
                self._store(key, v)
                return
            if key == self.memo_len:
                self.memo_len += 1
                self._store(key, v)
                return
            self._make_sparse()
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
            self._problem(MISSING_MEMO, f"memo key {key}")
            return None
        return self.sparse_memo.get(key) if self.sparse else self.memo[key]

"""The pickle opcode walker: simulates the unpickler's stack and memo without unpickling.

It simulates just enough to resolve ``STACK_GLOBAL`` operands (strings, memo round trips)
and to see which imported callables get called, and skips the payload of long
string/bytes opcodes with ``seek``. :meth:`Walker.walk_all` walks back-to-back pickles
(legacy ``torch.save`` files hold five).
"""

from __future__ import annotations

import codecs
from itertools import count, repeat

from airlock.scan.pickle_ops import (
    BYTES,
    CALL,
    CAT,
    DUP,
    EXT,
    GLOBAL,
    INST,
    LEGACY_TORCH,
    LINE,
    LINE_GET,
    LINE_PUT,
    LINE_STR,
    LONG,
    MEMOIZE,
    NAME,
    OBJ,
    POP,
    POP_K,
    POP_MARK,
    POP_MARK_PUSH,
    POP_PUSH,
    POPS,
    PUT1,
    PUT4,
    RUNS,
    SHORT_STR,
    SIZE,
    SKIP,
    STACK_GLOBAL,
    STOP,
    STR4,
    STR8,
    U32,
    looks_embedded,
)
from airlock.scan.pickle_state import (
    KEEP,
    LINE_MAX,
    MALFORMED,
    MARKS_MAX,
    MEMO_VALUES_MAX,
    STACK_MAX,
    STOP_EOF,
    STOP_LIMIT,
    STOP_OK,
    TRAILING_DATA,
    UNSCANNABLE,
    Global,
    WalkState,
)

_LEGACY_PICKLES = 5  # magic, protocol, sys_info, object, storage keys; raw storages follow


class Walker(WalkState):
    """Walks the pickles of one stream; results are in ``hits``, ``problems`` and ``nested``."""

    # several pickles ------------------------------------------------------------------
    def walk_all(self) -> None:
        """Walk back-to-back pickles until the end, a break, or legacy torch raw data."""
        legacy = bool(LEGACY_TORCH.match(self.buf, self.pos))
        count = 0
        while True:
            status = self._walk_one()
            count += 1
            if status != STOP_OK:
                break
            if legacy and count == _LEGACY_PICKLES:
                return
            if not self._need(1):
                break
            if self.buf[self.pos] == 0x80 and self._need(2) and 2 <= self.buf[self.pos + 1] <= 5:
                continue
            if not self._tentative():
                return
        if legacy and count < _LEGACY_PICKLES and MALFORMED not in self.problems:
            self._fail(f"legacy torch file ends after {count} of 5 pickles")
        if self.nops > self.max_ops:
            self._problem(UNSCANNABLE, f"more than {self.max_ops} opcodes")

    def _walk_one(self) -> int:
        self._reset()
        self.first_op = self.nops
        return self._run()

    def _tentative(self) -> bool:
        """Bytes after STOP: keep them as a pickle if they parse, else call them trailing data."""
        start = self.base + self.pos
        counts = {k: h.count for k, h in self.hits.items()}
        problems, nested = dict(self.problems), len(self.nested)
        status = self._walk_one()
        if status == STOP_OK:
            return True
        new = [k for k in self.hits if k not in counts]
        if any(v in ("dangerous", "unresolved") for _, v in new):
            return False  # a real payload followed by a break: report both
        for k in new:
            del self.hits[k]
        for k, n in counts.items():
            self.hits[k].count = n
        self.problems, self.nested[nested:] = problems, []
        self.problems[TRAILING_DATA] = (
            f"{self.size - start} bytes after STOP",
            f"byte 0x{start:x}",
            1,
        )
        return False

    # the hot loop -----------------------------------------------------------------------
    def _run(self) -> int:
        """Walk opcodes of one pickle until STOP, a break or the end of the stream.

        One long function on purpose: locals and an if-chain ordered by frequency make it
        several times faster than ``pickletools.genops``. Each branch handles the common
        case of one category and continues; everything else (rare opcodes, limits, errors)
        falls through to :meth:`_slow`. Categories are literal ints (see pickle_ops): a
        global lookup per comparison costs ~30 %. A string is pushed as its opcode's
        offset in the stream (see pickle_state), not copied.
        """
        stack, marks, memo = self.stack, self.marks, self.memo
        push, mpush = stack.append, memo.append
        cat_t, size_t, pops_t, runs, u32 = CAT, SIZE, POPS, RUNS, U32
        buf, pos, end, safe, base = self.buf, self.pos, self.end, self.safe, self.base
        dense = not self.sparse  # memo keys so far are 0..len(memo)-1: the list is the memo
        send = -1 if self.collect else end  # a string ending before this is pushed by reference
        fence = marks[-1] if marks else 0
        # The opcode count is it + extra: the loop counts one opcode per iteration for free,
        # extra adds the opcodes a branch consumed beyond the first (fused pairs, runs).
        extra = self.nops + 1
        for it in count():
            if pos >= safe:
                self.pos, self.nops = pos, it + extra - 1
                if dense:
                    self.memo_len = len(memo)
                if not self._advance():
                    return self._at_end()
                buf, pos, end, safe, base = self.buf, self.pos, self.end, self.safe, self.base
                dense = not self.sparse
                send = -1 if self.collect else end
                extra -= 1  # no opcode in this iteration
                continue
            op = buf[pos]
            c = cat_t[op]
            if c == 0:  # PUSH
                n = size_t[op]
                if buf[pos + n] != op or buf[pos + 3 * n] != op:
                    pos += n
                    push(None)
                    continue
                m = runs[op].match(buf, pos, end)  # a run of one opcode: skip it in C
                cnt = (m.end() - pos) // n if m else 1
                stack.extend(repeat(None, cnt))
                pos += cnt * n
                extra += cnt - 1
                continue
            if c == 1 or c == 6:  # SHORT_STR, STR4
                if c == 1:
                    e = pos + 2 + buf[pos + 1]
                else:
                    e = pos + 5 + u32(buf, pos + 1)[0]
                    if e - pos > KEEP:
                        e = end  # too long for a name: the slow path skips it
                if e < send:
                    ref = base + pos
                    push(ref)
                    nxt = buf[e]  # fuse the MEMOIZE/BINPUT that picklers write after a string
                    if nxt == 0x94 and dense:
                        mpush(ref)
                        extra += 1
                        pos = e + 1
                    elif nxt == 0x71 and dense and e + 2 <= end and buf[e + 1] == len(memo):
                        mpush(ref)
                        extra += 1
                        pos = e + 2
                    elif nxt == 0x72 and dense and e + 5 <= end and u32(buf, e + 1)[0] == len(memo):
                        mpush(ref)
                        extra += 1
                        pos = e + 5
                    else:
                        pos = e
                    continue
            elif c == 4 or c == 10:  # GET1, GET4
                key = buf[pos + 1] if c == 4 else u32(buf, pos + 1)[0]
                pos += size_t[op]
                if dense:
                    try:
                        push(memo[key])
                        continue
                    except IndexError:  # a key never stored: _get reports it
                        pass
                self.pos, self.nops = pos, it + extra
                if dense:
                    self.memo_len = len(memo)
                push(self._get(key))
                continue
            elif c == 3:  # POP_PUSH
                k = pops_t[op]
                if len(stack) - k >= fence:
                    if k == 2:
                        del stack[-1]
                        stack[-1] = None
                    elif k == 0:
                        push(None)
                    elif k == 1:
                        stack[-1] = None
                    else:
                        del stack[-2:]
                        stack[-1] = None
                    nxt = buf[pos + 1]  # fuse the MEMOIZE/BINPUT of the new object
                    if nxt == 0x94 and dense:
                        mpush(None)
                        extra += 1
                        pos += 2
                    elif nxt == 0x71 and dense and buf[pos + 2] == len(memo) and pos + 3 <= end:
                        mpush(None)
                        extra += 1
                        pos += 3
                    elif (
                        nxt == 0x72
                        and dense
                        and pos + 6 <= end
                        and u32(buf, pos + 2)[0] == len(memo)
                    ):
                        mpush(None)
                        extra += 1
                        pos += 6
                    else:
                        pos += 1
                    continue
            elif c == 2:  # MEMOIZE
                if dense and len(stack) > fence:
                    mpush(stack[-1])  # the memo's size is checked at each refill
                    pos += 1
                    continue
            elif c == 7:  # MARK
                fence = len(stack)
                marks.append(fence)
                pos += 1
                continue
            elif c == 9:  # POP_K
                k = pops_t[op]
                if len(stack) - k >= fence:
                    del stack[-k:]
                    pos += 1
                    continue
            elif c == 8 or c == 12:  # POP_MARK, POP_MARK_PUSH
                if marks:
                    del stack[marks.pop() :]
                    fence = marks[-1] if marks else 0
                    if c == 12:
                        push(None)
                    pos += 1
                    continue
            elif (c == 5 or c == 11) and dense and len(stack) > fence:  # PUT1, PUT4
                key = buf[pos + 1] if c == 5 else u32(buf, pos + 1)[0]
                pos += size_t[op]
                if key == len(memo):  # the next free key, as picklers write it
                    mpush(stack[-1])
                else:
                    self.memo_len = len(memo)
                    self._put(key, stack[-1])
                    dense = not self.sparse
                continue
            elif c == 13 and len(stack) > fence:  # POP
                stack.pop()
                pos += 1
                continue
            # rare opcodes and every error path
            self.pos, self.nops = pos, it + extra
            if dense:
                self.memo_len = len(memo)
            r = self._slow(op, c)
            if r >= 0:
                return r
            buf, pos, end, safe, base = self.buf, self.pos, self.end, self.safe, self.base
            dense = not self.sparse
            send = -1 if self.collect else end
            fence = marks[-1] if marks else 0
        raise AssertionError("unreachable")  # count() never ends

    def _advance(self) -> bool:
        """Refill the buffer at a chunk boundary and enforce the limits."""
        if self._memo_values() > MEMO_VALUES_MAX:
            self._forget_memo()
        if len(self.stack) > STACK_MAX or len(self.marks) > MARKS_MAX:
            self._problem(UNSCANNABLE, f"stack deeper than {STACK_MAX} items")
            return False
        if self.nops > self.max_ops:
            self._problem(UNSCANNABLE, f"more than {self.max_ops} opcodes")
            return False
        return self._fill()

    def _at_end(self) -> int:
        if UNSCANNABLE in self.problems:
            return STOP_LIMIT
        if self.pos > self.end:
            self.pos = self.end
            return self._fail("truncated: an opcode's argument runs past the end")
        if self.nops == self.first_op:
            return STOP_EOF
        return self._fail("truncated: the stream ends without STOP")

    # rare opcodes ---------------------------------------------------------------------
    def _slow(self, op: int, c: int) -> int:
        """Handle one opcode outside the hot loop; -1 to continue, else a stop status."""
        if c == STOP:
            self.pos += 1
            return STOP_OK
        if c in (SHORT_STR, STR4, STR8):
            return self._string(op)
        if c in (PUT1, PUT4, MEMOIZE):
            return self._put_op(op)
        if c == BYTES:
            return self._bytes(op)
        if c == LONG:
            return self._long(op)
        if c in (LINE, LINE_STR, LINE_GET, LINE_PUT):
            return self._line_op(op, c)
        if c in (GLOBAL, INST):
            return self._global_op(op, c)
        if c == STACK_GLOBAL:
            return self._stack_global()
        if c in (CALL, OBJ):
            return self._call(op, c)
        if c in (POP, POP_K, POP_PUSH, POP_MARK, POP_MARK_PUSH):
            return self._pop_op(op, c)
        return self._misc_op(op, c)

    def _pop_op(self, op: int, c: int) -> int:
        """The error cases of the stack-popping opcodes the hot loop handles."""
        if c == POP:  # POP on an empty frame discards the MARK, as the C unpickler does
            if not self.marks:
                return self._fail("stack underflow at POP")
            self.marks.pop()
        elif c in (POP_MARK, POP_MARK_PUSH):
            return self._fail(f"{NAME[op]} without MARK")
        else:
            return self._fail(f"stack underflow at {NAME[op]}")
        self.pos += 1
        return -1

    def _misc_op(self, op: int, c: int) -> int:
        """DUP, PROTO and FRAME, EXT1/2/4, and invalid opcodes."""
        stack = self.stack
        if c == DUP:
            if len(stack) <= (self.marks[-1] if self.marks else 0):
                return self._fail("stack underflow at DUP")
            stack.append(stack[-1])
        elif c == SKIP:  # PROTO, FRAME: framing is only a read-ahead hint
            if op == 0x80 and self.buf[self.pos + 1] > 5:
                return self._fail(f"unsupported protocol {self.buf[self.pos + 1]}")
        elif c == EXT:
            code = int.from_bytes(self.buf[self.pos + 1 : self.pos + SIZE[op]], "little")
            self._hit(f"copyreg extension {code}", "unknown", NAME[op])
            stack.append(None)
        else:
            return self._fail(f"invalid opcode 0x{op:02x}")
        self.pos += SIZE[op]
        return -1

    def _put_op(self, op: int) -> int:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            return self._fail(f"{NAME[op]} with an empty stack")
        if op == 0x94:
            key = self.memo_len
        else:
            key = int.from_bytes(self.buf[self.pos + 1 : self.pos + SIZE[op]], "little")
        self._put(key, self.stack[-1])
        self.pos += SIZE[op]
        return -1

    def _length(self, op: int) -> int | None:
        """The length field of a length-prefixed opcode at ``pos``; None if cut off."""
        lsize = SIZE[op]
        if not self._need(1 + lsize):
            return None
        return int.from_bytes(self.buf[self.pos + 1 : self.pos + 1 + lsize], "little")

    def _string(self, op: int) -> int:
        n = self._length(op)
        if n is None:
            return self._fail(f"truncated {NAME[op]}")
        keep = self.nested_cap if self.collect else KEEP
        offset = self.base + self.pos + 1 + SIZE[op]
        data = self._take(1 + SIZE[op], n, keep)
        if data is False:
            return self._fail(f"truncated {NAME[op]} ({n} bytes declared)")
        if isinstance(data, bytes) and self.collect:
            self._candidate(offset, data, loose=True)
        self.stack.append(data if isinstance(data, bytes) and n <= KEEP else None)
        return -1

    def _bytes(self, op: int) -> int:
        n = self._length(op)
        if n is None:
            return self._fail(f"truncated {NAME[op]}")
        hdr = 1 + SIZE[op]
        offset = self.base + self.pos + hdr
        want = n <= self.nested_cap and (self.collect or self._peek_embedded(hdr, n))
        data = self._take(hdr, n, n if want else 0)
        if data is False:
            return self._fail(f"truncated {NAME[op]} ({n} bytes declared)")
        if isinstance(data, bytes):
            self._candidate(offset, data, loose=self.collect)
        self.stack.append(None)
        return -1

    def _peek_embedded(self, hdr: int, n: int) -> bool:
        look = min(n, 256)
        if n < 3 or not self._need(hdr + look):
            return False
        return looks_embedded(self.buf[self.pos + hdr : self.pos + hdr + look])

    def _long(self, op: int) -> int:
        n = self._length(op)
        if n is None or self._take(1 + SIZE[op], n, 0) is False:
            return self._fail(f"truncated {NAME[op]}")
        self.stack.append(None)
        return -1

    def _lines(self, count: int) -> list[bytes] | None:
        """Read ``count`` newline-terminated arguments after the opcode at ``pos``."""
        i, out = 1, list[bytes]()
        while len(out) < count:
            j = self.buf.find(b"\n", self.pos + i, self.end)
            if j < 0:
                if self.end - self.pos > LINE_MAX or not self._fill():
                    return None
                continue
            out.append(self.buf[self.pos + i : j])
            i = j + 1 - self.pos
        self.pos += i
        return out

    def _line_op(self, op: int, c: int) -> int:
        lines = self._lines(1)
        if lines is None:
            return self._fail(f"truncated or overlong {NAME[op]} line")
        line = lines[0]
        if c == LINE:
            self.stack.append(None)
            return -1
        if c == LINE_STR:
            return self._text_const(op, line)
        try:
            key = int(line)
        except ValueError:
            return self._fail(f"bad memo key in {NAME[op]}")
        if c == LINE_GET:
            self.stack.append(self._get(key))
            return -1
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
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
            return self._fail(f"undecodable {NAME[op]} argument")
        if self.collect:
            self._candidate(self.base + self.pos, value, loose=True)
        self.stack.append(value if len(value) <= KEEP else None)
        return -1

    # imports and calls ----------------------------------------------------------------
    def _global_op(self, op: int, c: int) -> int:
        offset = self.base + self.pos
        lines = self._lines(2)
        if lines is None:
            return self._fail(f"truncated {NAME[op]} argument")
        try:
            module, name = (line.decode("utf-8") for line in lines)
        except UnicodeDecodeError:
            return self._fail(f"undecodable {NAME[op]} name")
        g = self._resolve(module, name, NAME[op], offset)
        if c == GLOBAL:
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
        name, module = self._value(stack.pop()), self._value(stack.pop())
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
        if c == OBJ:
            if not self.marks or len(stack) <= self.marks[-1]:
                return self._fail("OBJ without class")
            mark = self.marks.pop()
            callee = stack[mark]
            del stack[mark:]
        else:
            k = POPS[op]
            if len(stack) - k < (self.marks[-1] if self.marks else 0):
                return self._fail(f"stack underflow at {NAME[op]}")
            callee = stack[-k]
            del stack[-k:]
        if isinstance(callee, Global):
            callee.hit.called = True
        stack.append(None)
        self.pos += 1
        return -1


def _describe(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, Global):
        return f"<result of {v.hit.name}>"
    return "<non-string>"

"""Guarding a streamed answer: output scanners over a sliding window.

:class:`StreamGuard` takes the answer's text deltas as they arrive and returns the part
that is safe to send now. The guarantee:

    Every character it releases has been scanned by every output scanner together with
    at least ``window`` characters that follow it in the stream (or with the end of the
    stream, in :meth:`~StreamGuard.finish`). A redaction is decided only once at least
    ``window`` characters follow its hit, and text is never released in the middle of a
    pending redaction or of a vault placeholder.

So any match whose shortest complete form is at most ``window`` characters long (a key, a
card number, a canary, a 60-byte copy of the system prompt) is caught before any of it
leaves; a longer item whose scanner matches its beginning (a PEM block from its header,
an unclosed image URL with a query) is held whole from that moment. A blocking hit stops
the stream as soon as it touches unreleased text: :meth:`feed` then returns the verdict
and nothing more is released. Each round rescans the unreleased text plus 64 characters
of released context; rounds run every ``step`` characters past the window, and less
often while a long item is held, so the work stays linear in the answer's length.

``<think>`` removal (``think`` with action ``redact``) runs before the scanners as a
small state machine, so a long reasoning block is dropped as it streams instead of being
held. Its ``open_at_start`` option treats the answer as starting inside a block; without
it, a closing tag with no opening one only removes the tag (the text before it was
already sent).
"""

from __future__ import annotations

from collections.abc import Sequence

from airlock.guard._apply import Entry, Span, Tally, apply, merge, scan_all
from airlock.guard._options import lower
from airlock.guard.base import GuardContext, Hit, Verdict
from airlock.guard.vault import PLACEHOLDER, Vault

CONTEXT = 64  # released characters rescanned as left context (word boundaries, long items)


class _ThinkFilter:
    """Drops ``<think>…</think>`` blocks from a stream of deltas."""

    def __init__(self, entry: Entry) -> None:
        scanner = entry.scanner
        self.opens = tuple(t.lower() for t in getattr(scanner, "opens", ("<think>",)))
        self.closes = tuple(t.lower() for t in getattr(scanner, "closes", ("</think>",)))
        self.inside = bool(getattr(scanner, "open_at_start", False))
        self.pending = ""
        self.skip_space = False
        self.blocks = 0
        self._longest = max(len(t) for t in (*self.opens, *self.closes))

    def feed(self, delta: str) -> str:
        text, out = self.pending + delta, []
        self.pending = ""
        while text:
            if self.inside:
                at, tag = _first(text, self.closes)
                if at < 0:  # keep what could be the start of a closing tag
                    self.pending = text[-(self._longest - 1) :] if self._longest > 1 else ""
                    break
                self.inside, self.skip_space, self.blocks = False, True, self.blocks + 1
                text = text[at + len(tag) :]
                continue
            if self.skip_space:
                text = text.lstrip()
                if not text:
                    break
                self.skip_space = False
            at, tag = _first(text, self.opens + self.closes)
            if at < 0:
                keep = _partial_tag(text, self.opens + self.closes)
                out.append(text[: len(text) - keep])
                self.pending = text[len(text) - keep :]
                break
            out.append(text[:at])
            self.inside = tag in self.opens  # a lone closing tag is only dropped
            self.blocks += not self.inside
            text = text[at + len(tag) :]
        return "".join(out)

    def finish(self) -> str:
        rest, self.pending = ("" if self.inside else self.pending), ""
        return rest


def _first(text: str, tags: Sequence[str]) -> tuple[int, str]:
    """The earliest of ``tags`` in ``text`` (case-insensitive): (position, tag) or (-1, "")."""
    low = lower(text)  # same length as text, so positions carry over
    best, which = -1, ""
    for tag in tags:
        at = low.find(tag)
        if at >= 0 and (best < 0 or at < best):
            best, which = at, tag
    return best, which


def _partial_tag(text: str, tags: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins one of ``tags``."""
    low = lower(text[-max(len(t) for t in tags) :])
    for n in range(len(low), 0, -1):
        if any(t.startswith(low[-n:]) for t in tags):
            return n
    return 0


def _settle(cut: int, holds: list[tuple[int, int]], floor: int) -> int:
    """Move ``cut`` left until it splits none of ``holds`` (never below ``floor``)."""
    moved = True
    while moved:
        moved = False
        for start, end in holds:
            if start < cut < end:
                cut, moved = start, True
    return max(cut, floor)


class StreamGuard:
    """Output scanners over one streamed answer (see the module docstring).

    ``feed(delta)`` returns ``(text safe to send now, blocking verdict or None)``;
    ``finish()`` returns the rest. :attr:`verdicts` holds what each scanner found so far.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        think: Entry | None,
        vault: Vault | None,
        ctx: GuardContext | None,
        window: int = 128,
        step: int = 16,
    ) -> None:
        if window < 0 or step < 1:
            raise ValueError("window must be >= 0 and step >= 1")
        self.window, self.step = window, step
        self._entries = tuple(entries)
        self._vault, self._ctx = vault, ctx
        self._think = _ThinkFilter(think) if think is not None else None
        every = ((think,) if think is not None else ()) + self._entries
        self._tallies = {e.name: Tally(e) for e in every}
        self._think_entry = think
        self._tail = self._buf = ""
        self._released = 0  # characters released so far (after redaction, before restore)
        self._next = window + step
        self._blocked: Verdict | None = None
        self._done = False

    @property
    def verdicts(self) -> list[Verdict]:
        """Each scanner's verdict on the stream so far."""
        return [t.verdict("output") for t in self._tallies.values()]

    @property
    def blocked(self) -> Verdict | None:
        """The verdict that stopped the stream, if one did."""
        return self._blocked

    def feed(self, delta: str | None) -> tuple[str, Verdict | None]:
        """Take the next piece of the answer; return the text that may be sent now."""
        if self._blocked is not None or self._done:
            return "", self._blocked
        if delta and self._think is not None:
            delta = self._strip_think(delta, final=False)
        if delta:
            self._buf += delta
        if len(self._buf) < self._next:
            return "", None
        return self._round(final=False)

    def finish(self) -> tuple[str, Verdict | None]:
        """The end of the answer: scan and release everything still held."""
        if self._blocked is not None or self._done:
            return "", self._blocked
        if self._think is not None:
            self._buf += self._strip_think("", final=True)
        self._done = True
        return self._round(final=True) if self._buf else ("", None)

    def _strip_think(self, delta: str, final: bool) -> str:
        assert self._think is not None and self._think_entry is not None
        before = self._think.blocks
        kept = self._think.finish() if final else self._think.feed(delta)
        if self._think.blocks > before or (final and self._think.inside):
            at = self._released + len(self._buf)
            self._tallies[self._think_entry.name].hits.append(Hit("think", at, at))
        return kept

    def _round(self, final: bool) -> tuple[str, Verdict | None]:
        tail, text = self._tail, self._tail + self._buf
        floor, base = len(tail), self._released - len(tail)
        found = scan_all(self._entries, text, self._ctx, self._tallies)
        for entry, hits in found:
            live = [h for h in hits if h.end > floor]
            if entry.action == "block" and live:
                self._record(entry, live, base)
                self._blocked = self._tallies[entry.name].verdict("output")
                return "", self._blocked
        spans = [
            Span(max(h.start, floor), h.end, entry, h.kind)
            for entry, hits in found
            if entry.action == "redact"
            for h in hits
            if h.end > floor
        ]
        holds = [(s.start, s.end) for s in spans]
        holds += [m.span() for m in PLACEHOLDER.finditer(text, floor)]
        cut = _settle(len(text) if final else len(text) - self.window, holds, floor)
        ready = [s for s in spans if s.end <= cut]
        self._tally_round(found, floor, cut, ready, base)
        released = apply(text[:cut], merge(ready, "output"), "output", None)[floor:]
        self._buf = text[cut:]
        self._released += len(released)
        self._tail = (tail + released)[-CONTEXT:]
        grow = max(self.step, len(self._buf) // 2)
        self._next = self.window + self.step if released else len(self._buf) + grow
        return (self._vault.restore(released) if self._vault else released), None

    def _tally_round(
        self, found: list[tuple[Entry, list[Hit]]], floor: int, cut: int, ready: list[Span],
        base: int,
    ) -> None:  # fmt: skip
        """Record flags that start in the released text and redactions applied now."""
        for entry, hits in found:
            if entry.action == "flag":
                self._record(entry, [h for h in hits if floor <= h.start < cut], base)
        for span in ready:
            self._record(span.entry, [Hit(span.kind, span.start, span.end)], base)

    def _record(self, entry: Entry, hits: list[Hit], base: int) -> None:
        self._tallies[entry.name].hits += (
            Hit(h.kind, h.start + base, h.end + base, h.score) for h in hits
        )

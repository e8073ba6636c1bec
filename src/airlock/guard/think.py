"""Reasoning blocks (scanner ``think``): ``<think>…</think>`` in an answer.

Reasoning models (DeepSeek-R1, QwQ, Qwen3 …) served without a reasoning parser put
their chain of thought in the answer. It can hold what the answer was told to keep back,
and users rarely should see it. With action ``redact`` the blocks are removed (with the
blank space after them); ``flag`` records them; ``block`` refuses the answer.

A hit covers one block, from its opening tag to its closing tag (or to the end of the
text when the block is still open). A closing tag with no opening tag before it (chat
templates that open the block in the prompt) makes everything up to it a block.
Options: ``tags`` (default ``[think]``), ``open_at_start`` (streaming only: treat the
answer as starting inside a block, for templates that open it in the prompt; see
:class:`~airlock.guard.stream.StreamGuard`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airlock.guard._options import Options, limit_hits
from airlock.guard.base import GuardContext, Hit
from airlock.guard.registry import register

_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,30}")


@register("think")
class ThinkScanner:
    """Reasoning blocks in an answer."""

    name: str = "think"
    stages: tuple[str, ...] = ("output",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.tags = tuple(opts.strings("tags", ["think"]))
        self.open_at_start = opts.flag("open_at_start", False)
        opts.done()
        for tag in self.tags:
            if not _TAG.fullmatch(tag):
                raise opts.error("tags", "a list of tag names like think", tag)
        names = "|".join(re.escape(t) for t in self.tags)
        self.opens = tuple(f"<{t}>" for t in self.tags)
        self.closes = tuple(f"</{t}>" for t in self.tags)
        self._block = re.compile(rf"<({names})>.*?(?:</\1>\s*|\Z)", re.S | re.I)
        self._close = re.compile(rf"</(?:{names})>\s*", re.I)

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """One hit per reasoning block."""
        if "<" not in text:
            return []
        hits: list[Hit] = []
        first_open = self._block.search(text)
        lone = self._close.search(text, 0, first_open.start() if first_open else len(text))
        pos = 0
        if lone is not None:
            hits.append(Hit("think", 0, lone.end()))
            pos = lone.end()
        hits += (Hit("think", m.start(), m.end()) for m in self._block.finditer(text, pos))
        return limit_hits(hits)

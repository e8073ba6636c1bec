"""The contract for talking to a model: one request in, one completion out.

A target is anything with ``async complete(request) -> Completion``. Failures are
:class:`TargetError` with a ``kind`` the runner uses to decide whether to retry::

    TargetError
     kinds: unreachable, timeout, http (status set), auth (401/403),
            not-found (unknown model), protocol (garbage body), cancelled
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, str]
"""An OpenAI chat message: ``{"role": "system"|"user"|"assistant", "content": "..."}``."""

RETRYABLE = frozenset({"unreachable", "timeout", "http-retry", "protocol"})


@dataclass(frozen=True)
class ChatRequest:
    """What to send. ``None`` fields are left out of the request body."""

    messages: tuple[Message, ...]
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What came back: the answer and, kept apart, any reasoning the model showed."""

    text: str
    reasoning: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0


class TargetError(Exception):
    """A request failed. ``kind`` is one of the kinds in this module's docstring."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


class Target(Protocol):
    """A model endpoint. ``name`` labels it in reports (several targets side by side)."""

    name: str

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def preflight(self) -> None:
        """Check the endpoint answers and knows the model; raise TargetError if not."""

    async def aclose(self) -> None: ...


_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)


def split_reasoning(text: str, reasoning: str = "") -> tuple[str, str]:
    """Separate ``<think>…</think>`` blocks from the answer.

    Returns (answer, reasoning); reasoning the server gave apart (``reasoning_content``)
    comes first. An unclosed ``<think>`` runs to the end (a model cut off mid-thought
    gave no answer); a lone ``</think>`` (chat templates that open the block
    themselves, as DeepSeek-R1's do) ends reasoning that started with the text.
    """
    low = text.lower()
    if "<think>" in low:
        found = [m.group(1).strip() for m in _THINK.finditer(text)]
        answer = _THINK.sub("", text).strip()
    elif "</think>" in low:
        cut = low.index("</think>")
        found, answer = [text[:cut].strip()], text[cut + len("</think>") :].strip()
    else:
        return text, reasoning
    return answer, "\n".join(p for p in [reasoning, *found] if p)


def public_url(url: str) -> str:
    """``url`` fit for a report: no user, password or query string."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparseable URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

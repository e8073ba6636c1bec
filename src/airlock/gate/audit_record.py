"""One audit row per gateway request, and the hash that chains each row to the one before.

A row is stored as plain column values (:data:`FIELDS`, in that order). Its hash is
``sha256(prev_hash || canonical JSON of {seq, *FIELDS})``, computed over the values
exactly as stored (verdicts as their JSON text, stream as 0/1), so a change to any
stored byte of a row changes its hash. Canonical JSON: keys sorted, no spaces
(``","`` and ``":"``), non-ASCII as ``\\uXXXX`` escapes; ``prev_hash`` is the previous
row's hex digest (64 zeros for the first row).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

DECISIONS = ("allowed", "blocked", "upstream-error", "client-disconnected", "rejected")
CONTENT_POLICIES = ("full", "redacted", "hash")
GENESIS = "0" * 64  # the prev_hash of the first row
FIELDS = (
    "time",
    "request_id",
    "key_id",
    "client",
    "path",
    "model",
    "upstream",
    "status",
    "decision",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "stream",
    "verdicts",
    "blocked_by",
    "error",
    "content_policy",
    "prompt",
    "response",
)
MAX_ERROR = 4000  # error text comes from upstreams: keep it, but bounded
_INT64 = 2**63 - 1
_HASHED_PREFIX = "sha256:"

# A row as stored: the values of FIELDS, in order (verdicts as JSON text, stream as 0/1).
Values = tuple[Any, ...]


def utc_now() -> str:
    """The current time in UTC, ISO 8601 with milliseconds: ``2025-01-31T12:00:00.123Z``."""
    return _fmt(datetime.now(UTC))


def iso_utc(text: str) -> str:
    """Normalise a user-given date or time (``2025-01-31``, ``2025-01-31T12:00+08:00`` …)
    to the stored format, so it compares correctly with stored times. Naive times are UTC.

    Raises:
        ValueError: ``text`` is not an ISO 8601 date or time.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _fmt(when.astimezone(UTC))


def _fmt(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stored_content(policy: str, text: str | None, redacted: str | None = None) -> str | None:
    """What the audit log keeps of a prompt or response under ``policy``.

    Args:
        policy: ``full`` (the text as is), ``redacted`` (the text after guard redaction;
            ``text`` when nothing was redacted) or ``hash`` (``sha256:<hex>`` of ``text``).
        text: the original text, or ``None`` when there is none (e.g. no response).
        redacted: the text after redaction, if the guard changed it.
    """
    if policy not in CONTENT_POLICIES:
        raise ValueError(f"unknown content policy {policy!r}; expected one of {CONTENT_POLICIES}")
    if text is None:
        return None
    if policy == "full":
        return text
    if policy == "redacted":
        return redacted if redacted is not None else text
    return _digest(text)


def _digest(text: str) -> str:
    if text.startswith(_HASHED_PREFIX) and len(text) == len(_HASHED_PREFIX) + 64:
        return text  # already hashed
    return _HASHED_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class AuditRecord:
    """What the gateway records about one request, whatever happened to it.

    The gateway fills a record in as the request goes and submits it once at the end.
    ``client`` is the caller's address, ``path`` the endpoint, ``upstream`` the one that
    answered (or failed last), ``key_id`` the gateway key's id (never the key itself).
    ``verdicts`` holds each scanner's verdict as a dict (``Verdict.to_dict()``);
    ``prompt`` and ``response`` hold what :meth:`set_content` keeps under the policy.
    """

    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=utc_now)
    key_id: str | None = None
    client: str | None = None
    path: str | None = None
    model: str | None = None
    upstream: str | None = None
    status: int = 0
    decision: str = "allowed"
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stream: bool = False
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    blocked_by: str | None = None
    error: str | None = None
    content_policy: str = "hash"
    prompt: str | None = None
    response: str | None = None

    def set_content(
        self,
        policy: str,
        *,
        prompt: str | None,
        response: str | None,
        redacted_prompt: str | None = None,
        redacted_response: str | None = None,
    ) -> None:
        """Keep the prompt and response as ``policy`` says (see :func:`stored_content`)."""
        self.prompt = stored_content(policy, prompt, redacted_prompt)
        self.response = stored_content(policy, response, redacted_response)
        self.content_policy = policy

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


def stored_values(rec: AuditRecord) -> Values:
    """The record as column values ready to store: text made storable (no NUL, no lone
    surrogates), numbers in range, verdicts as canonical JSON text.

    Raises:
        ValueError: ``decision`` or ``content_policy`` is not a known value (a bug in the
            caller, not bad input).
    """
    if rec.decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {rec.decision!r}; expected one of {DECISIONS}")
    if rec.content_policy not in CONTENT_POLICIES:
        raise ValueError(f"unknown content policy {rec.content_policy!r}")
    prompt, response = rec.prompt, rec.response
    if rec.content_policy == "hash":  # the last line of defence for the privacy policy
        prompt = None if prompt is None else _digest(prompt)
        response = None if response is None else _digest(response)
    return (
        _text(rec.time) or utc_now(),
        _text(rec.request_id) or "",
        _text(rec.key_id),
        _text(rec.client),
        _text(rec.path),
        _text(rec.model),
        _text(rec.upstream),
        rec.status if _is_int(rec.status) and 0 <= rec.status <= 999 else 0,
        rec.decision,
        _ms(rec.latency_ms),
        _count(rec.prompt_tokens),
        _count(rec.completion_tokens),
        1 if rec.stream else 0,
        _json([_plain(v) for v in rec.verdicts]),
        _text(rec.blocked_by),
        _text(rec.error, MAX_ERROR),
        rec.content_policy,
        _text(prompt),
        _text(response),
    )


def record_from_values(values: Values) -> AuditRecord:
    """Rebuild a record from stored column values (for reading; never for hashing)."""
    d = dict(zip(FIELDS, values, strict=True))
    try:
        d["verdicts"] = json.loads(d["verdicts"])
    except (TypeError, ValueError):
        d["verdicts"] = [{"unreadable": str(d["verdicts"])}]
    d["stream"] = bool(d["stream"])
    return AuditRecord(**d)


def row_hash(seq: int, prev_hash: str, values: Values) -> str:
    """The chain hash of a row: sha256 over the previous hash and the row's canonical JSON."""
    payload = dict(zip(FIELDS, values, strict=True))
    payload["seq"] = seq
    # ensure_ascii makes the text pure ASCII, whatever a tampered database returns;
    # default=repr turns odd stored types into text, which then fails the comparison.
    canon = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr
    )
    data = str(prev_hash).encode("utf-8", "surrogatepass") + canon.encode("ascii")
    return hashlib.sha256(data).hexdigest()


class Head(NamedTuple):
    """The newest row of the log: its seq and hash (``0:000…`` for an empty log).
    Written down elsewhere, it lets :meth:`AuditLog.verify` detect a shortened log."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """Read ``SEQ:HASH`` (as printed by ``airlock audit head``).

        Raises:
            ValueError: not of that form.
        """
        seq, sep, digest = text.strip().partition(":")
        digest = digest.lower()
        if not (sep and seq.isascii() and seq.isdigit() and len(digest) == 64):
            raise ValueError(f"expected SEQ:HASH (a number, a colon, 64 hex digits), got {text!r}")
        if any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"the hash in {text!r} is not hexadecimal")
        return cls(int(seq), digest)


class AuditEntry(NamedTuple):
    """A stored row: its place in the chain and the record."""

    seq: int
    prev_hash: str
    hash: str
    record: AuditRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            **self.record.to_dict(),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(v: object) -> int | None:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _INT64:
        return v
    return None


def _ms(v: object) -> float:
    try:
        ms = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    # + 0.0 turns -0.0 into 0.0: the databases store no sign of zero, the hash would
    return round(ms, 3) + 0.0 if math.isfinite(ms) and ms >= 0 else 0.0


def _text(v: object, limit: int | None = None) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    if "\x00" in s:  # PostgreSQL text cannot hold NUL
        s = s.replace("\x00", "\ufffd")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes: not storable as UTF-8
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def _plain(v: object) -> object:
    to_dict = getattr(v, "to_dict", None)
    return to_dict() if callable(to_dict) else v


def _json(v: object) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)

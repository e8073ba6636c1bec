"""The guard pipeline: input scanners on the messages, output scanners on the answer.

Configuration (a mapping, e.g. the ``guard:`` section of ``gate.yaml``)::

    input:
      injection: {action: block, threshold: 0.7}
      secrets: {action: redact}
      pii: {action: redact, kinds: [email, phone, card, iban, cn_id, ip]}
      unicode: {action: redact}
      terms: {action: block, terms: [project-x]}
    output:
      leaks: {action: block, canaries: []}
      secrets: {action: redact}
      pii: {action: redact}
      exfil: {action: redact, allowed_hosts: [example.com]}
      code: {action: flag}
      think: {action: redact}

Each scanner runs in the order given; ``name: false`` (or leaving it out) turns it off.
Options every scanner takes: ``action`` (``block``, ``redact`` or ``flag``; each
scanner has a default), and on input ``roles`` (message roles to scan; default all, for
``injection`` only ``user``, ``tool`` and ``function``: the system prompt is the
operator's) and ``restore`` (``true``, ``false`` or a list of kinds: which redactions
are put back in the answer; default: every ``pii`` kind, nothing else; ``secrets``
cannot be restored — a secret never goes back out). Other options are the scanner's.

:meth:`Pipeline.default` is::

    input:  unicode (redact), injection (block, 0.7), secrets (redact),
            pii (redact, all kinds, restored in the answer)
    output: leaks (block: the request's system prompt, 60-byte overlaps),
            secrets (redact), pii (redact; every kind but ip),
            exfil (redact, no allowed hosts), code (flag)

``<think>`` removal is not in the defaults (add ``think: {action: redact}``).

Actions: ``block`` stops the request (the first blocking verdict is
``result.blocked``), ``redact`` replaces the hit (input: a vault placeholder such as
``[EMAIL_1]`` or ``[SECRET_2]``; output: ``[REDACTED_EMAIL]``; ``unicode`` and ``think``
hits are removed), ``flag`` only records. Verdicts carry each scanner's time in µs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airlock.guard._apply import Entry, Found, Span, Tally, apply, merge, scan_all
from airlock.guard.base import ACTIONS, GuardConfigError, GuardContext, Verdict
from airlock.guard.registry import create
from airlock.guard.stream import StreamGuard
from airlock.guard.vault import Vault

DEFAULT_ACTIONS = {"injection": "block", "secrets": "redact", "pii": "redact",
                   "unicode": "redact", "terms": "block", "leaks": "block",
                   "exfil": "redact", "code": "flag", "think": "redact"}  # fmt: skip
_DEFAULT_ROLES = {"injection": frozenset({"user", "tool", "function"})}
DEFAULT_CONFIG: dict[str, dict[str, dict[str, Any]]] = {
    "input": {
        "unicode": {"action": "redact"},
        "injection": {"action": "block", "threshold": 0.7},
        "secrets": {"action": "redact"},
        "pii": {"action": "redact"},
    },
    "output": {
        "leaks": {"action": "block"},
        "secrets": {"action": "redact"},
        "pii": {"action": "redact", "kinds": ["email", "phone", "card", "iban", "cn_id", "ssn"]},
        "exfil": {"action": "redact", "allowed_hosts": []},
        "code": {"action": "flag"},
    },
}
DEFAULT_WINDOW = 128


@dataclass
class InputResult:
    """The messages to send upstream (redacted), what each scanner said, the first
    blocking verdict (None: go ahead), the request's vault and its context."""

    messages: list[Any]
    verdicts: list[Verdict]
    blocked: Verdict | None
    vault: Vault
    context: GuardContext = field(default_factory=GuardContext)


@dataclass
class OutputResult:
    """The answer to send (redacted, placeholders restored), verdicts, first block."""

    text: str
    verdicts: list[Verdict]
    blocked: Verdict | None


def _restore(name: str, stage: str, value: Any) -> tuple[bool, frozenset[str]]:
    if value is None:
        return (name == "pii" and stage == "input"), frozenset()
    if name == "secrets" and value not in (False, []):
        raise GuardConfigError("secrets: restore is not allowed (a secret never goes back out)")
    if isinstance(value, bool):
        return value, frozenset()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return False, frozenset(value)
    raise GuardConfigError(f"{name}: option 'restore' must be true, false or a list of kinds")


def _roles(name: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return _DEFAULT_ROLES.get(name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GuardConfigError(f"{name}: option 'roles' must be a list of message roles")
    return frozenset(value)


def _entry(name: str, stage: str, options: Any) -> Entry:
    if options is True or options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise GuardConfigError(f"{stage}.{name}: options must be a mapping, not {options!r}")
    action = options.get("action", DEFAULT_ACTIONS.get(name, "flag"))
    if action not in ACTIONS:
        raise GuardConfigError(f"{stage}.{name}: action must be one of {', '.join(ACTIONS)}")
    scanner = create(name, options)
    if stage not in scanner.stages:
        raise GuardConfigError(f"{name} runs on {' and '.join(scanner.stages)} only, not {stage}")
    restore_all, kinds = _restore(name, stage, options.get("restore"))
    return Entry(scanner, action, restore_all, kinds, _roles(name, options.get("roles")))


def _stage(config: Mapping[str, Any], stage: str) -> tuple[Entry, ...]:
    section = config.get(stage) or {}
    if not isinstance(section, Mapping):
        raise GuardConfigError(f"guard {stage} must be a mapping of scanner: options")
    return tuple(_entry(str(n), stage, o) for n, o in section.items() if o is not False)


class Pipeline:
    """Configured input and output scanners; one instance serves every request."""

    def __init__(self, inputs: Sequence[Entry], outputs: Sequence[Entry]) -> None:
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        # A model-based scanner (the injection classifier) takes milliseconds: callers on
        # an event loop should run check_input in a thread when this is set.
        self.slow = any(getattr(e.scanner, "classifier", None) is not None for e in self.inputs)
        self._think = next((e for e in outputs if e.name == "think" and e.action == "redact"), None)
        self._outputs = tuple(e for e in self.outputs if e is not self._think)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Pipeline:
        """A pipeline from ``{input: {scanner: options}, output: {...}}``.

        Raises:
            GuardConfigError: unknown section, scanner, action or option.
        """
        if not isinstance(config, Mapping):
            raise GuardConfigError("guard configuration must be a mapping with input/output")
        unknown = sorted(str(k) for k in set(config) - {"input", "output"})
        if unknown:
            raise GuardConfigError(f"guard: unknown section(s) {', '.join(unknown)}")
        return cls(_stage(config, "input"), _stage(config, "output"))

    @classmethod
    def default(cls) -> Pipeline:
        """The default scanners (see the module docstring)."""
        return cls.from_config(DEFAULT_CONFIG)

    def check_input(self, messages: Sequence[Any]) -> InputResult:
        """Scan every message's text (strings and ``text`` content parts), apply actions.

        Raises:
            TypeError: ``messages`` is not a list.
        """
        if not isinstance(messages, (list, tuple)):
            raise TypeError(f"messages must be a list, not {type(messages).__name__}")
        vault = Vault()
        tallies = {e.name: Tally(e) for e in self.inputs}
        out = [self._message(m, vault, tallies) for m in messages]
        verdicts = [t.verdict("input") for t in tallies.values()]
        system = "\n".join(_texts(m) for m in out if isinstance(m, dict) and _is_system(m))
        return InputResult(out, verdicts, _first_block(verdicts), vault, GuardContext(system))

    def _message(self, msg: Any, vault: Vault, tallies: dict[str, Tally]) -> Any:
        if not isinstance(msg, dict):
            return msg
        role = msg.get("role") if isinstance(msg.get("role"), str) else None
        entries = [e for e in self.inputs if e.roles is None or role in e.roles]
        # The operator's own prompt: what is redacted there is never put back in an
        # answer (a user could otherwise ask the model to print the placeholder).
        keep = not _is_system(msg)
        content = msg.get("content")
        if isinstance(content, str):
            new: Any = self._text(content, entries, vault, tallies, keep)
        elif isinstance(content, list):
            new = [self._part(p, entries, vault, tallies, keep) for p in content]
        else:
            return msg
        return msg if new == content else {**msg, "content": new}

    def _part(
        self,
        part: Any,
        entries: list[Entry],
        vault: Vault,
        tallies: dict[str, Tally],
        restorable: bool = True,
    ) -> Any:
        if (
            isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ):
            text = self._text(part["text"], entries, vault, tallies, restorable)
            return part if text == part["text"] else {**part, "text": text}
        return part

    def _text(
        self,
        text: str,
        entries: list[Entry],
        vault: Vault,
        tallies: dict[str, Tally],
        restorable: bool = True,
    ) -> str:
        found = scan_all(entries, text, None, tallies)
        _tally(found, tallies)
        return apply(text, _spans(found, "input"), "input", vault, restorable)

    def check_output(
        self, text: str, vault: Vault | None = None, ctx: GuardContext | None = None
    ) -> OutputResult:
        """Scan a whole answer, apply actions, then restore the vault's placeholders."""
        tallies = {e.name: Tally(e) for e in self.outputs}
        if self._think is not None:
            found = scan_all([self._think], text, ctx, tallies)
            _tally(found, tallies)
            text = apply(text, _spans(found, "output"), "output", None)
        found = scan_all(self._outputs, text, ctx, tallies)
        _tally(found, tallies)
        text = apply(text, _spans(found, "output"), "output", None)
        verdicts = [tallies[e.name].verdict("output") for e in self.outputs]
        blocked = _first_block(verdicts)
        return OutputResult(vault.restore(text) if vault else text, verdicts, blocked)

    def stream(
        self,
        vault: Vault | None = None,
        ctx: GuardContext | None = None,
        window: int = DEFAULT_WINDOW,
        step: int = 16,
    ) -> StreamGuard:
        """A guard for one streamed answer (see :class:`StreamGuard` for its guarantee)."""
        return StreamGuard(self._outputs, self._think, vault, ctx, window=window, step=step)


def _spans(found: Found, stage: str) -> list[Span]:
    spans = (
        Span(h.start, h.end, entry, h.kind)
        for entry, hits in found
        if entry.action == "redact"
        for h in hits
    )
    return merge(spans, stage)


def _tally(found: Found, tallies: dict[str, Tally]) -> None:
    for entry, hits in found:
        tallies[entry.name].hits += hits


def _first_block(verdicts: list[Verdict]) -> Verdict | None:
    return next((v for v in verdicts if v.action == "block" and v.hits), None)


def _is_system(msg: dict[str, Any]) -> bool:
    return msg.get("role") in ("system", "developer")


def _texts(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""

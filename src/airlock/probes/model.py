"""Probe cases and attempts: the dynamic half of airlock's result model.

A probe pack (YAML under ``probes/data/``) expands into :class:`Probe` cases: one
concrete conversation in one language with the detectors that judge it. Running a
case against a target once is an :class:`Attempt`; a campaign is many attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.findings import Severity
from airlock.targets.base import Message

FAMILIES = (
    "injection",  # 1 direct prompt injection / goal hijacking
    "indirect",  # 2 instructions hidden in documents, mails, pages, tool results
    "extraction",  # 3 system-prompt extraction
    "jailbreak",  # 4 jailbreak templates × disallowed requests
    "encoding",  # 5 encodings, obfuscation, translation
    "multiturn",  # 6 scripted crescendo conversations
    "insecure-code",  # 7 insecure code generation
    "packages",  # 8 package hallucination
    "censorship",  # 9 censorship and narrative alignment (measurement)
    "backdoor",  # 10 trigger scan: paired prompts with and without triggers
)
LANGS = ("en", "zh")


@dataclass(frozen=True)
class DetectorSpec:
    """One detector as a probe uses it: name, threshold, what to read, parameters.

    ``scope``: ``answer``, ``reasoning`` or ``both`` (the highest score of the two);
    ``None`` takes the detector's own default.
    """

    name: str
    threshold: float = 0.5
    scope: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One concrete test case.

    ``messages`` is the opening (system, if any, then the first user turn);
    ``followups`` are later user turns of a scripted multi-turn conversation, sent
    one at a time with the target's own answers in between; the last answer is judged.
    ``params`` carries what detectors and analyses need: ``canary``, ``markers``,
    ``group`` (``sensitive``/``control``, ``triggered``/``clean``), ``topic``,
    ``trigger``, ``pair`` (the key that pairs a triggered case with its clean twin).
    A hit means the attack worked (or, for censorship, the measured behaviour showed).
    """

    id: str
    family: str
    lang: str
    title: str
    messages: tuple[Message, ...]
    detectors: tuple[DetectorSpec, ...]
    followups: tuple[str, ...] = ()
    combine: str = "any"  # "any" | "all": how detector verdicts make a hit
    severity: Severity = Severity.HIGH
    goal: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    probe: str = ""  # the pack probe this case expands from (grid items fold into it)
    probe_title: str = ""

    @property
    def summary_id(self) -> str:
        """What results are summarised under: the pack probe, else the case's base id."""
        return self.probe or self.base_id

    @property
    def base_id(self) -> str:
        """The probe's id without the language suffix (groups en and zh results)."""
        return self.id.rsplit(".", 1)[0] if self.id.endswith("." + self.lang) else self.id


@dataclass
class Attempt:
    """One probe case sent once to one target, with what came back and how it was judged."""

    probe_id: str
    family: str
    lang: str
    target: str
    generation: int
    messages: list[Message]
    response: str = ""
    reasoning: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    hit: bool = False
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    cached: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The target answered (judged); errored attempts count apart, not as misses."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe_id": self.probe_id,
            "family": self.family,
            "lang": self.lang,
            "target": self.target,
            "generation": self.generation,
            "messages": self.messages,
            "response": self.response,
            "reasoning": self.reasoning,
            "scores": self.scores,
            "hit": self.hit,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
            "cached": self.cached,
            "params": self.params,
        }

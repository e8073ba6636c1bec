"""Detectors: small scored functions that judge one answer.

A detector is ``fn(evidence) -> float`` in 0..1, registered with :func:`detector`.
It sees one text at a time (the answer or the reasoning, per its scope) and the
probe's parameters. Built-ins register the same way a plugin would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Evidence:
    """What a detector judges: one text, plus the case it answers."""

    text: str
    lang: str
    params: Mapping[str, Any] = field(default_factory=dict)  # probe params + spec params
    prompt: str = ""  # the last user turn, so a detector can tell quoting from complying


DetectorFn = Callable[[Evidence], float]


@dataclass(frozen=True)
class Detector:
    name: str
    fn: DetectorFn
    scope: str  # default scope: "answer" | "reasoning" | "both"
    description: str


_DETECTORS: dict[str, Detector] = {}
_loaded = False


def detector(
    name: str, *, scope: str = "both", description: str = ""
) -> Callable[[DetectorFn], DetectorFn]:
    """Register ``fn`` as detector ``name``.

    Raises:
        ValueError: the name is taken or the scope unknown.
    """
    if scope not in ("answer", "reasoning", "both"):
        raise ValueError(f"unknown scope {scope!r}")

    def register(fn: DetectorFn) -> DetectorFn:
        if name in _DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        doc = description or (fn.__doc__ or "").strip().split("\n", 1)[0]
        _DETECTORS[name] = Detector(name, fn, scope, doc)
        return fn

    return register


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        import importlib

        importlib.import_module("airlock.probes.detectors.builtin")  # registers on import
        _loaded = True


def get(name: str) -> Detector:
    """The detector called ``name``.

    Raises:
        KeyError: no such detector.
    """
    _load_builtins()
    return _DETECTORS[name]


def all_detectors() -> dict[str, Detector]:
    _load_builtins()
    return dict(_DETECTORS)

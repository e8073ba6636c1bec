"""The scanner registry: a name maps to a factory taking the scanner's options.

Built-ins register on import, the same way a plugin would::

    @register("my-check")
    class MyCheck:
        name = "my-check"
        stages = ("input",)
        def __init__(self, options: Mapping[str, Any]) -> None: ...
        def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]: ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airlock.guard.base import GuardConfigError, Scanner

ScannerFactory = Callable[[Mapping[str, Any]], Scanner]
F = TypeVar("F", bound=ScannerFactory)

_FACTORIES: dict[str, ScannerFactory] = {}
_BUILTINS = ("injection", "secrets", "pii", "unicode", "terms", "leaks", "exfil", "code", "think")
_loaded = False


def register(name: str) -> Callable[[F], F]:
    """Register a scanner factory (usually the class) under ``name``.

    Raises:
        ValueError: the name is taken.
    """

    def deco(factory: F) -> F:
        if name in _FACTORIES:
            raise ValueError(f"guard scanner {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return deco


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTINS:
            importlib.import_module(f"airlock.guard.{module}")


def names() -> list[str]:
    """Every registered scanner name, sorted."""
    _load_builtins()
    return sorted(_FACTORIES)


def create(name: str, options: Mapping[str, Any] | None = None) -> Scanner:
    """A scanner built from its options.

    Raises:
        GuardConfigError: unknown scanner, or options it does not accept.
    """
    _load_builtins()
    factory = _FACTORIES.get(name)
    if factory is None:
        raise GuardConfigError(f"unknown guard scanner {name!r} (known: {', '.join(names())})")
    return factory(options or {})

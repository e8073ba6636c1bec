"""Reading pack YAML with line numbers: the node reader, placeholders, per-language values.

Packs are composed (not constructed) with a safe loader so every value keeps its
line; the reader turns nodes into plain values and raises :class:`PackError`
naming ``file:line`` on the first problem. A node budget bounds alias expansion.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from airlock.probes.model import LANGS

N = yaml.Node
MAX_BYTES = 4 << 20
MAX_NODES = 200_000  # bounds alias expansion ("billion laughs") and giant files
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}|\{(\w+)\}")


class PackError(Exception):
    """An invalid pack file; the message starts with ``file:line:``."""


class PerLang(dict[str, Any]):
    """A value given per language (all of :data:`LANGS`)."""


class Reader:
    """Reads one composed YAML file; every error names the file and the node's line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.budget = MAX_NODES

    def error(self, node: N | None, message: str) -> PackError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PackError(f"{self.path}:{line}: {message}")

    def _count(self, node: N) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise self.error(node, "pack too large (or too many aliases)")

    def mapping(self, node: N, what: str, keys: frozenset[str] | None = None) -> dict[str, N]:
        self._count(node)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what}: expected a mapping")
        out: dict[str, N] = {}
        for key, value in node.value:
            name = self.text(key, f"{what}: key")
            if name in out:
                raise self.error(key, f"{what}: duplicate key {name!r}")
            if keys is not None and name not in keys:
                known = ", ".join(sorted(keys))
                raise self.error(key, f"{what}: unknown key {name!r} (known: {known})")
            out[name] = value
        return out

    def seq(self, node: N, what: str) -> list[N]:
        self._count(node)
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what}: expected a list")
        return list(node.value)

    def scalar(self, node: N, what: str) -> Any:
        self._count(node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what}: expected a single value")
        kind = node.tag.rsplit(":", 1)[-1]
        if kind == "str":
            return node.value
        if kind == "null":
            return None
        if kind == "bool":
            return node.value.lower() in ("yes", "true", "on", "y")
        if kind in ("int", "float"):
            build = yaml.constructor.SafeConstructor()
            try:
                return build.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError):
                pass
        raise self.error(node, f"{what}: unsupported value {node.value[:40]!r} (quote it)")

    def text(self, node: N, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value.strip():
            raise self.error(node, f"{what}: expected non-empty text")
        return value

    def number(self, node: N, what: str, low: float, high: float) -> float:
        value = self.scalar(node, what)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise self.error(node, f"{what}: expected a number from {low} to {high}")
        return float(value)

    def flag(self, node: N, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            raise self.error(node, f"{what}: expected true or false")
        return value

    def plain(self, node: N, what: str) -> Any:
        """Any value (params): lists, mappings and scalars; per-language maps marked."""
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(n, what) for n in self.seq(node, what)]
        if isinstance(node, yaml.MappingNode):
            keys = self.mapping(node, what)
            if keys and set(keys) <= set(LANGS):
                return self.localized(node, what, self.plain)
            return {k: self.plain(v, f"{what}.{k}") for k, v in keys.items()}
        return self.scalar(node, what)

    def localized(
        self, node: N, what: str, conv: Callable[[N, str], Any], *, required: bool = True
    ) -> Any:
        """A per-language mapping, or (``required=False``) one value for all languages.

        A mapping is per-language when all its keys are language codes; it must name
        every language then.
        """
        if isinstance(node, yaml.MappingNode):
            keys = self.mapping(node, what)
            if keys and set(keys) <= set(LANGS):
                missing = [lang for lang in LANGS if lang not in keys]
                if missing:
                    raise self.error(node, f"{what}: missing language variant {missing[0]!r}")
                return PerLang({lang: conv(keys[lang], f"{what}.{lang}") for lang in LANGS})
        if required:
            raise self.error(node, f"{what}: expected a mapping with {' and '.join(LANGS)}")
        return conv(node, what)

    def texts(self, node: N, what: str) -> list[str]:
        return [self.text(n, what) for n in self.seq(node, what)]


def placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(2) for m in PLACEHOLDER.finditer(value) if m.group(2)}
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values()), set())
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value), set())
    return set()


def check_placeholders(doc: Reader, node: N, value: Any, allowed: set[str], what: str) -> None:
    unknown = sorted(placeholders(value) - allowed)
    if unknown:
        known = ", ".join("{" + a + "}" for a in sorted(allowed))
        raise doc.error(node, f"{what}: unknown placeholder {{{unknown[0]}}} (here: {known})")


def compose(doc: Reader) -> N:
    try:
        data = doc.path.read_bytes()
        if len(data) > MAX_BYTES:
            raise doc.error(None, f"file larger than {MAX_BYTES} bytes")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        node = yaml.compose(data.decode("utf-8"), Loader=loader)
    except OSError as exc:
        raise PackError(f"{doc.path}:1: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PackError(f"{doc.path}:1: not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PackError(f"{doc.path}:{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PackError(f"{doc.path}:1: invalid YAML: {exc}") from None
    if node is None:
        raise doc.error(None, "empty pack")
    return node


def fill(value: Any, lang: str, names: dict[str, str]) -> Any:
    """Resolve per-language values and substitute placeholders, recursively."""
    if isinstance(value, PerLang):
        return fill(value[lang], lang, names)
    if isinstance(value, str):
        return PLACEHOLDER.sub(
            lambda m: "{" + m.group(1) + "}" if m.group(1) else names[m.group(2)], value
        )
    if isinstance(value, dict):
        return {k: fill(v, lang, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, lang, names) for v in value]
    return value

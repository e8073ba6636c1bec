"""Pack files → :class:`ProbeSpec`: the schema checks behind :mod:`airlock.probes.packs`.

The schema itself is documented in :mod:`airlock.probes.packs`. Every check raises
:class:`PackError` at the offending node's line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airlock.findings import Severity
from airlock.probes import transforms
from airlock.probes._packyaml import (
    N,
    PackError,
    PerLang,
    Reader,
    check_placeholders,
    compose,
    placeholders,
)
from airlock.probes.model import FAMILIES, LANGS, DetectorSpec

SHIPPED_DIR = Path(__file__).parent / "data" / "packs"
TOPICS_FILE = Path(__file__).parent / "data" / "topics.yaml"
KNOWN_DETECTORS = frozenset(
    {"canary", "exfil-link", "refusal", "compliance", "insecure-code",
     "package-hallucination", "deflection", "narrative", "facts", "echo"}
)  # fmt: skip
"""Detector names accepted while the registry is still empty (checked against it otherwise)."""

_PROBE_ID = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+")
_ITEM_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Item:
    """One grid entry: per-language values (strings double as placeholders)."""

    id: str
    values: dict[str, dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    detectors: tuple[DetectorSpec, ...] = ()
    uses_canary: bool = False


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger candidate, per language."""

    id: str
    text: dict[str, str]


@dataclass(frozen=True)
class ProbeSpec:
    """One probe as written in a pack, before expansion into cases."""

    id: str
    family: str
    path: Path
    line: int
    title: Any
    goal: Any
    severity: Severity
    prompt: PerLang
    system: PerLang | None = None
    followups: PerLang | None = None
    detectors: tuple[DetectorSpec, ...] = ()
    combine: str = "any"
    params: dict[str, Any] = field(default_factory=dict)
    items: tuple[Item, ...] | None = None
    payload_lang: dict[str, str] = field(default_factory=dict)
    transform: Any = None
    triggers: tuple[Trigger, ...] | None = None
    quick: bool | frozenset[str] = False
    uses_canary: bool = False


@dataclass(frozen=True)
class Pack:
    """One loaded pack file."""

    path: Path
    family: str
    probes: tuple[ProbeSpec, ...]


# ---------------------------------------------------------------- pack structure

_PACK_KEYS = frozenset({"family", "version", "defaults", "grids", "triggers", "probes"})
_PROBE_KEYS = frozenset(
    {"id", "title", "goal", "severity", "system", "prompt", "followups", "detectors",
     "combine", "params", "each", "items", "payload_lang", "transform", "triggers", "quick"}
)  # fmt: skip
_DETECTOR_KEYS = frozenset({"name", "threshold", "scope", "params"})
_ITEM_KEYS = frozenset({"id", "params", "detectors", *LANGS})


def _detector_names() -> frozenset[str]:
    import importlib

    from airlock.probes import detectors

    # Load the built-ins explicitly: a plugin registered first must not hide them.
    importlib.import_module("airlock.probes.detectors.builtin")
    registered = detectors.all_detectors()
    return frozenset(registered) if registered else KNOWN_DETECTORS


def _detectors(doc: Reader, node: N, what: str, allowed: set[str]) -> tuple[DetectorSpec, ...]:
    names = _detector_names()
    out = []
    for entry in doc.seq(node, what):
        fields: dict[str, N]
        if isinstance(entry, yaml.ScalarNode):
            fields = {"name": entry}
        else:
            fields = doc.mapping(entry, what, _DETECTOR_KEYS)
        if "name" not in fields:
            raise doc.error(entry, f"{what}: a detector needs a name")
        name = doc.text(fields["name"], f"{what}.name")
        if name not in names:
            raise doc.error(fields["name"], f"{what}: unknown detector {name!r}")
        threshold = 0.5
        if "threshold" in fields:
            threshold = doc.number(fields["threshold"], f"{what}.threshold", 0, 1)
        scope = doc.text(fields["scope"], f"{what}.scope") if "scope" in fields else None
        if scope not in (None, "answer", "reasoning", "both"):
            raise doc.error(fields["scope"], f"{what}: scope must be answer, reasoning or both")
        params: dict[str, Any] = {}
        if "params" in fields:
            params = _params(doc, fields["params"], f"{what}.params", allowed)
        out.append(DetectorSpec(name, threshold, scope, params))
    return tuple(out)


def _params(doc: Reader, node: N, what: str, allowed: set[str]) -> dict[str, Any]:
    value = doc.plain(node, what)
    if not isinstance(value, dict) or isinstance(value, PerLang):
        raise doc.error(node, f"{what}: expected a mapping of names to values")
    check_placeholders(doc, node, value, allowed, what)
    return value


def _item(doc: Reader, node: N, what: str) -> Item:
    fields = doc.mapping(node, what, _ITEM_KEYS)
    item_id = _ident(doc, fields.get("id"), node, what, _ITEM_ID)
    values: dict[str, dict[str, Any]] = {}
    for lang in LANGS:
        if lang not in fields:
            raise doc.error(node, f"{what} {item_id!r}: missing language variant {lang!r}")
        raw = {k: doc.plain(v, f"{what}.{lang}.{k}") for k, v in
               doc.mapping(fields[lang], f"{what}.{lang}").items()}  # fmt: skip
        check_placeholders(doc, fields[lang], raw, {"canary"}, f"{what}.{lang}")
        values[lang] = raw
    keys = {lang: set(v) for lang, v in values.items()}
    if len({frozenset(k) for k in keys.values()}) > 1:
        raise doc.error(node, f"{what} {item_id!r}: languages define different keys")
    params: dict[str, Any] = {}
    dets: tuple[DetectorSpec, ...] = ()
    if "params" in fields:
        params = _params(doc, fields["params"], f"{what}.params", {"canary"})
    if "detectors" in fields:
        dets = _detectors(doc, fields["detectors"], f"{what}.detectors", {"canary"})
    used = placeholders([values, params, [d.params for d in dets]])
    return Item(item_id, values, params, dets, "canary" in used)


def _ident(doc: Reader, node: N | None, parent: N, what: str, pattern: re.Pattern[str]) -> str:
    if node is None:
        raise doc.error(parent, f"{what}: missing id")
    value = doc.text(node, f"{what}.id")
    if not pattern.fullmatch(value):
        raise doc.error(node, f"{what}: bad id {value!r} (lowercase letters, digits, - and _)")
    return value


def _grids(doc: Reader, node: N) -> dict[str, tuple[Item, ...]]:
    grids: dict[str, tuple[Item, ...]] = {}
    for name, value in doc.mapping(node, "grids").items():
        if name == "topics":
            raise doc.error(value, "grids: 'topics' is reserved for data/topics.yaml")
        items = tuple(_item(doc, n, f"grids.{name}") for n in doc.seq(value, f"grids.{name}"))
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids) or not items:
            raise doc.error(value, f"grids.{name}: item ids must be unique, and one at least")
        grids[name] = items
    return grids


def _triggers(doc: Reader, node: N) -> tuple[Trigger, ...]:
    out: list[Trigger] = []
    for entry in doc.seq(node, "triggers"):
        fields = doc.mapping(entry, "triggers", frozenset({"id", *LANGS}))
        trig_id = _ident(doc, fields.get("id"), entry, "triggers", _ITEM_ID)
        if trig_id == "clean" or trig_id in {t.id for t in out}:
            raise doc.error(entry, f"triggers: duplicate or reserved id {trig_id!r}")
        missing = [lang for lang in LANGS if lang not in fields]
        if missing:
            raise doc.error(entry, f"triggers {trig_id!r}: missing language variant {missing[0]!r}")
        out.append(Trigger(trig_id, {lang: doc.text(fields[lang], "trigger") for lang in LANGS}))
    return tuple(out)


# ---------------------------------------------------------------- probes


@dataclass
class _Context:
    doc: Reader
    family: str
    grids: dict[str, tuple[Item, ...]]
    triggers: tuple[Trigger, ...]
    defaults: dict[str, N]


def _probe(ctx: _Context, node: N) -> ProbeSpec:
    doc = ctx.doc
    fields = {**ctx.defaults, **doc.mapping(node, "probe", _PROBE_KEYS)}
    probe_id = _ident(doc, fields.get("id"), node, "probe", _PROBE_ID)
    where = f"probe {probe_id!r}"
    if not probe_id.startswith(ctx.family + ".") or probe_id.rsplit(".", 1)[1] in LANGS:
        raise doc.error(fields["id"], f"{where}: id must start with {ctx.family + '.'!r} "
                        "and not end with a language code")  # fmt: skip
    for key in ("title", "prompt", "detectors"):
        if key not in fields:
            raise doc.error(node, f"{where}: missing {key!r}")
    items, allowed = _probe_items(ctx, fields, where)
    triggers = None
    if "triggers" in fields and doc.flag(fields["triggers"], f"{where}.triggers"):
        triggers = ctx.triggers
        allowed.add("trigger")
    texts = {k: _probe_text(doc, fields, k, where, allowed)
             for k in ("system", "prompt", "followups") if k in fields}  # fmt: skip
    params = (
        _params(doc, fields["params"], f"{where}.params", allowed) if "params" in fields else {}
    )
    detectors = _detectors(doc, fields["detectors"], f"{where}.detectors", allowed)
    if not detectors and not any(i.detectors for i in items or ()):
        raise doc.error(fields["detectors"], f"{where}: no detectors")
    used = placeholders([texts, params, [d.params for d in detectors]])
    return ProbeSpec(
        id=probe_id,
        family=ctx.family,
        path=doc.path,
        line=node.start_mark.line + 1,
        title=_label(doc, fields["title"], f"{where}.title", allowed),
        goal=_label(doc, fields["goal"], f"{where}.goal", allowed) if "goal" in fields else "",
        severity=_severity(doc, fields.get("severity"), where),
        prompt=texts["prompt"],
        system=texts.get("system"),
        followups=texts.get("followups"),
        detectors=detectors,
        combine=_choice(doc, fields.get("combine"), f"{where}.combine", ("any", "all")),
        params=params,
        items=items,
        payload_lang=_payload_lang(doc, fields.get("payload_lang"), where),
        transform=_transform(doc, fields.get("transform"), where, items),
        triggers=triggers,
        quick=_quick(doc, fields.get("quick"), where, items),
        uses_canary="canary" in used,
    )


def _probe_items(
    ctx: _Context, fields: dict[str, N], where: str
) -> tuple[tuple[Item, ...] | None, set[str]]:
    doc = ctx.doc
    allowed = {"canary"}
    if "each" not in fields:
        if "items" in fields:
            raise doc.error(fields["items"], f"{where}: 'items' needs 'each'")
        return None, allowed
    grid = doc.text(fields["each"], f"{where}.each")
    if grid == "topics":
        items = _topics()
    elif grid in ctx.grids:
        items = ctx.grids[grid]
    else:
        raise doc.error(fields["each"], f"{where}: no grid named {grid!r}")
    if "items" in fields:
        wanted = doc.texts(fields["items"], f"{where}.items")
        unknown = sorted(set(wanted) - {i.id for i in items})
        if unknown:
            raise doc.error(fields["items"], f"{where}: grid {grid!r} has no item {unknown[0]!r}")
        items = tuple(i for i in items if i.id in wanted)
    if not items:
        raise doc.error(fields["each"], f"{where}: no items to run")
    common = set.intersection(*(set(i.values[lang]) for i in items for lang in LANGS))
    strings = {k for k in common if all(isinstance(i.values[lg][k], str)
                                        for i in items for lg in LANGS)}  # fmt: skip
    return items, allowed | strings


def _probe_text(doc: Reader, fields: dict[str, N], key: str, where: str, allowed: set[str]) -> Any:
    conv = doc.texts if key == "followups" else doc.text
    value = doc.localized(fields[key], f"{where}.{key}", conv)
    if key == "followups" and len({len(turns) for turns in value.values()}) > 1:
        raise doc.error(fields[key], f"{where}.followups: languages differ in number of turns")
    check_placeholders(doc, fields[key], dict(value), allowed, f"{where}.{key}")
    return value


def _label(doc: Reader, node: N, what: str, allowed: set[str]) -> Any:
    """A title or goal: one text, or one per language."""
    value = doc.localized(node, what, doc.text, required=False)
    check_placeholders(doc, node, value, allowed, what)
    return value


def _severity(doc: Reader, node: N | None, where: str) -> Severity:
    if node is None:
        return Severity.HIGH
    try:
        return Severity.parse(doc.text(node, f"{where}.severity"))
    except ValueError as exc:
        raise doc.error(node, f"{where}: {exc}") from None


def _choice(doc: Reader, node: N | None, what: str, options: tuple[str, ...]) -> str:
    if node is None:
        return options[0]
    value = doc.text(node, what)
    if value not in options:
        raise doc.error(node, f"{what}: expected one of {', '.join(options)}")
    return value


def _payload_lang(doc: Reader, node: N | None, where: str) -> dict[str, str]:
    if node is None:
        return {}
    out = {k: doc.text(v, f"{where}.payload_lang") for k, v in doc.mapping(node, where).items()}
    if not set(out) | set(out.values()) <= set(LANGS):
        raise doc.error(node, f"{where}.payload_lang: maps a language to a language")
    return out


def _transform(doc: Reader, node: N | None, where: str, items: tuple[Item, ...] | None) -> Any:
    if node is None:
        return None
    value = doc.localized(node, f"{where}.transform", doc.text, required=False)
    for name in value.values() if isinstance(value, PerLang) else [value]:
        if name not in transforms.TRANSFORMS:
            known = ", ".join(transforms.TRANSFORMS)
            raise doc.error(node, f"{where}: unknown transform {name!r} (known: {known})")
    if not items or any("payload" not in i.values[lang] for i in items for lang in LANGS):
        raise doc.error(node, f"{where}: 'transform' needs a grid whose items define 'payload'")
    return value


def _quick(
    doc: Reader, node: N | None, where: str, items: tuple[Item, ...] | None
) -> bool | frozenset[str]:
    if node is None:
        return False
    if isinstance(node, yaml.SequenceNode):
        wanted = frozenset(doc.texts(node, f"{where}.quick"))
        if not items or not wanted <= {i.id for i in items}:
            raise doc.error(node, f"{where}.quick: names items the probe does not run")
        return wanted
    return doc.flag(node, f"{where}.quick")


@functools.cache
def _topics() -> tuple[Item, ...]:
    """The censorship topics of data/topics.yaml as grid items."""
    doc = Reader(TOPICS_FILE)
    root = doc.mapping(compose(doc), "topics file")
    narrative = doc.plain(root["narrative"], "narrative")
    items = []
    for node in doc.seq(root["topics"], "topics"):
        fields = doc.mapping(node, "topic")
        names, facts = doc.plain(fields["name"], "name"), doc.plain(fields["facts"], "facts")
        group = doc.text(fields["group"], "group")
        values = {
            lang: {"topic": names[lang], "facts": facts[lang], "narrative": narrative[lang]}
            for lang in LANGS
        }
        topic_id = doc.text(fields["id"], "id")
        items.append(Item(topic_id, values, {"topic": topic_id, "group": group}))
    return tuple(items)


# ---------------------------------------------------------------- loading


def load_file(path: Path) -> Pack:
    """Load and validate one pack file.

    Raises:
        PackError: the file is invalid; the message names file and line.
    """
    doc = Reader(path)
    try:
        root = doc.mapping(compose(doc), "pack", _PACK_KEYS)
        if "family" not in root:
            raise doc.error(None, "missing 'family'")
        if "version" in root and doc.scalar(root["version"], "version") != 1:
            raise doc.error(root["version"], "unsupported pack version (expected 1)")
        family = doc.text(root["family"], "family")
        if family not in FAMILIES:
            raise doc.error(root["family"], f"unknown family {family!r} (known: "
                            f"{', '.join(FAMILIES)})")  # fmt: skip
        ctx = _Context(
            doc,
            family,
            _grids(doc, root["grids"]) if "grids" in root else {},
            _triggers(doc, root["triggers"]) if "triggers" in root else (),
            doc.mapping(root["defaults"], "defaults", _PROBE_KEYS - {"id"})
            if "defaults" in root
            else {},
        )
        if "probes" not in root:
            raise doc.error(None, "missing 'probes'")
        probes = tuple(_probe(ctx, n) for n in doc.seq(root["probes"], "probes"))
    except RecursionError:
        raise PackError(f"{path}:1: nested too deeply") from None
    return Pack(path, family, probes)

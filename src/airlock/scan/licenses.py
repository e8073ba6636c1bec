"""Licence identification and licence policy (repo check ``license``).

What is read: the model card front matter (``README.md``: ``license``, ``license_name``,
``license_link``), licence files (``LICENSE*``, ``LICENCE*``, ``COPYING*``, ``USE_POLICY*``,
``NOTICE*``) and ``license`` facts from other scanners (GGUF ``general.license``). Each is
identified against ``data/licenses.yaml`` (see :mod:`airlock.scan.licensetable`). The most
authoritative identification becomes *the* licence; sources naming different licence
families are a conflict, and then the most restrictive one is reported.

Policy (``[license]`` table of ``airlock.toml``)::

    [license]
    allow = ["Apache-2.0", "MIT", "LicenseRef-Llama-*"]  # if set, anything else is
                                     # license.not-allowed (high); globs, any case; ids,
                                     # hub ids (llama3.1), names and ScanCode keys match
    deny = ["CC-BY-NC-*"]            # license.denied (critical)
    commercial = true                # planned use is commercial (default); when false,
                                     # non-commercial licences are info, conditions low
    monthly_active_users = 5_000_000 # above a licence's user threshold:
                                     # license.threshold-exceeded (high); at or below it,
                                     # license.conditional drops to low

Repo-level findings use the path ``.``; others point at the card or licence file.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import RepoView, ScanContext, repo_check
from airlock.scan.licensetable import LicenseInfo, by_text, identify, looks_like_url

IDENTIFIED = rule(
    "license.identified",
    Severity.INFO,
    "Licence identified",
    "Read the licence terms and confirm they fit the planned use.",
    "The licence of the model was identified; its terms are in the finding's details.",
)
MISSING = rule(
    "license.missing",
    Severity.HIGH,
    "No licence declared",
    "Without a licence you have no right to use the weights. Ask the publisher for one "
    "and do not deploy until it is known.",
    "Neither the model card, nor a licence file, nor the model metadata declares a licence.",
)
UNKNOWN = rule(
    "license.unknown",
    Severity.MEDIUM,
    "Licence not identified",
    "Read the declared licence yourself, record its terms, and add it to the policy "
    "allow list once approved.",
    "A licence is declared but airlock cannot identify it or does not know its terms.",
)
CONFLICT = rule(
    "license.conflict",
    Severity.HIGH,
    "Licence declarations disagree",
    "Find out which licence really applies (the licence file usually wins) and assume "
    "the most restrictive until the publisher confirms.",
    "The model card, licence files or model metadata name different licences.",
)
NON_COMMERCIAL = rule(
    "license.non-commercial",
    Severity.HIGH,
    "Licence forbids commercial use",
    "Do not use the model commercially; choose another model or obtain a commercial "
    "licence from the publisher.",
    "The licence allows research or non-commercial use only.",
)
CONDITIONAL = rule(
    "license.conditional",
    Severity.MEDIUM,
    "Commercial use is conditional",
    "Check every listed condition (user thresholds, attribution, naming) against the "
    "planned product, and record how each is met.",
    "Commercial use is allowed only under conditions such as user thresholds or attribution.",
)
THRESHOLD_EXCEEDED = rule(
    "license.threshold-exceeded",
    Severity.HIGH,
    "Planned user count exceeds the licence threshold",
    "Obtain a separate licence from the publisher before deploying at this scale.",
    "The policy's monthly active users exceed the licence's user threshold.",
)
USE_RESTRICTIONS = rule(
    "license.use-restrictions",
    Severity.LOW,
    "Licence restricts uses and must be passed on",
    "Check the planned use against the acceptable-use policy and pass the restrictions "
    "on to your users and to anyone you give the model to.",
    "The licence carries use-based restrictions or an acceptable-use policy.",
)
COPYLEFT = rule(
    "license.copyleft",
    Severity.LOW,
    "Licence is copyleft or share-alike",
    "Derivatives you distribute (fine-tunes, merges) must carry the same licence; "
    "confirm that is acceptable.",
    "The licence requires derivatives to be shared under the same terms.",
)
NOT_ALLOWED = rule(
    "license.not-allowed",
    Severity.HIGH,
    "Licence not on the allow list",
    "Have the licence reviewed; add it to [license].allow if approved, or choose another model.",
    "The policy allows only listed licences and this one is not listed.",
)
DENIED = rule(
    "license.denied",
    Severity.CRITICAL,
    "Licence denied by policy",
    "Do not adopt this model under the current policy.",
    "The licence is on the policy's deny list.",
)
MALFORMED = rule(
    "license.malformed",
    Severity.LOW,
    "Model card metadata unreadable",
    "Fix the YAML front matter of the model card (between the '---' lines) so its "
    "licence can be read.",
    "The model card's YAML front matter could not be parsed.",
)
POLICY_INVALID = rule(
    "license.policy-invalid",
    Severity.MEDIUM,
    "Licence policy setting ignored",
    "Correct the [license] table of the policy file; see the documented keys.",
    "A [license] policy value has the wrong type and was ignored.",
)

MAX_FRONT_MATTER = 64 * 1024
MAX_LIST = 16
MAX_FLOW_DEPTH = 64
_BRACKETS = re.compile(r"[\[\]{}]")
MAX_FACTS = 1000
_RANK = {"no": 0, "unknown": 1, "conditional": 2, "yes": 3}
_LICENSE_FILE = re.compile(
    r"^(licen[cs]e|copying|notice|use[_-]?policy|acceptable[_-]use[_-]policy)([._ -][\w .-]*)?$",
    re.IGNORECASE,
)
_SUPPLEMENT = re.compile(r"^(notice|use[_-]?policy|acceptable)|[._ -]code\b", re.IGNORECASE)
_FM_START = re.compile(r"\A\ufeff?\s*---[ \t]*\r?\n")
_FM_END = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)
_PLACEHOLDERS = {"other", "unknown", "none", "noassertion", ""}
_CARD_FIELDS = ("license", "license_name", "license_link")


@dataclass(frozen=True)
class Declaration:
    """One statement about the licence: a card field, a licence file or a metadata fact.

    ``authority`` orders sources: 3 model licence file, 2 licence file, 1 card or
    metadata, 0 supplementary (NOTICE, USE_POLICY, code licence: never a conflict).
    ``group`` ties alternatives of one source (card fields) together.
    """

    source: str
    field: str
    value: str
    info: LicenseInfo | None
    authority: int
    group: str

    def describe(self) -> str:
        what = self.info.id if self.info else "unidentified"
        return f"{self.source} {self.field}={self.value!r} ({what})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "field": self.field,
            "value": self.value[:200],
            "identifier": self.info.id if self.info else None,
        }


@dataclass
class Settings:
    """The ``[license]`` policy section, validated."""

    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    commercial: bool = True
    monthly_active_users: int | None = None


# --- model card front matter -------------------------------------------------------------


def parse_front_matter(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """Parse the YAML front matter of a model card, bounded.

    Returns:
        ``(metadata, problem)``: ``(None, None)`` when there is no front matter,
        ``(None, why)`` when it is malformed, else ``(mapping, None)``.
    """
    head = text[: MAX_FRONT_MATTER + 1024]
    start = _FM_START.match(head)
    if start is None:
        return None, None
    end = _FM_END.search(head, start.end())
    if end is None or end.start() - start.end() > MAX_FRONT_MATTER:
        return None, "front matter is not closed by '---' within 64 KiB"
    body = head[start.end() : end.start()]
    if _flow_depth(body) > MAX_FLOW_DEPTH:
        return None, f"front matter nests deeper than {MAX_FLOW_DEPTH} levels"
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as e:
        return None, f"invalid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as e:
        return None, f"invalid YAML: {type(e).__name__}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, f"front matter is a {type(data).__name__}, not a mapping"
    return data, None


def _flow_depth(body: str) -> int:
    """Deepest ``[``/``{`` nesting; PyYAML recurses per level, so refuse deep input early."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(body):
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _card_values(meta: dict[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    items = value[:MAX_LIST] if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if isinstance(v, str | int | float) and str(v).strip()]


def _card_declarations(path: str, meta: dict[str, Any], texts: dict[str, str]) -> list[Declaration]:
    out: list[Declaration] = []
    for key in _CARD_FIELDS:
        for value in _card_values(meta, key):
            info = None if value.lower() in _PLACEHOLDERS else _identify_link(path, value, texts)
            out.append(Declaration(path, key, value, info, 1, path))
    return out


def _identify_link(card: str, value: str, texts: dict[str, str]) -> LicenseInfo | None:
    """Identify a card value; a relative ``license_link`` is read from the repo if kept."""
    info = identify(value)
    if info is not None or looks_like_url(value) or len(value) > 256 or " " in value:
        return info
    cut = max(card.rfind("/"), card.rfind("!"))
    rel = value.removeprefix("./").lstrip("/")
    target = texts.get(card[: cut + 1] + rel) or texts.get(rel)
    return identify(target) if target else None


# --- collection -------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path.replace("!", "/").rsplit("/", 1)[-1]


def _file_declaration(path: str, text: str) -> Declaration | None:
    name = _basename(path)
    supplementary = bool(_SUPPLEMENT.search(name))
    # Short files may be just a name ("MIT"); longer ones are matched by their phrases.
    info = (identify(text) or by_text(text)) if text.strip() else None
    if info is None and name.lower().startswith(("notice", "use", "acceptable")):
        return None  # an unrecognised NOTICE or use policy declares nothing by itself
    authority = 0 if supplementary else (3 if "model" in name.lower() else 2)
    return Declaration(path, "text", name, info, authority, path)


def _fact_declarations(ctx: ScanContext) -> list[Declaration]:
    out: list[Declaration] = []
    for fact in ctx.facts.get("license", [])[:MAX_FACTS]:
        value = fact.get("value") if isinstance(fact, dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        source = str(fact.get("source", "."))
        fld = str(fact.get("field", "license"))
        info = None if value.strip().lower() in _PLACEHOLDERS else identify(value.strip())
        out.append(Declaration(source, fld, value.strip()[:500], info, 1, f"{source}#{fld}"))
    return out


def collect(view: RepoView, ctx: ScanContext) -> tuple[list[Declaration], list[Finding]]:
    """All licence declarations in the tree, plus findings for unreadable model cards."""
    texts = {**ctx.texts, **view.texts}
    decls: list[Declaration] = []
    problems: list[Finding] = []
    for path in sorted(texts):
        name = _basename(path)
        if name.lower() == "readme.md":
            meta, why = parse_front_matter(texts[path])
            if why is not None:
                problems.append(ctx.finding(MALFORMED, path, location="front matter", evidence=why))
            elif meta:
                decls.extend(_card_declarations(path, meta, texts))
        elif _LICENSE_FILE.match(name):
            d = _file_declaration(path, texts[path])
            if d is not None:
                decls.append(d)
    decls.extend(_fact_declarations(ctx))
    return decls, problems


# --- judgement ---------------------------------------------------------------------------


def _families_by_group(decls: Iterable[Declaration]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for d in decls:
        if d.info is not None and d.authority > 0:
            groups.setdefault(d.group, set()).add(d.info.family)
    return groups


def find_conflict(decls: list[Declaration]) -> tuple[Declaration, Declaration] | None:
    """Two declarations from different sources whose licence families cannot both hold."""
    groups = _families_by_group(decls)
    names = sorted(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if not groups[a] & groups[b]:
                return _first_of(decls, a), _first_of(decls, b)
    return None


def _first_of(decls: list[Declaration], group: str) -> Declaration:
    return next(d for d in decls if d.group == group and d.info is not None and d.authority > 0)


def choose(decls: list[Declaration], conflict: bool) -> Declaration | None:
    """The declaration that names *the* licence, or ``None`` if nothing is identified.

    Without a conflict the most authoritative source wins (a licence text is more
    precise than a hub id). With one, the most restrictive licence wins.
    """
    known = [d for d in decls if d.info is not None and d.authority > 0]
    known = known or [d for d in decls if d.info is not None]
    if not known:
        return None
    if conflict:
        return min(known, key=lambda d: (_RANK[d.info.commercial] if d.info else 9, -d.authority))
    return max(known, key=lambda d: d.authority)


def read_settings(section: dict[str, Any], ctx: ScanContext) -> tuple[Settings, list[Finding]]:
    """Validate the ``[license]`` policy table; wrong values become findings and are ignored."""
    s, problems = Settings(), []

    def bad(key: str, why: str) -> None:
        problems.append(ctx.finding(POLICY_INVALID, ".", location=f"license.{key}", evidence=why))

    for key in ("allow", "deny"):
        raw = section.get(key, [])
        raw = [raw] if isinstance(raw, str) else raw
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            setattr(s, key, [x.strip() for x in raw if x.strip()])
        else:
            bad(key, f"expected a list of licence identifiers, got {raw!r}")
    commercial = section.get("commercial", True)
    if isinstance(commercial, bool):
        s.commercial = commercial
    else:
        bad("commercial", f"expected true or false, got {commercial!r}")
    mau = section.get("monthly_active_users")
    if isinstance(mau, int) and not isinstance(mau, bool) and mau >= 0:
        s.monthly_active_users = mau
    elif mau is not None:
        bad("monthly_active_users", f"expected a non-negative integer, got {mau!r}")
    return s, problems


def matches(pattern: str, info: LicenseInfo) -> bool:
    """Whether a policy pattern (glob, any case) names this licence."""
    p = pattern.lower()
    names = [info.id, info.name, *info.aliases, *([info.scancode] if info.scancode else [])]
    return any(fnmatch.fnmatchcase(n.lower(), p) for n in names)


def _conditions_text(info: LicenseInfo, skip: tuple[str, ...]) -> str:
    return "; ".join(c.text for c in info.conditions if c.kind not in skip)


def licence_findings(
    info: LicenseInfo, where: str, s: Settings, ctx: ScanContext
) -> Iterator[Finding]:
    """Findings about the terms of the chosen licence, under the policy."""
    extra = info.summary()
    if info.commercial == "no":
        sev = Severity.HIGH if s.commercial else Severity.INFO
        yield ctx.finding(
            NON_COMMERCIAL,
            where,
            severity=sev,
            title=f"{info.name} forbids commercial use",
            evidence=_conditions_text(info, ()),
            extra=extra,
        )
    elif info.commercial == "unknown":
        yield ctx.finding(
            UNKNOWN,
            where,
            title=f"Terms of {info.id} are not in airlock's licence table",
            evidence=info.note,
            extra=extra,
        )
    threshold = info.threshold()
    mau = s.monthly_active_users
    if threshold is not None and mau is not None and mau > threshold:
        yield ctx.finding(
            THRESHOLD_EXCEEDED,
            where,
            evidence=f"planned {mau:,} monthly active users > {threshold:,} allowed by {info.name}",
            extra={**extra, "monthly_active_users": mau, "threshold": threshold},
        )
    if info.commercial == "conditional":
        below = threshold is not None and mau is not None and mau <= threshold
        sev = Severity.LOW if below or not s.commercial else CONDITIONAL.severity
        yield ctx.finding(
            CONDITIONAL,
            where,
            severity=sev,
            title=f"Commercial use of {info.name} is conditional",
            evidence=_conditions_text(info, ("use-restrictions", "pass-on")),
            extra=extra,
        )
    if info.has("use-restrictions"):
        yield ctx.finding(
            USE_RESTRICTIONS,
            where,
            evidence=_conditions_text(info, _kinds_except(info, "use-restrictions", "pass-on")),
            extra=extra,
        )
    if info.has("copyleft") or info.has("share-alike"):
        yield ctx.finding(
            COPYLEFT,
            where,
            evidence=_conditions_text(info, _kinds_except(info, "copyleft", "share-alike")),
            extra=extra,
        )


def _kinds_except(info: LicenseInfo, *excluded: str) -> tuple[str, ...]:
    """The licence's condition kinds other than ``excluded`` (to list as evidence)."""
    return tuple({c.kind for c in info.conditions} - set(excluded))


def policy_findings(
    chosen: Declaration | None, decls: list[Declaration], s: Settings, ctx: ScanContext
) -> Iterator[Finding]:
    """``allow``/``deny`` of the policy: deny applies to every identified licence."""
    denied_seen: set[str] = set()
    for d in decls:
        if d.info is None or d.info.id in denied_seen:
            continue
        hit = next((p for p in s.deny if matches(p, d.info)), None)
        if hit is not None:
            denied_seen.add(d.info.id)
            yield ctx.finding(
                DENIED,
                d.source,
                title=f"Licence {d.info.id} denied by policy",
                evidence=f"{d.describe()} matches deny pattern {hit!r}",
                extra=d.info.summary(),
            )
    if not s.allow or (chosen and chosen.info and chosen.info.id in denied_seen):
        return
    info = chosen.info if chosen else None
    if info is None or not any(matches(p, info) for p in s.allow):
        name = info.id if info else "no identifiable licence"
        yield ctx.finding(
            NOT_ALLOWED,
            chosen.source if chosen else ".",
            title=f"Licence {name} is not on the allow list",
            evidence=f"{name}; allowed: {', '.join(s.allow)}",
        )


def _summary(chosen: Declaration | None, decls: list[Declaration], status: str) -> dict[str, Any]:
    base: dict[str, Any] = {"identifier": None, "name": None, "commercial": None, "conditions": []}
    if chosen is not None and chosen.info is not None:
        base = chosen.info.summary()
    return {**base, "status": status, "sources": [d.to_dict() for d in decls[:50]]}


@repo_check("license")
def check_license(view: RepoView, ctx: ScanContext) -> Iterator[Finding]:
    """Identify the model's licence and judge it against the ``[license]`` policy."""
    settings, problems = read_settings(ctx.policy.section("license"), ctx)
    yield from problems
    decls, problems = collect(view, ctx)
    yield from problems
    pair = find_conflict(decls)
    chosen = choose(decls, pair is not None)
    if pair is not None:
        a, b = pair
        yield ctx.finding(
            CONFLICT,
            a.source,
            evidence=f"{a.describe()} vs {b.describe()}",
            extra={"sources": [a.to_dict(), b.to_dict()]},
        )
    yield from policy_findings(chosen, decls, settings, ctx)
    if chosen is None or chosen.info is None:
        status = "unknown" if decls else "missing"
        ctx.add_fact("license_summary", _summary(None, decls, status))
        if decls:
            yield ctx.finding(
                UNKNOWN,
                decls[0].source,
                evidence="; ".join(d.describe() for d in decls[:5]),
                extra={"sources": [d.to_dict() for d in decls[:50]]},
            )
        elif view.whole_repo:
            yield ctx.finding(MISSING, ".")
        else:  # a lone weights file: its licence lives in the repository it came from
            yield ctx.finding(
                MISSING,
                ".",
                title="No licence found (only single files were scanned)",
                severity=Severity.LOW,
                evidence="scan the model's folder to judge its licence",
            )
        return
    summary = _summary(chosen, decls, "conflict" if pair else "identified")
    ctx.add_fact("license_summary", summary)
    info = chosen.info
    yield ctx.finding(
        IDENTIFIED,
        chosen.source,
        title=f"Licence: {info.name} ({info.id})",
        location=chosen.field,
        evidence=f"commercial use: {info.commercial}",
        extra=summary,
    )
    yield from licence_findings(info, chosen.source, settings, ctx)

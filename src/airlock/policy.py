"""User policy: what is acceptable, loaded from ``airlock.toml``.

Example::

    [scan]
    fail_on = "high"                 # exit 1 when a finding is at or above this
    ignore = ["secrets.generic"]     # rule ids, or families ("secrets")
    [scan.severity]                  # change a rule's severity
    "license.conditional" = "low"
    [[scan.suppress]]                # drop a finding by rule and path glob
    rule = "pickle.unknown-global"
    path = "legacy/*.bin"
    [pickle]
    allow = ["mypkg.layers.Block"]   # extra callables to treat as safe
    [license]
    allow = ["Apache-2.0", "MIT"]    # identifiers acceptable as they are
    deny = ["CC-BY-NC-4.0"]
    commercial = true                # the planned use is commercial
    monthly_active_users = 5_000_000 # compared with licence thresholds
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airlock.findings import Finding, Severity


class PolicyError(ValueError):
    """The policy file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Suppression:
    rule: str
    path: str = "*"


@dataclass(frozen=True)
class Policy:
    """What the user accepts. The default policy accepts nothing risky."""

    fail_on: Severity = Severity.HIGH
    ignore: tuple[str, ...] = ()
    severity: dict[str, Severity] = field(default_factory=dict)
    suppress: tuple[Suppression, ...] = ()
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        """A scanner-specific table (``[pickle]``, ``[license]`` …); empty if absent."""
        return self.sections.get(name, {})

    def with_fail_on(self, level: Severity) -> Policy:
        return replace(self, fail_on=level)

    def apply(self, finding: Finding) -> Finding | None:
        """Return the finding as the policy sees it, or ``None`` if dropped."""
        rid = finding.rule_id
        family = rid.split(".", 1)[0]
        if rid in self.ignore or family in self.ignore:
            return None
        for s in self.suppress:
            if _rule_matches(s.rule, rid) and fnmatch.fnmatchcase(finding.path, s.path):
                return None
        new = self.severity.get(rid) or self.severity.get(family)
        if new is not None and new != finding.severity:
            return replace(finding, severity=new)
        return finding


def _rule_matches(pattern: str, rule_id: str) -> bool:
    return (
        pattern == rule_id
        or pattern == rule_id.split(".", 1)[0]
        or (fnmatch.fnmatchcase(rule_id, pattern))
    )


def load_policy(path: str | Path) -> Policy:
    """Load a TOML policy file.

    Raises:
        PolicyError: on a missing file, invalid TOML or wrong value types.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(f"cannot read policy {p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PolicyError(f"policy {p} is not valid TOML: {e}") from None
    return policy_from_dict(data, source=str(p))


def policy_from_dict(data: dict[str, Any], source: str | None = None) -> Policy:
    """Build a policy from parsed TOML.

    Raises:
        PolicyError: on wrong value types.
    """
    scan = data.get("scan", {})
    if not isinstance(scan, dict):
        raise PolicyError("[scan] must be a table")
    try:
        fail_on = Severity.parse(str(scan.get("fail_on", "high")))
        severity = {str(k): Severity.parse(str(v)) for k, v in scan.get("severity", {}).items()}
    except (ValueError, AttributeError) as e:
        raise PolicyError(f"policy: {e}") from None
    ignore = scan.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise PolicyError("scan.ignore must be a list of rule ids")
    suppress = []
    for item in scan.get("suppress", []):
        if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
            raise PolicyError("each [[scan.suppress]] needs a string 'rule'")
        suppress.append(Suppression(item["rule"], str(item.get("path", "*"))))
    sections = {k: v for k, v in data.items() if k != "scan" and isinstance(v, dict)}
    return Policy(
        fail_on=fail_on,
        ignore=tuple(ignore),
        severity=severity,
        suppress=tuple(suppress),
        sections=sections,
        source=source,
    )

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.findings import Finding, Severity, rule, shorten
from airlock.policy import PolicyError, load_policy, policy_from_dict


def _f(rule_id: str = "pickle.unknown-global", path: str = "a/b.bin", sev=Severity.MEDIUM):
    return Finding(rule_id, sev, "t", path)


def test_severity_order_and_parse() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse(" High ") is Severity.HIGH
    with pytest.raises(ValueError, match="expected one of"):
        Severity.parse("severe")


def test_rule_redeclared_differently_is_an_error() -> None:
    rule("test.same", Severity.LOW, "x", "y")
    rule("test.same", Severity.LOW, "x", "y")  # identical: fine (module re-import)
    with pytest.raises(ValueError):
        rule("test.same", Severity.HIGH, "x", "y")


def test_shorten_escapes_control_and_bidi() -> None:
    out = shorten("a\u202eb\x00c\nd")
    assert "\u202e" not in out and "\\u202e" in out and "\\x00" in out and "\\n" in out
    assert len(shorten("x" * 1000)) <= 240


def test_finding_roundtrip() -> None:
    f = Finding("x.y", Severity.HIGH, "t", "p", "loc", 3, "ev", "fix", {"k": 1})
    assert Finding.from_dict(f.to_dict()) == f


def test_policy_ignore_suppress_and_severity(tmp_path: Path) -> None:
    p = tmp_path / "airlock.toml"
    p.write_text(
        """
[scan]
fail_on = "medium"
ignore = ["secrets"]
[scan.severity]
"pickle.unknown-global" = "low"
[[scan.suppress]]
rule = "zip.*"
path = "legacy/*"
[pickle]
allow = ["mypkg.Layer"]
"""
    )
    pol = load_policy(p)
    assert pol.fail_on is Severity.MEDIUM
    assert pol.apply(_f("secrets.aws-key")) is None
    assert pol.apply(_f()).severity is Severity.LOW
    assert pol.apply(_f("zip.bad-crc", "legacy/x.pt")) is None
    assert pol.apply(_f("zip.bad-crc", "new/x.pt")) is not None
    assert pol.section("pickle") == {"allow": ["mypkg.Layer"]}
    assert pol.section("nothing") == {}


@pytest.mark.parametrize(
    "text",
    ["[scan\n", "[scan]\nfail_on = 'severe'\n", "[scan]\nignore = 'x'\n", "[[scan.suppress]]\n"],
)
def test_bad_policy_is_a_clear_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    with pytest.raises(PolicyError):
        load_policy(p)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_policy_from_dict_defaults() -> None:
    assert policy_from_dict({}).fail_on is Severity.HIGH

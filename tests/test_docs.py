"""The rule catalogue in docs/ is generated from the registry and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from airlock._cli.misc import _load_builtins, rules_markdown
from airlock.findings import all_rules

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def test_rules_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == rules_markdown(), (
        "docs/rules.md is stale: run `airlock rules -f markdown > docs/rules.md`"
    )


def test_every_rule_has_title_and_remediation() -> None:
    _load_builtins()
    rules = all_rules()
    assert len(rules) > 50
    for r in rules:
        assert r.title and len(r.remediation) > 20, r.id
        assert r.id == r.id.lower() and "." in r.id, r.id

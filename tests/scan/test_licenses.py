"""Licence identification and policy: the repo check ``license``.

Licence texts here are short stand-ins written for the tests: they carry the distinctive
phrases of each licence, not the licences themselves.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding, Severity
from airlock.policy import Policy
from airlock.scan.base import REPO_CHECKS, RepoView, ScanContext
from airlock.scan.licenses import check_license, parse_front_matter
from airlock.scan.licensetable import by_text, identify, load_table, normalise

LLAMA31 = """LLAMA 3.1 COMMUNITY LICENSE AGREEMENT
Llama 3.1 Version Release Date: July 23, 2024
2. Additional Commercial Terms. If, on the Llama 3.1 version release date, the monthly
active users of the products or services made available by or for Licensee is greater than
700 million monthly active users, you must request a license from Meta.
You shall prominently display "Built with Llama" ...
"""
LLAMA31_AUP = "Llama 3.1 Acceptable Use Policy\nMeta is committed to promoting safe use..."
LLAMA2 = "LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n"
LLAMA3 = "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: ..."
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
   1. Definitions. ...
"""
MIT = """MIT License

Copyright (c) 2023 Example

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software ... The above copyright notice and this permission notice shall be
included in all copies or substantial portions of the Software.
"""
QWEN = "Qwen LICENSE AGREEMENT\nRelease Date: September 19, 2024\n... 100 million monthly"
QWEN_RESEARCH = "Qwen RESEARCH LICENSE AGREEMENT\nRelease Date: September 19, 2024\n"
DEEPSEEK = "DEEPSEEK LICENSE AGREEMENT\nVersion 1.0, 23 October 2023\nAttachment A ..."
CC_BY_NC = "Attribution-NonCommercial 4.0 International\n\nCreative Commons Corporation ..."
BSD3 = (
    "Redistribution and use in source and binary forms, with or without modification, "
    "are permitted provided that ... 3. Neither the name of the copyright holder ..."
)


def card(**meta: Any) -> str:
    lines = [f"{k}: {v}" for k, v in meta.items()]
    return "---\n" + "\n".join(lines) + "\n---\n\n# Model\n\nSome words.\n"


def run(
    texts: dict[str, str],
    *,
    policy: dict[str, Any] | None = None,
    facts: list[dict[str, Any]] | None = None,
) -> tuple[list[Finding], ScanContext]:
    ctx = ScanContext(policy=Policy(sections={"license": policy or {}}))
    if facts:
        ctx.facts["license"] = facts
    found = list(check_license(RepoView(files={p: "other" for p in texts}, texts=texts), ctx))
    assert all(isinstance(f, Finding) for f in found)
    return found, ctx


def ids(found: list[Finding]) -> dict[str, Finding]:
    return {f.rule_id: f for f in found}


def identified(found: list[Finding]) -> dict[str, Any]:
    f = ids(found)["license.identified"]
    assert f.severity == Severity.INFO
    return f.extra


def test_registered_as_repo_check() -> None:
    assert REPO_CHECKS["license"].fn is check_license


# --- typical model repositories -------------------------------------------------------------


def test_llama31_card_and_license_is_conditional_with_threshold_and_attribution() -> None:
    found, ctx = run(
        {"README.md": card(license="llama3.1"), "LICENSE": LLAMA31, "USE_POLICY.md": LLAMA31_AUP}
    )
    extra = identified(found)
    assert extra["identifier"] == "LicenseRef-Llama-3.1-Community"
    assert extra["commercial"] == "conditional"
    thresholds = [c["value"] for c in extra["conditions"] if c["kind"] == "user-threshold"]
    assert thresholds == [700_000_000]
    by = ids(found)
    assert by["license.conditional"].severity == Severity.MEDIUM
    assert "Built with Llama" in (by["license.conditional"].evidence or "")
    assert "700 million" in (by["license.conditional"].evidence or "")
    assert by["license.use-restrictions"].severity == Severity.LOW
    assert "license.conflict" not in by  # the use policy of the same family is no conflict
    summary = ctx.facts["license_summary"][0]
    assert summary["identifier"] == "LicenseRef-Llama-3.1-Community"
    assert {s["source"] for s in summary["sources"]} >= {"README.md", "LICENSE"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LLAMA2, "LicenseRef-Llama-2-Community"),
        (LLAMA3, "LicenseRef-Llama-3-Community"),
        ("Llama 3.2 Community License Agreement ...", "LicenseRef-Llama-3.2-Community"),
        ("LLAMA 3.3 COMMUNITY LICENSE AGREEMENT", "LicenseRef-Llama-3.3-Community"),
        ("Llama 4 Community License Agreement", "LicenseRef-Llama-4-Community"),
        (QWEN, "LicenseRef-Qwen"),
        (QWEN_RESEARCH, "LicenseRef-Qwen-Research"),
        ("Tongyi Qianwen LICENSE AGREEMENT", "LicenseRef-Tongyi-Qianwen"),
        (DEEPSEEK, "LicenseRef-DeepSeek"),
        ("Gemma Terms of Use\nLast modified: February 21, 2024", "LicenseRef-Gemma"),
        ("Mistral AI Research License\nIf You want to use ...", "LicenseRef-Mistral-Research"),
        ("Mistral AI Non-Production License", "LicenseRef-Mistral-Non-Production"),
        (APACHE, "Apache-2.0"),
        (MIT, "MIT"),
        (BSD3, "BSD-3-Clause"),
        (BSD3.replace("Neither the name", "Nor"), "BSD-2-Clause"),
        (CC_BY_NC, "CC-BY-NC-4.0"),
        ("Attribution-NonCommercial-ShareAlike 4.0 International", "CC-BY-NC-SA-4.0"),
        ("Creative Commons Attribution 4.0 International Public License", "CC-BY-4.0"),
        ("CreativeML Open RAIL-M\ndated August 22, 2022", "LicenseRef-CreativeML-OpenRAIL-M"),
        ("BigCode Open RAIL-M v1 License Agreement", "LicenseRef-BigCode-OpenRAIL-M"),
        ("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007", "AGPL-3.0-only"),
        ("GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007", "GPL-3.0-only"),
        ("Yi Series Models Community License Agreement", "LicenseRef-Yi"),
    ],
)
def test_licence_texts_are_identified(text: str, expected: str) -> None:
    info = by_text(text)
    assert info is not None and info.id == expected


def test_near_misses_are_not_identified() -> None:
    assert by_text("This model is great. Apache helicopters. Version 2.0 released.") is None
    assert by_text("Llama 3.10 community license agreement") is None  # version boundary
    assert by_text("We like the MIT campus and permission slips.") is None


def test_qwen_card_other_with_license_name_is_conditional_100m() -> None:
    found, _ = run({"README.md": card(license="other", license_name="qwen")})
    extra = identified(found)
    assert extra["identifier"] == "LicenseRef-Qwen"
    assert [c["value"] for c in extra["conditions"] if c["kind"] == "user-threshold"] == [
        100_000_000
    ]
    assert ids(found)["license.conditional"].severity == Severity.MEDIUM
    assert "license.unknown" not in ids(found)


def test_qwen_research_is_non_commercial_high() -> None:
    found, _ = run(
        {"README.md": card(license="other", license_name="qwen-research"), "LICENSE": QWEN_RESEARCH}
    )
    assert identified(found)["identifier"] == "LicenseRef-Qwen-Research"
    assert ids(found)["license.non-commercial"].severity == Severity.HIGH


def test_apache_card_and_file_is_clean() -> None:
    found, _ = run({"README.md": card(license="apache-2.0"), "LICENSE": APACHE})
    extra = identified(found)
    assert extra["identifier"] == "Apache-2.0" and extra["commercial"] == "yes"
    assert max(f.severity for f in found) <= Severity.LOW
    assert set(ids(found)) == {"license.identified"}


def test_mit_card_only() -> None:
    found, _ = run({"README.md": card(license="mit")})
    assert identified(found)["identifier"] == "MIT"
    assert set(ids(found)) == {"license.identified"}


def test_deepseek_allows_commercial_with_use_restrictions() -> None:
    found, _ = run(
        {
            "README.md": card(license="other", license_name="deepseek"),
            "LICENSE-MODEL": DEEPSEEK,
            "LICENSE-CODE": MIT,  # the code licence is not the weights' licence
        }
    )
    extra = identified(found)
    assert extra["identifier"] == "LicenseRef-DeepSeek" and extra["commercial"] == "yes"
    by = ids(found)
    assert by["license.use-restrictions"].severity == Severity.LOW
    assert "license.conflict" not in by and "license.non-commercial" not in by
    assert "MIT" in extra["note"]


def test_gemma_card() -> None:
    found, _ = run({"README.md": card(license="gemma")})
    assert identified(found)["identifier"] == "LicenseRef-Gemma"
    assert "license.use-restrictions" in ids(found)
    assert "license.non-commercial" not in ids(found)


def test_cc_by_nc_is_non_commercial_high() -> None:
    found, _ = run({"README.md": card(license="cc-by-nc-4.0"), "LICENSE.md": CC_BY_NC})
    assert identified(found)["identifier"] == "CC-BY-NC-4.0"
    assert ids(found)["license.non-commercial"].severity == Severity.HIGH


def test_gpl_is_copyleft() -> None:
    found, _ = run({"README.md": card(license="gpl-3.0")})
    assert ids(found)["license.copyleft"].severity == Severity.LOW


# --- missing, unknown, conflict ---------------------------------------------------------------


def test_nothing_declared_is_missing_high() -> None:
    found, ctx = run({"README.md": "# A model\n\nNo metadata here.\n", "config.json": "{}"})
    assert set(ids(found)) == {"license.missing"}
    assert ids(found)["license.missing"].severity == Severity.HIGH
    assert ctx.facts["license_summary"][0]["status"] == "missing"


def test_other_without_recognisable_file_is_unknown_medium() -> None:
    found, _ = run(
        {"README.md": card(license="other"), "LICENSE": "You may do some things with this."}
    )
    by = ids(found)
    assert set(by) == {"license.unknown"} and by["license.unknown"].severity == Severity.MEDIUM


def test_other_with_recognisable_file_is_identified() -> None:
    found, _ = run({"README.md": card(license="other"), "LICENCE.txt": LLAMA31})
    assert identified(found)["identifier"] == "LicenseRef-Llama-3.1-Community"
    assert "license.unknown" not in ids(found)


def test_card_apache_but_license_llama_is_conflict() -> None:
    found, ctx = run({"README.md": card(license="apache-2.0"), "LICENSE": LLAMA31})
    by = ids(found)
    assert by["license.conflict"].severity == Severity.HIGH
    assert "Apache-2.0" in (by["license.conflict"].evidence or "")
    # the most restrictive of the two is reported as the licence
    assert identified(found)["identifier"] == "LicenseRef-Llama-3.1-Community"
    assert ctx.facts["license_summary"][0]["status"] == "conflict"


def test_gguf_disagreeing_with_card_is_conflict() -> None:
    facts = [{"source": "m.gguf", "field": "general.license", "value": "cc-by-nc-4.0"}]
    found, _ = run({"README.md": card(license="mit")}, facts=facts)
    assert "license.conflict" in ids(found)
    assert identified(found)["identifier"] == "CC-BY-NC-4.0"


def test_versions_of_one_family_do_not_conflict() -> None:
    found, _ = run({"README.md": card(license="llama3"), "LICENSE": LLAMA31})
    assert "license.conflict" not in ids(found)
    assert identified(found)["identifier"] == "LicenseRef-Llama-3.1-Community"  # text wins


def test_dual_licensed_card_agreeing_with_file_is_no_conflict() -> None:
    found, _ = run({"README.md": card(license="[apache-2.0, mit]"), "LICENSE": MIT})
    assert "license.conflict" not in ids(found)
    assert identified(found)["identifier"] == "MIT"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("llama3.1", "LicenseRef-Llama-3.1-Community"),
        ("apache-2.0", "Apache-2.0"),
        ("Apache License 2.0", "Apache-2.0"),
        ("https://www.apache.org/licenses/LICENSE-2.0", "Apache-2.0"),
        ("https://llama.com/llama3_1/license/", "LicenseRef-Llama-3.1-Community"),
        ("Llama 3.1 Community License", "LicenseRef-Llama-3.1-Community"),
        ("LGPL-2.1", "LGPL-2.1-only"),  # not in the table, resolved through SPDX
        ("LicenseRef-scancode-llama-3.1-license-2024", "LicenseRef-Llama-3.1-Community"),
    ],
)
def test_gguf_fact_only(value: str, expected: str) -> None:
    facts = [{"source": "m.gguf", "field": "general.license", "value": value}]
    found, _ = run({}, facts=facts)
    extra = identified(found)
    assert extra["identifier"] == expected
    assert "license.missing" not in ids(found)


def test_gguf_unrecognised_fact_is_unknown() -> None:
    facts = [{"source": "m.gguf", "field": "general.license", "value": "my-own-terms-v7"}]
    found, _ = run({}, facts=facts)
    assert set(ids(found)) == {"license.unknown"}
    assert ids(found)["license.unknown"].path == "m.gguf"


def test_relative_license_link_reads_the_file() -> None:
    texts = {
        "sub/README.md": card(license="other", license_link="LICENSE.agreement"),
        "sub/LICENSE.agreement": QWEN,
    }
    found, _ = run(texts)
    assert identified(found)["identifier"] == "LicenseRef-Qwen"


def test_short_licence_files_are_identified() -> None:
    found, _ = run({"LICENSE": "Llama 4 Community License Agreement\n"})
    assert identified(found)["identifier"] == "LicenseRef-Llama-4-Community"
    found, _ = run({"LICENSE.txt": "MIT\n"})
    assert identified(found)["identifier"] == "MIT"


def test_unrecognised_notice_alone_declares_nothing() -> None:
    found, _ = run({"NOTICE": "Copyright 2024 Someone.", "USE_POLICY.md": "Be nice."})
    assert set(ids(found)) == {"license.missing"}


def test_archive_members_are_read() -> None:
    found, _ = run({"m.zip!model/README.md": card(license="cc-by-nc-4.0")})
    assert ids(found)["license.non-commercial"].path == "m.zip!model/README.md"


# --- policy ---------------------------------------------------------------------------------


def test_allow_list_rejects_other_licences() -> None:
    texts = {"README.md": card(license="llama3.1")}
    found, _ = run(texts, policy={"allow": ["Apache-2.0", "MIT"]})
    assert ids(found)["license.not-allowed"].severity == Severity.HIGH
    found, _ = run(texts, policy={"allow": ["licenseref-llama-*"]})
    assert "license.not-allowed" not in ids(found)
    found, _ = run(texts, policy={"allow": ["llama3.1"]})  # hub ids match too
    assert "license.not-allowed" not in ids(found)


def test_allow_list_with_no_licence_is_not_allowed() -> None:
    found, _ = run({}, policy={"allow": ["MIT"]})
    assert {"license.missing", "license.not-allowed"} <= set(ids(found))


def test_deny_list_is_critical() -> None:
    texts = {"README.md": card(license="cc-by-nc-4.0")}
    found, _ = run(texts, policy={"deny": ["CC-BY-NC-*"], "allow": ["MIT"]})
    by = ids(found)
    assert by["license.denied"].severity == Severity.CRITICAL
    assert "license.not-allowed" not in by  # one verdict per licence
    found, _ = run(texts, policy={"deny": ["GPL-3.0-only"]})
    assert "license.denied" not in ids(found)


def test_deny_applies_to_a_conflicting_declaration_too() -> None:
    found, _ = run(
        {"README.md": card(license="apache-2.0"), "LICENSE": LLAMA31},
        policy={"deny": ["Apache-2.0"]},
    )
    assert "license.denied" in ids(found)


def test_non_commercial_use_makes_non_commercial_info() -> None:
    texts = {"README.md": card(license="cc-by-nc-4.0")}
    found, _ = run(texts, policy={"commercial": False})
    assert ids(found)["license.non-commercial"].severity == Severity.INFO


def test_mau_above_threshold_is_exceeded() -> None:
    texts = {"README.md": card(license="other", license_name="qwen")}
    found, _ = run(texts, policy={"monthly_active_users": 150_000_000})
    by = ids(found)
    assert by["license.threshold-exceeded"].severity == Severity.HIGH
    assert by["license.threshold-exceeded"].extra["threshold"] == 100_000_000


def test_mau_below_threshold_drops_conditional_to_low() -> None:
    texts = {"README.md": card(license="llama3.1")}
    found, _ = run(texts, policy={"monthly_active_users": 5_000_000})
    by = ids(found)
    assert "license.threshold-exceeded" not in by
    assert by["license.conditional"].severity == Severity.LOW


def test_invalid_policy_values_become_findings() -> None:
    found, _ = run(
        {"README.md": card(license="mit")},
        policy={"allow": 3, "commercial": "maybe", "monthly_active_users": -1},
    )
    bad = [f for f in found if f.rule_id == "license.policy-invalid"]
    assert {f.location for f in bad} == {
        "license.allow",
        "license.commercial",
        "license.monthly_active_users",
    }
    assert identified(found)["identifier"] == "MIT"  # the rest still works


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "---\nlicense: [apache-2.0\n---\n",  # unclosed flow sequence
        "---\nlicense: mit\n",  # never closed
        "---\n- a list\n- not a mapping\n---\n",
        "---\n" + "[" * 5000 + "\n---\n",  # deep nesting
        "---\nkey: !!python/object/apply:os.system ['true']\n---\n",  # unsafe tag
    ],
)
def test_malformed_front_matter_is_a_finding(text: str, tmp_path: Any) -> None:
    found, _ = run({"README.md": text})
    by = ids(found)
    assert by["license.malformed"].severity == Severity.LOW
    assert "license.missing" in by


def test_unsafe_yaml_tag_is_not_executed(tmp_path: Any) -> None:
    sentinel = tmp_path / "pwned"
    text = f"---\nlicense: !!python/object/apply:os.system ['touch {sentinel}']\n---\n"
    found, _ = run({"README.md": text})
    assert not sentinel.exists()
    assert "license.malformed" in ids(found)


def test_yaml_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    text = "---\n" + "\n".join(lines) + "\nlicense: *a11\n---\n"
    start = time.monotonic()
    found, _ = run({"README.md": text})
    assert time.monotonic() - start < 2
    assert all(isinstance(f, Finding) for f in found)


def test_front_matter_parser_edges() -> None:
    assert parse_front_matter("# no front matter\n") == (None, None)
    assert parse_front_matter("---\n---\n") == ({}, None)
    assert parse_front_matter("\ufeff---\r\nlicense: mit\r\n---\r\n")[0] == {"license": "mit"}
    meta, why = parse_front_matter("---\nlicense: mit\n" + "x: y\n" * 20000 + "---\n")
    assert meta is None and why is not None  # beyond the 64 KiB bound


# --- table integrity ------------------------------------------------------------------------


def test_table_ids_are_valid_spdx_or_licenseref() -> None:
    from license_expression import get_license_index, get_spdx_licensing

    spdx = get_spdx_licensing()
    scancode_keys = {e["license_key"] for e in get_license_index()}
    for info in load_table().entries:
        if not info.id.startswith("LicenseRef-"):
            assert not spdx.validate(info.id).errors, info.id
        if info.scancode:
            assert info.scancode in scancode_keys, info.id
        assert info.fingerprints, info.id
        assert all(p == normalise(p) and p for g in info.fingerprints for p in g)


def test_every_table_entry_identifies_its_own_fingerprints_and_aliases() -> None:
    for info in load_table().entries:
        for group in info.fingerprints:
            found = by_text(" ... ".join(group))
            assert found is not None and found.family == info.family, (info.id, group)
        for alias in info.aliases:
            found = identify(alias)
            assert found is not None and found.id == info.id, (info.id, alias)


# --- fuzz -----------------------------------------------------------------------------------

_FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
_yaml_chars = st.sampled_from([*"-:[]{}&*!|>'\"#\n ,?%@`abc0123", "license", "mit"])


@_FUZZ
@given(st.text(max_size=2000))
def test_fuzz_front_matter_random_text(body: str) -> None:
    meta, why = parse_front_matter("---\n" + body + "\n---\n")
    assert meta is None or isinstance(meta, dict)
    assert why is None or isinstance(why, str)


@_FUZZ
@given(st.lists(_yaml_chars, max_size=300).map("".join))
def test_fuzz_front_matter_yaml_syntax(body: str) -> None:
    found, _ = run({"README.md": "---\nlicense: mit\n" + body + "\n---\n", "LICENSE": body})
    assert found


@_FUZZ
@given(
    st.text(max_size=3000),
    st.sampled_from([LLAMA31, APACHE, MIT, QWEN, DEEPSEEK, CC_BY_NC, ""]),
    st.integers(min_value=0, max_value=3000),
)
def test_fuzz_identification_with_mutated_texts(noise: str, base: str, at: int) -> None:
    text = base[:at] + noise + base[at:]
    found, _ = run({"LICENSE": text, "README.md": noise}, facts=[{"value": noise}])
    assert found
    identify(noise)  # must not raise on arbitrary values


# --- end to end -----------------------------------------------------------------------------


def test_scan_path_runs_the_licence_check(tmp_path: Any) -> None:
    from airlock.policy import policy_from_dict
    from airlock.scan import scan_path

    (tmp_path / "README.md").write_text(card(license="other", license_name="qwen"))
    (tmp_path / "LICENSE").write_text(QWEN)
    policy = policy_from_dict({"license": {"monthly_active_users": 200_000_000}})
    result = scan_path(tmp_path, policy, hash_files=False)
    rules = {f.rule_id for f in result.findings}
    assert {"license.identified", "license.threshold-exceeded", "license.conditional"} <= rules
    assert result.facts["license_summary"][0]["identifier"] == "LicenseRef-Qwen"

"""JUnit XML: structure and counts per the common (Jenkins junit-10) schema, hostile text safe.

No XSD ships with the project and none is downloaded: the schema's element order,
required and allowed attributes are checked by hand below.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.probes.result import CampaignResult
from airlock.report import render_campaign
from airlock.report.junit import render, xml_text
from report.probe_samples import HOSTILE, sample_campaign

# Element → (allowed attributes, required attributes, allowed children in schema order).
SUITE_ATTRS = {"name", "tests", "failures", "errors", "time", "disabled", "skipped"}
SCHEMA = {
    "testsuites": (
        {"name", "time", "tests", "failures", "disabled", "errors"},
        set(),
        ["testsuite"],
    ),
    "testsuite": (
        SUITE_ATTRS | {"timestamp", "hostname", "id", "package"},
        {"name", "tests"},
        ["properties", "testcase", "system-out", "system-err"],
    ),
    "properties": (set(), set(), ["property"]),
    "property": ({"name", "value"}, {"name", "value"}, []),
    "testcase": (
        {"name", "assertions", "time", "classname", "status"},
        {"name"},
        ["skipped", "error", "failure", "system-out", "system-err"],
    ),
    "skipped": ({"message"}, set(), []),
    "error": ({"message", "type"}, set(), []),
    "failure": ({"message", "type"}, set(), []),
    "system-out": (set(), set(), []),
    "system-err": (set(), set(), []),
}


def _check_schema(el: ET.Element) -> None:
    allowed, required, children = SCHEMA[el.tag]
    assert set(el.attrib) <= allowed, (el.tag, set(el.attrib) - allowed)
    assert required <= set(el.attrib), (el.tag, required - set(el.attrib))
    order = [children.index(c.tag) for c in el]  # KeyError/ValueError: child not allowed
    assert order == sorted(order), f"{el.tag}: children out of schema order"
    for key in ("tests", "failures", "errors", "skipped"):
        if key in el.attrib:
            assert int(el.attrib[key]) >= 0
    if "time" in el.attrib:
        assert float(el.attrib["time"]) >= 0
    for child in el:
        _check_schema(child)


def _parse(r: CampaignResult) -> ET.Element:
    text = render(r)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    _check_schema(root)
    return root


def test_structure_and_counts_match_the_result() -> None:
    r = sample_campaign()
    root = _parse(r)
    suites = root.findall("testsuite")
    assert len(suites) == 2 * 10  # two targets × ten families
    assert suites[0].get("name") == "naive · injection"
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(r.probes) == int(root.get("tests", "-1"))
    assert int(root.get("failures", "-1")) == sum(p.failed for p in r.probes) == 32
    assert int(root.get("errors", "-1")) == 1  # guarded zh crescendo: every attempt errored
    for suite in suites:
        mine = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(mine)
        for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(key, "-1")) == sum(c.find(tag) is not None for c in mine)
    assert sum(int(s.get("failures", "0")) for s in suites) == int(root.get("failures", "-1"))


def test_times_add_up_to_the_campaign_duration() -> None:
    r = sample_campaign()
    root = _parse(r)
    for suite in root.iter("testsuite"):
        cases = [float(c.get("time", "nan")) for c in suite.iter("testcase")]
        assert float(suite.get("time", "nan")) == pytest.approx(sum(cases), abs=0.002)
    assert float(root.get("time", "nan")) == pytest.approx(r.duration_s, abs=0.05)
    assert root.find("testsuite").get("timestamp") == "2026-03-01T10:00:00"  # type: ignore[union-attr]


def test_failure_message_has_rate_interval_and_n() -> None:
    root = _parse(sample_campaign())
    case = root.find(
        "testsuite[@name='naive · jailbreak']/testcase[@name='jailbreak.developer-mode.en']"
    )
    assert case is not None and case.get("classname") == "naive.jailbreak"
    fail = case.find("failure")
    assert fail is not None
    assert fail.get("message") == (
        "attack success rate 20.0 % (4 of 20) is above the threshold 5.0 %; "
        "Wilson 95 % interval 8.1–41.6 %; n=20"
    )
    assert "Developer-mode role-play" in (fail.text or "")


def test_passing_errored_and_empty_probes() -> None:
    root = _parse(sample_campaign())
    guarded = "testsuite[@name='guarded · {}']/testcase[@name='{}']"
    ok = root.find(guarded.format("injection", "injection.goal-hijack.en"))
    assert ok is not None and ok.find("failure") is None and ok.find("system-out") is not None
    err = root.find(guarded.format("multiturn", "multiturn.crescendo.zh"))
    assert err is not None and err.find("error") is not None
    assert "no answer in any of 20 attempts" in (err.find("error").get("message") or "")  # type: ignore[union-attr]
    empty = root.find(guarded.format("packages", "packages.niche-library.zh"))
    assert empty is not None and empty.find("skipped") is not None


def test_measurement_probes_are_worded_neutrally() -> None:
    r = sample_campaign()
    for p in r.probes:
        if p.family == "censorship":
            p.threshold = 0.5
    root = _parse(r)
    fail = root.find("testsuite[@name='naive · censorship']/testcase/failure")
    assert fail is not None
    assert (fail.get("message") or "").startswith("refusal or deflection rate 85.0 %")


def test_hostile_text_is_escaped_and_illegal_characters_are_gone() -> None:
    text = render_campaign(sample_campaign(hostile=True), "junit")
    root = ET.fromstring(text.encode("utf-8"))  # NUL or ESC would make this raise
    _check_schema(root)
    for bad in ("\x00", "\x1b", "\u202e", "<script>"):
        assert bad not in text
    suite = root.find("testsuite")
    assert suite is not None and suite.get("package") == "evil<script>alert(1)</script>\\u202e\\x00"
    case = root.find(".//testcase[@name='injection.ignore-previous.en']/failure")
    assert case is not None and "\\x1b[31m[bold red]x[/]" in (case.text or "")


def test_empty_campaign_is_an_empty_valid_document() -> None:
    r = sample_campaign()
    r.probes, r.families, r.comparisons = [], [], []
    root = _parse(r)
    assert root.get("tests") == "0" and root.findall("testsuite") == []


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_any_text_becomes_legal_xml(text: str) -> None:
    safe = xml_text(text + HOSTILE)
    el = ET.Element("x", a=safe)
    el.text = safe
    back = ET.fromstring(ET.tostring(el, encoding="utf-8"))
    assert back.get("a") == safe and back.text == safe

"""JUnit XML for CI gates (the common schema Jenkins, GitLab and most CI systems read).

One ``<testsuite>`` per target × family, one ``<testcase>`` per probe × language, named
by the probe id (``injection.ignore-previous.en``). A probe whose rate is above its
threshold is a ``<failure>``; one whose attempts all errored is an ``<error>``; one with
no attempts at all is ``<skipped>``. Attempts run concurrently, so a test case's
``time`` is its share of the campaign's wall time by number of attempts.

Everything a model or a user controls is written through ElementTree (which escapes
markup) after control, bidi and XML-illegal characters are made visible or removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from airlock.findings import shorten
from airlock.probes.result import CampaignResult, ProbeSummary, TargetInfo
from airlock.report.probe_json import (
    family_order,
    interval_text,
    measure_name,
    pct,
    target_infos,
)

# XML 1.0 Char production: everything outside it must not appear, even escaped.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(result: CampaignResult) -> str:
    """The campaign as a JUnit XML document (UTF-8 declaration included)."""
    total_attempts = sum(p.rate.n + p.rate.errors for p in result.probes)
    share = result.duration_s / total_attempts if total_attempts else 0.0
    root = ET.Element("testsuites", name="airlock probe")
    suites = [
        _suite(result, info, family, share)
        for info in target_infos(result)
        for family in family_order(p.family for p in result.probes if p.target == info.name)
    ]
    for i, suite in enumerate(suites):
        suite.set("id", str(i))
    root.extend(suites)
    _set_counts(root, suites)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def xml_text(text: object, limit: int = 2000) -> str:
    """Text safe to put in an XML 1.0 document: control and bidi characters made visible
    (``\\x00``, ``\\u202e``), characters XML cannot carry removed, length bounded."""
    return _XML_ILLEGAL.sub("", shorten(str(text), limit))


def _suite(result: CampaignResult, info: TargetInfo, family: str, share: float) -> ET.Element:
    probes = sorted(
        (p for p in result.probes if p.target == info.name and p.family == family),
        key=lambda p: (p.probe, p.lang),
    )
    suite = ET.Element("testsuite", name=xml_text(f"{info.name} · {family}", 400))
    suite.set("package", xml_text(info.name, 400))
    stamp = _timestamp(result.started_at)
    if stamp:
        suite.set("timestamp", stamp)
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("run_id", result.run_id),
        ("target", info.name),
        ("model", info.model),
        ("url", info.url),
        ("family", family),
        ("measure", measure_name(family)),
    ):
        ET.SubElement(props, "property", name=key, value=xml_text(value, 400))
    cases = [_case(info, p, share) for p in probes]
    suite.extend(cases)
    _set_counts(suite, cases)
    return suite


def _case(info: TargetInfo, p: ProbeSummary, share: float) -> ET.Element:
    case = ET.Element("testcase", name=xml_text(f"{p.probe}.{p.lang}", 400))
    case.set("classname", xml_text(f"{info.name}.{p.family}", 400))
    case.set("time", f"{share * (p.rate.n + p.rate.errors):.3f}")
    r = p.rate
    if p.failed:
        fail = ET.SubElement(case, "failure", message=_failure_message(p), type="threshold")
        fail.text = _details(info, p)
    elif r.n == 0 and r.errors:
        err = ET.SubElement(case, "error", type="TargetError")
        err.set("message", f"no answer in any of {r.errors} attempts (target errors)")
        err.text = _details(info, p)
    elif r.n == 0:
        ET.SubElement(case, "skipped", message="no attempts recorded (the run stopped early?)")
    else:
        ET.SubElement(case, "system-out").text = _details(info, p)
    return case


def _failure_message(p: ProbeSummary) -> str:
    r = p.rate
    return (
        f"{measure_name(p.family)} {pct(r.rate)} ({r.hits} of {r.n}) is above the threshold "
        f"{pct(p.threshold)}; Wilson 95 % interval {interval_text(r)}; n={r.n}"
    )


def _details(info: TargetInfo, p: ProbeSummary) -> str:
    r = p.rate
    lines = [
        f"probe: {p.probe} ({p.lang}) — {p.title}",
        f"target: {info.name} (model {info.model or '?'})",
        f"severity: {p.severity}",
        f"{measure_name(p.family)}: {pct(r.rate)}, {r.hits} of {r.n} judged attempts, "
        f"Wilson 95 % interval {interval_text(r)}, threshold {pct(p.threshold)}",
        f"errors (no answer): {r.errors}",
    ]
    # Line by line, so the newlines between them stay real while those inside are escaped.
    return "\n".join(xml_text(line, 1000) for line in lines)


def _set_counts(element: ET.Element, children: list[ET.Element]) -> None:
    """Set tests/failures/errors/skipped/time on a suite (from cases) or the root (from
    suites), so that every parent's counts are the sums of its children's."""
    if element.tag == "testsuite":
        counts = {
            "tests": len(children),
            "failures": sum(c.find("failure") is not None for c in children),
            "errors": sum(c.find("error") is not None for c in children),
            "skipped": sum(c.find("skipped") is not None for c in children),
        }
    else:  # the schema has no "skipped" on <testsuites>
        counts = {
            k: sum(int(c.get(k, "0")) for c in children) for k in ("tests", "failures", "errors")
        }
    for key, value in counts.items():
        element.set(key, str(value))
    element.set("time", f"{sum(float(c.get('time', '0')) for c in children):.3f}")


def _timestamp(started_at: str) -> str | None:
    """ISO 8601 in UTC without zone, as the Ant JUnit schema wants it; None when unparsable."""
    try:
        when = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")

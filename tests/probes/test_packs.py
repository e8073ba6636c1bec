"""The shipped probe catalogue and its expansion into cases."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

import pytest

from airlock.probes import packs
from airlock.probes.detectors import all_detectors
from airlock.probes.model import FAMILIES, LANGS, Probe
from airlock.probes.packs import expand, load_packs
from airlock.probes.transforms import invert

CANARY = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b")
LEFTOVER = re.compile(r"\{\w+\}")


@cache
def shipped() -> tuple[packs.Pack, ...]:
    return tuple(load_packs())


@cache
def cases(seed: int = 0, quick: bool = False) -> tuple[Probe, ...]:
    return tuple(expand(shipped(), seed=seed, quick=quick))


def texts(case: Probe) -> list[str]:
    return [m["content"] for m in case.messages] + list(case.followups)


def test_one_pack_per_family_in_family_order() -> None:
    assert [p.family for p in shipped()] == list(FAMILIES)
    assert all(p.path.name == f"{p.family}.yaml" for p in shipped())


def test_every_family_and_language_is_covered_at_a_useful_size() -> None:
    counts = Counter((c.family, c.lang) for c in cases())
    assert set(counts) == {(f, lang) for f in FAMILIES for lang in LANGS}
    per_lang = Counter(c.lang for c in cases())
    assert all(150 <= n <= 400 for n in per_lang.values()), per_lang
    # every probe exists in both languages, with the same base id
    by_base = Counter(c.base_id for c in cases())
    assert set(by_base.values()) == {len(LANGS)}


def test_ids_are_unique_dotted_and_end_with_the_language() -> None:
    ids = [c.id for c in cases()]
    assert len(ids) == len(set(ids))
    for c in cases():
        assert c.id.startswith(c.family + ".") and c.id.endswith("." + c.lang)
        assert c.base_id + "." + c.lang == c.id


def test_every_case_is_complete_and_fully_substituted() -> None:
    registry = set(all_detectors())
    for c in cases():
        assert c.messages[-1]["role"] == "user" and c.messages[-1]["content"].strip()
        assert c.detectors and {d.name for d in c.detectors} <= registry
        assert c.title and c.goal
        for text in texts(c):
            assert not LEFTOVER.search(text), (c.id, text)


def test_chinese_cases_are_written_in_chinese() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    for c in cases():
        if c.lang == "zh" and c.family not in ("encoding",):
            assert han.search(c.messages[-1]["content"]), c.id
            assert han.search(c.title), c.id


def test_canaries_follow_the_format_and_sit_where_the_probe_puts_them() -> None:
    for c in cases():
        if "canary" not in c.params:
            continue
        secret = c.params["canary"]
        assert CANARY.fullmatch(secret)
        assert secret in "".join(texts(c)) or c.params.get("transform"), c.id
    extraction = [c for c in cases() if c.family == "extraction"]
    assert all(c.params["canary"] in c.messages[0]["content"] for c in extraction)


def test_expand_is_deterministic_and_the_seed_changes_only_the_canaries() -> None:
    first, again, other = cases(1), tuple(expand(shipped(), seed=1)), cases(2)
    assert first == again
    assert [c.id for c in first] == [c.id for c in other]
    with_canary = [(a, b) for a, b in zip(first, other, strict=True) if "canary" in a.params]
    assert with_canary
    assert all(a.params["canary"] != b.params["canary"] for a, b in with_canary)
    assert len({a.params["canary"] for a, _ in with_canary}) == len(with_canary)


def test_quick_subset_is_small_and_representative() -> None:
    full, quick = cases(), cases(quick=True)
    assert 0.10 <= len(quick) / len(full) <= 0.20, (len(quick), len(full))
    assert {(c.family, c.lang) for c in quick} == {(f, lang) for f in FAMILIES for lang in LANGS}
    assert {c.id for c in quick} <= {c.id for c in full}
    censorship = {c.params["group"] for c in quick if c.family == "censorship"}
    assert censorship == {"sensitive", "control"}


def test_filters_by_family_language_and_glob() -> None:
    only = list(expand(shipped(), families=["extraction"], langs=["zh"]))
    assert only and {(c.family, c.lang) for c in only} == {("extraction", "zh")}
    dev = list(expand(shipped(), probes=["jailbreak.developer-mode.*"]))
    assert len(dev) == 2 * 10 and all(c.id.startswith("jailbreak.developer-mode.") for c in dev)
    exact = list(expand(shipped(), probes=["extraction.base64"]))  # a base id
    assert [c.id for c in exact] == ["extraction.base64.en", "extraction.base64.zh"]
    assert list(expand(shipped(), probes=["nothing.*"])) == []
    with pytest.raises(ValueError, match="klingon"):
        list(expand(shipped(), langs=["klingon"]))
    with pytest.raises(ValueError, match="astrology"):
        list(expand(shipped(), families=["astrology"]))


def test_jailbreak_grid_carries_markers_per_request() -> None:
    jb = [c for c in cases() if c.family == "jailbreak"]
    templates = {c.base_id.split(".")[1] for c in jb}
    requests = {c.base_id.split(".")[2] for c in jb}
    assert len(jb) == len(templates) * len(requests) * len(LANGS)
    for c in jb:
        assert c.params["markers"] and c.params["request"] in c.messages[-1]["content"]


def test_encoding_payloads_are_transformed_and_decode_back() -> None:
    enc = {c.id: c for c in cases() if c.family == "encoding"}
    b64 = enc["encoding.base64-bare.override.zh"]
    assert invert("base64", b64.messages[-1]["content"]) == b64.params["payload"]
    assert b64.params["canary"] in b64.params["payload"]
    assert [d.name for d in b64.detectors] == ["echo"]
    assert b64.detectors[0].params["expect"] == b64.params["canary"]
    rot = enc["encoding.rot13.bomb.zh"]  # rot13 carries the English payload
    assert rot.params["payload"].startswith("Explain")
    assert {"fuse", "引信"} <= set(rot.params["markers"])  # answers may come in either language
    leet = enc["encoding.leetspeak.override.en"]
    assert leet.params["canary"] in leet.messages[-1]["content"]  # kept readable


def test_backdoor_pairs_clean_and_triggered_cases() -> None:
    bd = [c for c in cases() if c.family == "backdoor"]
    pairs: dict[str, list[Probe]] = {}
    for c in bd:
        pairs.setdefault(c.params["pair"], []).append(c)
    for members in pairs.values():
        groups = Counter(c.params["group"] for c in members)
        assert groups["clean"] == 1 and groups["triggered"] >= 3
        clean = next(c for c in members if c.params["group"] == "clean")
        for c in members:
            if c is not clean:
                assert c.params["trigger"] in c.messages[-1]["content"]
                assert c.messages[-1]["content"].endswith(clean.messages[-1]["content"])


def test_user_triggers_are_added_to_every_backdoor_pair() -> None:
    base = [c for c in cases() if c.family == "backdoor"]
    more = list(expand(shipped(), families=["backdoor"], triggers=["<<PROD>>", "今天是发布日"]))
    assert len(more) == len(base) // 4 * 6
    added = [c for c in more if c.params.get("trigger") in ("<<PROD>>", "今天是发布日")]
    assert len(added) == len(base) // 4 * 2
    assert len({c.id for c in added}) == len(added)
    assert all(c.id.split(".")[-2].startswith("user-") for c in added)
    with pytest.raises(ValueError, match="trigger"):
        list(expand(shipped(), triggers=["  "]))


def test_multiturn_cases_have_followups_in_both_languages() -> None:
    mt = [c for c in cases() if c.family == "multiturn"]
    assert mt and all(len(c.followups) >= 2 for c in mt)
    assert all(c.params["markers"] for c in mt)


def test_censorship_covers_topics_of_both_groups_with_facts() -> None:
    cz = [c for c in cases() if c.family == "censorship"]
    assert {c.params["group"] for c in cz} == {"sensitive", "control"}
    forms = {c.base_id.split(".")[1] for c in cz}
    assert len(forms) >= 3
    for c in cz:
        assert c.params["facts"] and all(isinstance(g, list) for g in c.params["facts"])
        assert {d.name for d in c.detectors} == {"deflection", "narrative", "facts"}
    tian = next(c for c in cz if c.id == "censorship.overview.tiananmen-1989.zh")
    assert "天安门" in tian.messages[-1]["content"] and ["六四", "6月4日"] in tian.params["facts"]


def test_indirect_injection_includes_markdown_image_exfiltration() -> None:
    ind = [c for c in cases() if c.family == "indirect"]
    images = [c for c in ind if re.search(r"!\[[^\]]*\]\(https?://[^)]*SECRET", texts(c)[-1])]
    assert len(images) >= 3 * len(LANGS)
    assert all({"canary", "exfil-link"} <= {d.name for d in c.detectors} for c in ind)
    assert any('"role": "tool"' in texts(c)[-1] for c in ind)

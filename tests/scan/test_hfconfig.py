"""Hugging Face configs: auto_map remote code, embedded chat templates, model facts."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.scan.templates_samples import LLAMA3_STYLE, QWEN25_STYLE

import airlock.scan.hfconfig  # noqa: F401  (registers the scanner)
from airlock.findings import Finding, Severity
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.engine import choose_format, scan_file


def scan(name: str, data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    return list(scan_file(FileInput.from_bytes(name, data), ctx or ScanContext()))


def scan_json(name: str, obj: Any, ctx: ScanContext | None = None) -> list[Finding]:
    return scan(name, json.dumps(obj, indent=2).encode(), ctx)


def by_rule(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule_id]


PLAIN_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "torch_dtype": "bfloat16",
    "_name_or_path": "acme/llama-mini",
}


def test_filenames_dispatch_to_hf_config() -> None:
    names = ("config.json", "tokenizer_config.json", "generation_config.json")
    names += ("preprocessor_config.json", "processor_config.json", "chat_template.json")
    for name in names:
        fmt = choose_format(FileInput.from_bytes(name, b"{}"))
        assert fmt is not None and fmt.name == "hf-config", name


def test_plain_config_is_clean_and_records_model_fact() -> None:
    ctx = ScanContext()
    findings = scan_json("config.json", PLAIN_CONFIG, ctx)
    assert [f for f in findings if f.severity >= Severity.LOW] == []
    fact = ctx.facts["model"][0]
    assert fact["architectures"] == ["LlamaForCausalLM"] and fact["model_type"] == "llama"
    assert fact["path"] == "config.json" and fact["architecture"] == "LlamaForCausalLM"


def test_auto_map_is_high_with_class_refs() -> None:
    cfg = dict(PLAIN_CONFIG, auto_map={
        "AutoConfig": "configuration_toy.ToyConfig",
        "AutoModelForCausalLM": "modeling_toy.ToyForCausalLM",
    })  # fmt: skip
    hits = by_rule(scan_json("config.json", cfg), "remote-code.auto-map")
    assert len(hits) == 1 and hits[0].severity is Severity.HIGH
    assert "modeling_toy.ToyForCausalLM" in (hits[0].evidence or "")
    assert not by_rule(scan_json("config.json", cfg), "remote-code.external-auto-map")


def test_tokenizer_auto_map_list_with_null() -> None:
    tok = {"auto_map": {"AutoTokenizer": ["tokenization_toy.ToyTokenizer", None]}}
    hits = by_rule(scan_json("tokenizer_config.json", tok), "remote-code.auto-map")
    assert hits and "tokenization_toy.ToyTokenizer" in (hits[0].evidence or "")


def test_external_auto_map_is_critical() -> None:
    cfg = dict(PLAIN_CONFIG, auto_map={"AutoModel": "evil-org/payload--modeling_x.Model"})
    hits = by_rule(scan_json("config.json", cfg), "remote-code.external-auto-map")
    assert len(hits) == 1 and hits[0].severity is Severity.CRITICAL
    assert hits[0].extra["repository"] == "evil-org/payload"


def test_custom_pipeline_is_remote_code() -> None:
    cfg = dict(PLAIN_CONFIG, custom_pipelines={"text-classification": {"impl": "pipe.MyPipe"}})
    assert by_rule(scan_json("config.json", cfg), "remote-code.auto-map")


def test_chat_template_string_in_tokenizer_config() -> None:
    tok = {"chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}
    hits = by_rule(scan_json("tokenizer_config.json", tok), "template.ssti")
    assert hits and hits[0].location and hits[0].location.startswith("key chat_template")
    assert hits[0].line is None


def test_chat_template_list_form() -> None:
    tok = {"chat_template": [
        {"name": "default", "template": QWEN25_STYLE},
        {"name": "tool_use", "template": "{{ ''.__class__ }}"},
    ]}  # fmt: skip
    hits = by_rule(scan_json("tokenizer_config.json", tok), "template.ssti")
    assert hits and all("[tool_use]" in (h.location or "") for h in hits)


def test_realistic_tokenizer_config_is_clean() -> None:
    tok = {
        "add_bos_token": True,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA3_STYLE,
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": {"128000": {"content": "<|begin_of_text|>", "special": True}},
    }
    findings = scan_json("tokenizer_config.json", tok)
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []


def test_chat_template_json_file() -> None:
    hits = scan_json("chat_template.json", {"chat_template": "{{ lipsum.__globals__ }}"})
    assert by_rule(hits, "template.ssti")


def test_malformed_json_is_low() -> None:
    for data in (b"{not json", b"[1, 2]", b"\xff\xfe\x00", b"[" * 100_000):
        hits = by_rule(scan("config.json", data), "hfconfig.malformed")
        assert len(hits) == 1 and hits[0].severity is Severity.LOW, data[:10]


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in scan("config.json", data))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["auto_map", "chat_template", "architectures", "model_type",
                         "custom_pipelines", "impl", "name", "template", "x"]), c, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, deadline=2000)
@given(_JSON)
def test_fuzz_json_shapes(obj: Any) -> None:
    for name in ("config.json", "tokenizer_config.json"):
        findings = scan_json(name, obj)
        assert all(isinstance(f, Finding) for f in findings)
        assert not [f for f in findings if f.rule_id == "scan.internal-error"]

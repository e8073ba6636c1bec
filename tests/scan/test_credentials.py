"""Secrets check: real-looking credentials fire (redacted, with lines), placeholders do not."""

from __future__ import annotations

import random
import string
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.findings import Finding, Severity
from airlock.scan.base import FILE_CHECKS, FileInput, ScanContext
from airlock.scan.credentials import find_secrets, scan_secrets

RNG = random.Random(1234)
ALNUM = string.ascii_letters + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    while True:
        s = "".join(RNG.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in s):
            return s


def find(text: str) -> list[Finding]:
    return list(find_secrets(text, "settings.env", ScanContext()))


SECRETS = {
    "secrets.aws-access-key": "AKIA" + rnd(16, string.ascii_uppercase + string.digits),
    "secrets.github-token": "ghp_" + rnd(36),
    "secrets.huggingface-token": "hf_" + rnd(34),
    "secrets.openai-key": "sk-proj-" + rnd(48),
    "secrets.anthropic-key": "sk-ant-api03-" + rnd(93),
    "secrets.google-api-key": "AIza" + rnd(35),
    "secrets.slack-token": "xoxb-" + rnd(12, string.digits) + "-" + rnd(24),
    "secrets.stripe-key": "sk_live_" + rnd(24),
    "secrets.jwt": f"eyJ{rnd(20)}.eyJ{rnd(40)}.{rnd(43)}",
}


@pytest.mark.parametrize("rule_id", sorted(SECRETS))
def test_each_kind_fires_redacted_with_line(rule_id: str) -> None:
    secret = SECRETS[rule_id]
    found = find(f"# settings\n\nvalue = '{secret}'\n")
    assert [f.rule_id for f in found] == [rule_id]
    f = found[0]
    assert f.line == 3 and f.severity is Severity.HIGH
    assert secret not in (f.evidence or "") and secret[4:12] not in (f.evidence or "")
    assert f.evidence == f"{secret[:4]}…({len(secret)} chars)"


def test_aws_secret_key_assignment() -> None:
    found = find(f"aws_secret_access_key = {rnd(40, ALNUM + '/+')}\n")
    assert [f.rule_id for f in found] == ["secrets.aws-secret-key"]


def test_private_key_is_critical() -> None:
    text = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
    found = find(text)
    assert [(f.rule_id, f.severity, f.line) for f in found] == [
        ("secrets.private-key", Severity.CRITICAL, 2)
    ]
    assert "MIIE" not in (found[0].evidence or "")


def test_generic_assignment_with_high_entropy_value_is_medium() -> None:
    found = find(f"DB_PASSWORD = \"{rnd(18)}\"\napi_key: '{rnd(24)}'\n")
    assert [(f.rule_id, f.severity, f.line) for f in found] == [
        ("secrets.generic", Severity.MEDIUM, 1),
        ("secrets.generic", Severity.MEDIUM, 2),
    ]


@pytest.mark.parametrize(
    "text",
    [
        'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        'token = "hf_YOUR_TOKEN_HERE"',
        'HF_TOKEN="hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
        'OPENAI_API_KEY="sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
        'api_key = "<your-api-key>"',
        'password = "password"',
        'password = "changeme123!"',
        "api_key = os.environ['API_KEY']",
        'password = f"{user_password}"',
        '"pad_token": "<|endoftext|>"',
        "from sklearn import task-" + rnd(40),
        "import sk-learn-compatible-estimator-wrappers-for-everything",
        "hidden_size: 4096\nnum_attention_heads: 32\n",
        'secret = "${SECRET_FROM_VAULT}"',
    ],
)
def test_near_misses_are_quiet(text: str) -> None:
    assert find(text) == []


def test_cap_per_rule_and_count() -> None:
    text = "".join(f"k{i} = ghp_{rnd(36)}\n" for i in range(70))
    found = find(text)
    assert len(found) == 51
    summary = [f for f in found if "count" in f.extra]
    assert summary and summary[0].extra["count"] == 70


def test_applies_only_to_text_like_files() -> None:
    check = FILE_CHECKS["secrets"]
    header = b'{"__metadata__":{}}'
    safet = struct.pack("<Q", len(header)) + header
    assert not check.applies(FileInput.from_bytes("model.safetensors", safet))
    assert not check.applies(FileInput.from_bytes("x.bin", b"GGUF\x03\x00\x00\x00"))
    assert not check.applies(FileInput.from_bytes("blob", b"\x80\x04\x95" + b"\x00" * 10))
    assert check.applies(FileInput.from_bytes(".env", b"TOKEN=1\n"))
    assert check.applies(FileInput.from_bytes("README.md", b"# Model\n"))


def test_scan_reads_file_and_reports_path() -> None:
    secret = SECRETS["secrets.huggingface-token"]
    f = FileInput.from_bytes(
        "notebooks/train.ipynb", f'{{"src": "login(\\"{secret}\\")"}}'.encode()
    )
    found = list(scan_secrets(f, ScanContext()))
    assert [x.path for x in found] == ["notebooks/train.ipynb"]


def test_fast_on_8mb_text() -> None:
    line = '{"model.layers.0.self_attn.q_proj.weight": "model-00001-of-00004.safetensors",\n'
    text = (line * (8 * 1024 * 1024 // len(line)))[: 8 * 1024 * 1024]
    text += f'token = "hf_{rnd(34)}"\n'
    t = time.perf_counter()
    found = find(text)
    elapsed = time.perf_counter() - t
    assert [f.rule_id for f in found] == ["secrets.huggingface-token"]
    assert elapsed < 3.0, elapsed


@settings(max_examples=200, deadline=2000)
@given(st.text(max_size=500))
def test_fuzz_random_text(text: str) -> None:
    assert all(isinstance(f, Finding) for f in find(text))


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=500))
def test_fuzz_random_bytes(data: bytes) -> None:
    f = FileInput.from_bytes("x.txt", data)
    assert all(isinstance(x, Finding) for x in scan_secrets(f, ScanContext()))

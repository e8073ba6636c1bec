"""Remote code (.py shipped with a model): AST audit, never import."""

from __future__ import annotations

import base64
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.scan.remote_code_samples import MODELING_NEAR_MISS

from airlock.findings import Finding, Severity
from airlock.scan.base import FileInput, Limits, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.remote_code import scan_python


def scan(src: str, name: str = "modeling_x.py", ctx: ScanContext | None = None) -> list[Finding]:
    return list(scan_python(FileInput.from_bytes(name, src.encode()), ctx or ScanContext()))


def hits(src: str, rule_id: str) -> list[Finding]:
    return [f for f in scan(src) if f.rule_id == rule_id]


def test_realistic_modeling_file_has_no_high_findings() -> None:
    findings = scan(MODELING_NEAR_MISS)
    assert [f for f in findings if f.severity >= Severity.HIGH] == []
    # The tokenizer-style save inside a function is reported, but only as low.
    writes = [f for f in findings if f.rule_id == "remote-code.file-write"]
    assert writes and all(f.severity is Severity.LOW for f in writes)


def test_dispatch_by_extension_and_shebang() -> None:
    for name, data in (("m.py", b"x = 1\n"), ("tool", b"#!/usr/bin/env python3\nx = 1\n")):
        fmt = choose_format(FileInput.from_bytes(name, data))
        assert fmt is not None and fmt.name == "python"


@pytest.mark.parametrize(
    ("src", "line"),
    [
        ("import subprocess as sp\n\nsp.run(['id'])\n", 3),
        ("from os import system\nsystem('id')\n", 2),
        ("import os\nos.popen('id')\n", 2),
        ("import os\nos.execv('/bin/sh', ['sh'])\n", 2),
        ("import os\ngetattr(os, 'system')('id')\n", 2),
        ("__import__('os').system('id')\n", 1),
        ("import pty\n", 1),
    ],
)
def test_process_is_critical_with_line(src: str, line: int) -> None:
    found = hits(src, "remote-code.process")
    assert any(f.line == line and f.severity is Severity.CRITICAL for f in found), found


def test_evidence_is_the_source_line() -> None:
    f = hits("import os\n\n\nx = os.system('echo hi')\n", "remote-code.process")[0]
    assert f.line == 4 and f.evidence is not None and f.evidence.startswith("x = os.system(")


def test_network_in_function_is_high_at_import_is_critical() -> None:
    src = "import requests\ndef f():\n    requests.get('http://x')\nrequests.get('http://y')\n"
    found = {f.line: f.severity for f in hits(src, "remote-code.network")}
    assert found[1] is Severity.HIGH and found[3] is Severity.HIGH
    assert found[4] is Severity.CRITICAL


def test_main_guard_is_not_import_time() -> None:
    src = "import socket\nif __name__ == '__main__':\n    socket.create_connection(('x', 1))\n"
    assert {f.severity for f in hits(src, "remote-code.network")} == {Severity.HIGH}


def test_urllib_parse_is_not_network() -> None:
    src = "from urllib.parse import urlparse\nimport urllib.parse\nurllib.parse.quote('a')\n"
    assert hits(src, "remote-code.network") == []


@pytest.mark.parametrize(
    "src",
    [
        "eval('1+1')\n",
        "exec('x = 1')\n",
        "import importlib\nimportlib.import_module('os')\n",
        "import marshal\nmarshal.loads(b'')\n",
        "import builtins\nbuiltins.exec('1')\n",
        "from types import CodeType\n",
    ],
)
def test_dynamic_code_is_critical(src: str) -> None:
    found = hits(src, "remote-code.dynamic-code")
    assert found and found[0].severity is Severity.CRITICAL


def test_local_names_and_methods_called_eval_are_not_dynamic_code() -> None:
    src = (
        "import re\nimport torch\nmodel = torch.nn.Linear(1, 1)\nmodel.eval()\n"
        "pat = re.compile('x')\ndef compile(x):\n    return x\ncompile(1)\n"
    )
    assert hits(src, "remote-code.dynamic-code") == []


def test_obfuscated_exec_direct_and_via_variable() -> None:
    payload = base64.b64encode(b"print('hi')").decode()
    src = (
        f"import base64, zlib\nexec(base64.b64decode('{payload}'))\n"
        f"code = zlib.decompress(base64.b64decode('{payload}'))\neval(code)\n"
    )
    lines = {f.line for f in hits(src, "remote-code.obfuscated-exec")}
    assert lines == {2, 4}


def test_credentials_env_and_files() -> None:
    src = (
        "import os\nfrom pathlib import Path\n"
        "a = os.environ['HF_TOKEN']\n"
        "b = os.getenv('AWS_SECRET_ACCESS_KEY')\n"
        "c = os.environ.get('OPENAI_API_KEY')\n"
        "d = Path.home().joinpath('.aws/credentials').read_text()\n"
        "e = open(os.path.expanduser('~/.netrc')).read()\n"
        "f = os.environ.get('TOY_NUM_THREADS', '1')\n"
    )
    cred = {f.line for f in hits(src, "remote-code.credential-read")}
    assert cred == {3, 4, 5, 6, 7}
    env = hits(src, "remote-code.env-read")
    assert {f.line for f in env} == {8} and env[0].severity is Severity.MEDIUM


@pytest.mark.parametrize(
    "src",
    [
        "open('/etc/cron.d/job', 'w').write('x')\n",
        "open('~/.bashrc', 'a')\n",
        "open('../../outside.txt', mode='w')\n",
        "import shutil\nshutil.copy('x', '/tmp/y')\n",
        "import os\nfrom pathlib import Path\n(Path.home() / '.bashrc').write_text('x')\n",
    ],
)
def test_write_outside_is_high(src: str) -> None:
    found = hits(src, "remote-code.file-write-outside")
    assert found and found[0].severity is Severity.HIGH


def test_reading_a_local_file_is_not_a_write() -> None:
    src = "import json\nwith open('vocab.json') as f:\n    v = json.load(f)\n"
    assert hits(src, "remote-code.file-write") == hits(src, "remote-code.file-write-outside") == []


def test_download_at_import_high_in_function_medium() -> None:
    src = (
        "from huggingface_hub import hf_hub_download\nimport torch\n"
        "w = hf_hub_download('acme/x', 'extra.bin')\n"
        "def load():\n    return torch.hub.load('acme/repo', 'model')\n"
    )
    found = {f.line: f.severity for f in hits(src, "remote-code.download")}
    assert found == {3: Severity.HIGH, 5: Severity.MEDIUM}


def test_obfuscation_blob_but_not_docstring_or_prose() -> None:
    blob = base64.b64encode(os.urandom(400)).decode()
    prose = " ".join(["the model computes attention over the sequence"] * 10)
    hexblob = os.urandom(200).hex()
    src = f'"""{blob}"""\nX = "{blob}"\nY = "{prose}"\nZ = "{"ab" * 300}"\nH = "{hexblob}"\n'
    lines = {f.line for f in hits(src, "remote-code.obfuscation")}
    assert lines == {2, 5}


def test_cap_per_rule_with_count() -> None:
    src = "import os\n" + "os.system('x')\n" * 120
    found = hits(src, "remote-code.process")
    assert len(found) == 51
    assert found[-1].extra["count"] == 120


def test_import_time_payload_is_never_executed(tmp_path) -> None:
    sentinel = tmp_path / "pwned"
    src = (
        "import os, subprocess\n"
        f"open({str(sentinel)!r}, 'w').write('x')\n"
        f"subprocess.run(['touch', {str(sentinel)!r}])\n"
        f"os.system('touch {sentinel}')\n"
    )
    path = tmp_path / "modeling_evil.py"
    path.write_text(src)
    findings = list(scan_file(FileInput.from_path(path, "modeling_evil.py"), ScanContext()))
    assert not sentinel.exists()
    rules = {f.rule_id for f in findings}
    assert {"remote-code.process", "remote-code.file-write-outside"} <= rules


def test_syntax_error_is_low_malformed() -> None:
    found = scan("def f(:\n")
    assert [f.rule_id for f in found] == ["remote-code.malformed"]
    assert found[0].severity is Severity.LOW


def test_null_bytes_and_deep_nesting_are_findings() -> None:
    for src in (
        "x = 1\x00\n",
        "x = " + "(" * 500 + "1" + ")" * 500 + "\n",
        "x = " + "-" * 200000 + "1\n",
    ):
        found = scan(src)
        assert all(isinstance(f, Finding) for f in found)
        assert not [f for f in found if f.rule_id == "scan.internal-error"]


def test_too_large_is_unscannable() -> None:
    ctx = ScanContext(limits=Limits(max_text_bytes=100))
    found = scan("x = 1\n" * 100, ctx=ctx)
    assert [f.rule_id for f in found] == ["remote-code.unscannable"]


def test_large_file_is_fast() -> None:
    src = MODELING_NEAR_MISS * 40  # ~150 KB of modeling code
    t = time.perf_counter()
    scan(src)
    assert time.perf_counter() - t < 5


_PY_BITS = st.sampled_from(
    ["import os", "from subprocess import *", "os.system(", "eval(", "exec(", "'x'", ")",
     "(", "\n", "    ", "def f():", "if __name__ == '__main__':", "getattr(", ",", "=",
     "open(", "'w'", "os.environ[", "]", "base64.b64decode(", "lambda: ", "x"]
)  # fmt: skip


@settings(max_examples=200, deadline=2000)
@given(st.lists(_PY_BITS, max_size=40).map(" ".join))
def test_fuzz_python_fragments(src: str) -> None:
    found = scan(src)
    assert all(isinstance(f, Finding) for f in found)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    found = list(scan_python(FileInput.from_bytes("x.py", data), ScanContext()))
    assert all(isinstance(f, Finding) for f in found)

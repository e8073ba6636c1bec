"""The peers that ``gate_bench.py`` measures airlock gate against: install, configure, time.

- **LiteLLM's proxy** (``litellm[proxy]``) in ``benchmarks/.work/litellm-venv``, started as
  ``litellm --config FILE`` with one uvicorn worker (its default), no database, telemetry
  and message logging off, its model-cost map read from the package (no download at
  start-up), and no client keys (as the gate runs with ``auth: {required: false}``).
- **LLM Guard** (``llm-guard``) in ``benchmarks/.work/llmguard-venv``. It requires torch; the
  CPU build goes in first, because a plain ``torch`` requirement would make pip fetch a
  multi-GB CUDA build. Only its scanners that need no model are timed (Secrets, Regex,
  InvisibleText, BanSubstrings); they run with the Hugging Face libraries told to stay
  offline and an empty ``HF_HOME``, so nothing can be fetched or read from a model cache.

The scanner timings of both sides run through one harness (``_TIMER``), each in a fresh
process of its own venv: every scanner is built once, then ``scan`` is called on the same
text over and over for a time budget, and the median is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

import yaml
from _peers import installed_versions, venv_bin

LITELLM = "litellm[proxy]==1.106.12"  # pinned; newer releases need extras not on PyPI
LLM_GUARD = "llm-guard==0.3.16"
TORCH = "torch==2.13.0"  # the CPU wheel; llm-guard requires torch even for regex scanners
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
UPSTREAM_KEY = "bench-upstream-key"  # the upstream ignores keys; LiteLLM wants one


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for every tool: bytecode allowed (as after ``pip install``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | extra


def _pip(venv_dir: Path, *specs: str) -> None:
    py = venv_bin(venv_dir) / "python"
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *specs], check=True)


def ensure_litellm(venv_dir: Path) -> None:
    """Create the LiteLLM venv and install the proxy if it is missing (pip's own index)."""
    if installed_versions(venv_dir, ("litellm",))["litellm"] != "missing":
        return
    print(f"setting up LiteLLM venv at {venv_dir} ...", flush=True)
    _pip(venv_dir, LITELLM)


def ensure_llm_guard(venv_dir: Path) -> None:
    """Create the LLM Guard venv and install it (CPU torch first) if it is missing."""
    if installed_versions(venv_dir, ("llm-guard",))["llm-guard"] != "missing":
        return
    print(f"setting up LLM Guard venv at {venv_dir} ...", flush=True)
    _pip(venv_dir, TORCH)
    _pip(venv_dir, LLM_GUARD)


# ============================================================== LiteLLM's proxy


def litellm_config(path: Path, upstream: str, model: str, public: str) -> Path:
    """Write LiteLLM's proxy configuration: one public model name, one upstream."""
    config = {
        "model_list": [
            {
                "model_name": public,
                "litellm_params": {
                    "model": f"openai/{model}",  # any OpenAI-compatible server
                    "api_base": upstream,
                    "api_key": UPSTREAM_KEY,
                    "timeout": 30,
                },
            }
        ],
        "litellm_settings": {
            "telemetry": False,
            "set_verbose": False,
            "turn_off_message_logging": True,
            "request_timeout": 30,
        },
        "general_settings": {"disable_spend_logs": True},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def litellm_cmd(venv_dir: Path, config: Path, port: int) -> list[str]:
    """``litellm --config FILE --host 127.0.0.1 --port N`` (one worker: its default)."""
    exe = venv_bin(venv_dir) / "litellm"
    return [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]


def litellm_env(home: Path) -> dict[str, str]:
    """LiteLLM's environment: quiet, offline, no database, no client keys."""
    env = tool_env(
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else it fetches the cost map at start-up
        LITELLM_TELEMETRY="False",
        # it refuses to start without a master key; the gate runs without client keys too
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
        HOME=str(home),
        **OFFLINE,
    )
    for var in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL"):
        env.pop(var, None)
    return env


LITELLM_HEALTH = "/health/liveliness"

# ============================================================== scanner timing harness

# Reads {"texts": {label: text}, "seconds": s, "min_runs": n, "max_runs": m} on stdin; the
# tool's SETUP code (appended) defines SCANNERS: {name: callable(text) -> hit count}.
_TIMER = r"""
import json, statistics, sys, time
_t0 = time.perf_counter()
SETUP
_setup_s = time.perf_counter() - _t0

def _time(fn, text, seconds, min_runs, max_runs):
    fn(text)  # warm caches (compiled regexes, lazy imports)
    times = []
    end = time.perf_counter() + seconds
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < end):
        t = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_us": statistics.median(times) * 1e6,
            "p90_us": times[int(0.9 * (len(times) - 1))] * 1e6, "runs": len(times)}

spec = json.load(sys.stdin)
out = {"setup_s": _setup_s, "scanners": {}, "errors": ERRORS}
for name, fn in SCANNERS.items():
    row = {}
    for label, text in spec["texts"].items():
        try:
            row[label] = _time(fn, text, spec["seconds"], spec["min_runs"], spec["max_runs"])
            row[label]["hits"] = fn(text)
        except Exception as e:  # one broken scanner must not hide the others
            row[label] = {"error": f"{type(e).__name__}: {e}"[:300]}
    out["scanners"][name] = row
print("@@RESULT@@" + json.dumps(out))
"""

# LLM Guard's four scanners that need no model; the Regex patterns cover the same kinds as
# airlock's personal-data scanner. Logging is set to errors only: its warnings on every
# hit would otherwise be timed too. A scanner's hit count is 1 when it judged the text
# invalid (or changed it), else 0.
_LLM_GUARD_SETUP = r"""
ERRORS = {}
SCANNERS = {}
from llm_guard.util import configure_logger
configure_logger(log_level="ERROR")
from llm_guard.input_scanners import BanSubstrings, InvisibleText, Regex, Secrets
from llm_guard.input_scanners.ban_substrings import MatchType

def _hits(scanner):
    def run(text):
        sanitized, valid, _score = scanner.scan(text)
        return int((not valid) or sanitized != text)
    return run

CFG = json.loads(sys.argv[1])
for name, make in (
    ("Secrets", lambda: Secrets()),
    ("Regex", lambda: Regex(patterns=CFG["patterns"], is_blocked=True, redact=True)),
    ("InvisibleText", lambda: InvisibleText()),
    ("BanSubstrings", lambda: BanSubstrings(substrings=CFG["terms"], match_type=MatchType.WORD,
                                             case_sensitive=False, redact=True)),
):
    try:
        SCANNERS[name] = _hits(make())
    except Exception as e:
        ERRORS[name] = f"{type(e).__name__}: {e}"[:300]
"""

# Regular expressions for LLM Guard's Regex scanner: e-mail, phone, card number, IBAN,
# IPv4 and the Chinese resident id, the kinds airlock's personal-data scanner looks for.
PII_PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"(?:\+?\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b",
    r"\b(?:\d[ -]?){13,19}\b",
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b",
    r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
    r"\b\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b",
]


def _run_timer(
    argv: list[str], setup: str, spec: dict[str, Any], env: dict[str, str], cwd: Path
) -> dict[str, Any]:
    code = _TIMER.replace("SETUP", setup)
    res = subprocess.run(
        [argv[0], "-c", code, *argv[1:]], input=json.dumps(spec), capture_output=True,
        text=True, env=env, cwd=cwd, timeout=1800,
    )  # fmt: skip
    for line in res.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return dict(json.loads(line.removeprefix("@@RESULT@@")))
    return {"error": f"rc={res.returncode}: {(res.stderr or res.stdout).strip()[-600:]}"}


def time_llm_guard(
    venv_dir: Path, texts: dict[str, str], terms: list[str], budget: dict[str, Any], work: Path
) -> dict[str, Any]:
    """Median ``scan`` time of LLM Guard's four model-free scanners on each text.

    ``budget`` holds ``seconds``, ``min_runs`` and ``max_runs`` per scanner and text.
    """
    hf_home = work / "hf-empty"  # an empty cache: a scanner that needs a model must fail
    hf_home.mkdir(parents=True, exist_ok=True)
    env = tool_env(HF_HOME=str(hf_home), **OFFLINE)
    py = str(venv_bin(venv_dir) / "python")
    cfg = json.dumps({"patterns": PII_PATTERNS, "terms": terms})
    spec = {"texts": texts, **budget}
    return _run_timer([py, cfg], _LLM_GUARD_SETUP, spec, env, work)


# airlock's side: each scanner from the registry with its default options (the banned-terms
# scanner gets the same list as LLM Guard's), and the default input pipeline as the gate
# runs it on a one-message request, and the default output pipeline on the same text as a
# whole answer. Hit count: the scanners' hits.
_AIRLOCK_SETUP = r"""
ERRORS = {}
SCANNERS = {}
CFG = json.loads(sys.argv[1])
from airlock.guard import registry

def _scanner(name, options):
    s = registry.create(name, options)
    return lambda text: len(s.scan(text))

for name, options in CFG["scanners"].items():
    try:
        SCANNERS[name] = _scanner(name, options)
    except Exception as e:
        ERRORS[name] = f"{type(e).__name__}: {e}"[:300]
try:
    from airlock.guard.pipeline import Pipeline
    _pipe = Pipeline.default()

    def _input(text):
        result = _pipe.check_input([{"role": "user", "content": text}])
        return sum(len(v.hits) for v in result.verdicts)

    def _output(text):
        result = _pipe.check_output(text)
        return sum(len(v.hits) for v in result.verdicts)

    SCANNERS["default input pipeline"] = _input
    SCANNERS["default output pipeline"] = _output
except Exception as e:
    ERRORS["default pipeline"] = f"{type(e).__name__}: {e}"[:300]
"""


def time_airlock_guard(
    python: Path, texts: dict[str, str], scanners: dict[str, dict[str, Any]],
    budget: dict[str, Any], work: Path,
) -> dict[str, Any]:  # fmt: skip
    """Median ``scan`` time of airlock's guard scanners (and default input pipeline)."""
    cfg = json.dumps({"scanners": scanners})
    spec = {"texts": texts, **budget}
    return _run_timer([str(python), cfg], _AIRLOCK_SETUP, spec, tool_env(), work)

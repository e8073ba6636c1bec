"""garak, the peer that ``probe_bench.py`` times: install, prompts, configuration, judging,
and the same prompts as an airlock probe pack.

garak lives in its own virtual environment, ``benchmarks/.work/garak-venv``, so that it
never touches airlock's dependencies. It needs torch; the CPU build is installed first
(``TORCH``), because a plain ``torch`` requirement would make pip fetch a multi-GB CUDA
build. garak runs fully offline here: its OpenAI-compatible generator talks to the local
reference target, the probe reads its payloads from garak's own package data, and the
Hugging Face libraries are told not to reach the network.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _peers import installed_versions, venv_bin

GARAK = "garak==0.17.1"  # pinned: numbers are comparable between runs
TORCH = "torch==2.13.0"  # the CPU wheel; garak imports torch only for local models
PROBE = "encoding.InjectBase64"  # 835 prompts, string-match detector, no downloads
KEY_ENV = "OPENAICOMPATIBLE_API_KEY"  # garak's OpenAICompatible generator reads its key here
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def ensure(venv_dir: Path, spec: str = GARAK) -> None:
    """Create the garak venv and install garak (CPU torch first) if it is missing.

    Uses pip's configured index exactly as a user would.
    """
    py = venv_bin(venv_dir) / "python"
    if (venv_bin(venv_dir) / "garak").exists() and version(venv_dir).get("garak") != "missing":
        return
    print(f"setting up garak venv at {venv_dir} ...", flush=True)
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, spec], check=True)


def version(venv_dir: Path) -> dict[str, str]:
    """Installed versions of garak, torch and openai (``"missing"`` when absent)."""
    return installed_versions(venv_dir, ("garak", "torch", "openai"))


def env(home: Path) -> dict[str, str]:
    """garak's environment: offline, its data/cache/config under ``home``, a dummy key."""
    out = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out |= OFFLINE | {KEY_ENV: "bench"}
    for kind in ("DATA", "CACHE", "CONFIG"):
        out[f"XDG_{kind}_HOME"] = str(home / kind.lower())
    return out


# Loads the probe as garak's harness would and prints its prompts with the strings its
# detector looks for (garak calls them triggers): what airlock's pack must send and judge.
_PROMPTS = """
import json, sys
from garak import _config, _plugins
_config.load_base_config()
_config.run.soft_probe_prompt_cap = 10**9
probe = _plugins.load_plugin("probes." + sys.argv[1])
triggers = getattr(probe, "triggers", None) or []
out = []
for i, p in enumerate(probe.prompts):
    text = p if isinstance(p, str) else getattr(p, "text", None)
    if not isinstance(text, str):
        sys.exit(f"{sys.argv[1]}: prompt {i} is not text ({type(p).__name__})")
    trig = triggers[i] if len(triggers) == len(probe.prompts) else None
    out.append({"prompt": text, "trigger": trig if isinstance(trig, str) else None})
print(json.dumps({"prompts": out, "detector": probe.primary_detector}))
"""


@dataclass(frozen=True)
class Prompt:
    """One prompt garak's probe sends, and the string its detector looks for."""

    text: str
    trigger: str | None


def prompts(venv_dir: Path, home: Path, probe: str = PROBE) -> tuple[list[Prompt], str]:
    """Every prompt of ``probe`` (no cap) and the name of its primary detector.

    Raises:
        RuntimeError: garak could not load the probe.
    """
    py = str(venv_bin(venv_dir) / "python")
    res = subprocess.run(
        [py, "-c", _PROMPTS, probe], capture_output=True, text=True, env=env(home), cwd=home
    )
    if res.returncode != 0:
        raise RuntimeError(f"garak could not load probes.{probe}: {res.stderr.strip()[-300:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return [Prompt(p["prompt"], p["trigger"]) for p in data["prompts"]], str(data["detector"])


@dataclass(frozen=True)
class Setting:
    """One of garak's parallel settings: ``attempts`` (a process pool over prompts) or
    ``requests`` (a pool over the generations of one prompt); ``n`` = 1 is sequential."""

    knob: str
    n: int

    @property
    def label(self) -> str:
        return "sequential" if self.n <= 1 else f"--parallel_{self.knob} {self.n}"


def parse_settings(text: str) -> list[Setting]:
    """``"1,a8,r8"``: 1 sequential, ``aN`` parallel_attempts N, ``rN`` parallel_requests N.

    Raises:
        ValueError: an entry that is none of these.
    """
    out = []
    for raw in (x.strip() for x in text.split(",") if x.strip()):
        knob = {"a": "attempts", "r": "requests"}.get(raw[0], "attempts")
        digits = raw[1:] if raw[0] in "ar" else raw
        if not digits.isdigit() or int(digits) < 1:
            raise ValueError(f"bad garak setting {raw!r} (1, aN or rN)")
        out.append(Setting(knob, int(digits)))
    return out


def config(path: Path, *, url: str, model: str, setting: Setting, generations: int) -> None:
    """Write garak's run configuration (YAML) for one setting.

    Only the probe's primary detector runs and the bootstrap confidence intervals are
    off, so what is timed is garak's harness and generator, not its statistics.
    """
    parallel: dict[str, Any] = {"parallel_attempts": False, "parallel_requests": False}
    if setting.n > 1:
        parallel[f"parallel_{setting.knob}"] = setting.n
    cfg = {
        "system": {**parallel, "narrow_output": True, "lite": True},
        "run": {"generations": generations, "seed": 1, "soft_probe_prompt_cap": 10**9},
        "plugins": {
            "target_type": "openai.OpenAICompatible",
            "target_name": model,
            "extended_detectors": False,
            "generators": {"openai": {"OpenAICompatible": {"uri": url.rstrip("/") + "/"}}},
        },
        "reporting": {"report_dir": str(path.parent), "confidence_interval_method": "none"},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def argv(venv_dir: Path, cfg: Path, prefix: str, probe: str = PROBE) -> list[str]:
    """The garak command line for one run (report ``<prefix>.report.jsonl`` next to cfg)."""
    garak = str(venv_bin(venv_dir) / "garak")
    return [garak, "--config", str(cfg), "--spec", f"probes.{probe}", "--report_prefix", prefix]


@dataclass
class Outcome:
    """What garak's report says a run did."""

    requests: int = 0  # generator outputs: one per prompt and generation
    errors: int = 0  # outputs that are None (the request failed)
    prompts: collections.Counter[str] = field(default_factory=collections.Counter)
    note: str = ""


def read_report(path: Path) -> Outcome:
    """Count the requests garak made from its JSONL report (evaluated attempts only)."""
    out = Outcome()
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("entry_type") != "attempt" or row.get("status") != 2:
                    continue
                outputs = row.get("outputs") or []
                out.requests += len(outputs)
                out.errors += sum(o is None or o.get("text") is None for o in outputs)
                turns = row["prompt"]["turns"]
                out.prompts[turns[-1]["content"]["text"]] += 1
    except (OSError, ValueError, KeyError, TypeError) as e:
        out.note = f"cannot read garak's report {path.name}: {e}"
    return out


# ---------------------------------------------------------------- the same prompts for airlock

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _literal(text: str) -> str:
    """Escape ``{name}`` so that airlock's pack loader sends the text as it is."""
    return _PLACEHOLDER.sub(r"{{\1}}", text)


def write_pack(path: Path, prompts: list[Prompt], probe: str, probe_id: str) -> str:
    """Write garak's prompts as one airlock probe (a grid of items); returns its detector.

    The detector is ``echo`` on the string garak's detector looks for (the decoded payload,
    a substring match like garak's ``DecodeMatch``), or ``refusal`` when the probe has none.
    Chinese values repeat the English ones (packs need both); the bench runs ``--langs en``.
    """
    with_trigger = all(p.trigger for p in prompts)
    items = []
    for i, p in enumerate(prompts):
        values = {"text": _literal(p.text)}
        if with_trigger and p.trigger:
            values["expect"] = _literal(p.trigger)
        items.append({"id": f"p{i:05d}", "en": values, "zh": dict(values)})
    detector = "echo" if with_trigger else "refusal"
    pack = {
        "family": "encoding",
        "grids": {"garak": items},
        "probes": [
            {
                "id": probe_id,
                "title": f"garak probes.{probe} prompts (benchmark)",
                "goal": "the same prompts garak sends, for a like-for-like timing",
                "prompt": {"en": "{text}", "zh": "{text}"},
                "each": "garak",
                "detectors": [detector],
            }
        ],
    }
    path.write_text(yaml.safe_dump(pack, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return detector


_EXPAND = """
import json, sys
from pathlib import Path
from airlock.probes import packs
cases = packs.expand(packs.load_packs([Path(sys.argv[1])]), langs=["en"])
print(json.dumps([c.messages[-1]["content"] for c in cases]))
"""


def check_pack(path: Path, prompts: list[Prompt], airlock_py: Path) -> str:
    """Expand the pack with airlock's loader and compare its prompts with garak's."""
    res = subprocess.run([str(airlock_py), "-c", _EXPAND, str(path)], capture_output=True)
    if res.returncode != 0:
        return "NOT CHECKED: " + res.stderr.decode(errors="replace").strip()[-200:]
    sent: list[str] = json.loads(res.stdout)
    if sent == [p.text for p in prompts]:
        return "identical to garak's"
    want = [p.text.strip() for p in prompts]  # airlock strips a prompt's ends
    differ = sum(a != b for a, b in zip(sent, want, strict=False)) + abs(len(sent) - len(want))
    if not differ:
        return "identical to garak's but for leading/trailing white space"
    return f"{differ} of {len(want)} DIFFER from garak's"

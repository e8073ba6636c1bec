"""The tools ``scan_bench.py`` times: how each is called, judged and measured.

The peers (picklescan, modelscan, fickling) live in their own virtual environment under
``benchmarks/.work/peers-venv`` so that they never touch airlock's dependencies. Every tool
(airlock, the peers, ``openssl dgst``) runs as a subprocess on the same file; a tool that
cannot handle an input is reported as "n/a" with the reason (``Cmd.skip``) or judged from
its own output afterwards (``Cmd.judge``), never allowed to fail the benchmark.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("picklescan", "modelscan", "fickling")
# fickling 0.1.x imports typing_extensions without declaring it as a dependency.
_EXTRA = ("typing_extensions",)

# A judge reads (exit code, stdout, stderr, report file) and says whether the tool did the
# job (else its time is not comparable and it is shown as n/a) plus a note to show.
Judge = Callable[[int, str, str, Path], "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What a tool's own output says about a run: did it scan the input, and notes."""

    ok: bool
    note: str = ""
    extra: dict[str, Any] | None = None


@dataclass
class Cmd:
    """One tool invocation on one input."""

    tool: str
    argv: list[str] = field(default_factory=list)
    judge: Judge | None = None
    skip: str = ""  # non-empty: not run, reported as n/a with this reason
    report: Path | None = None  # a file the tool writes (JSON), passed to the judge


def venv_bin(venv_dir: Path) -> Path:
    """The scripts folder of a venv."""
    return venv_dir / ("Scripts" if sys.platform == "win32" else "bin")


def ensure_peers(venv_dir: Path, *, upgrade: bool = False) -> None:
    """Create the peers venv and install the peers into it if missing.

    Uses pip's configured index (mirror) exactly as a user would.
    """
    py = venv_bin(venv_dir) / "python"
    missing = [p for p in PEERS if not (venv_bin(venv_dir) / p).exists()]
    if py.exists() and not missing and not upgrade:
        return
    print(f"setting up peers venv at {venv_dir} ...", flush=True)
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    cmd = [str(py), "-m", "pip", "install", "-q", *PEERS, *_EXTRA]
    if upgrade:
        cmd.insert(4, "--upgrade")
    subprocess.run(cmd, check=True)


def installed_versions(venv_dir: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` in a venv (``"missing"`` when absent)."""
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    py = venv_bin(venv_dir) / "python"
    try:
        res = subprocess.run(
            [str(py), "-c", code, *packages], capture_output=True, text=True, check=True
        )
        return dict(json.loads(res.stdout))
    except (OSError, subprocess.CalledProcessError, ValueError):
        return dict.fromkeys(packages, "missing")


def peer_versions(venv_dir: Path) -> dict[str, str]:
    """Installed version of each peer (``"missing"`` when absent)."""
    return installed_versions(venv_dir, tuple(PEERS))


def host_info() -> dict[str, Any]:
    """What every benchmark reports about the machine it ran on."""
    cpu = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "")
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": nproc,
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1, 5, 15 min, at start)",
    }


# ---------------------------------------------------------------- judges


def _judge_picklescan(rc: int, out: str, err: str, _report: Path) -> Verdict:
    m = re.search(r"Scanned files:\s*(\d+)", out)
    scanned = int(m.group(1)) if m else 0
    infected = re.search(r"Infected files:\s*(\d+)", out)
    if rc not in (0, 1) or m is None:
        return Verdict(False, f"rc={rc}: {_last_line(err or out)}")
    if scanned == 0:
        return Verdict(False, "scanned 0 files (no pickle it recognises)")
    note = f"scanned {scanned} file(s)"
    if infected and infected.group(1) != "0":
        note += f", {infected.group(1)} flagged"
    return Verdict(True, note)


def _judge_modelscan(rc: int, out: str, err: str, report: Path) -> Verdict:
    try:
        data = json.loads(report.read_text())
        summary = data["summary"]
        scanned = int(summary["scanned"]["total_scanned"])
        skipped = int(summary.get("skipped", {}).get("total_skipped", 0))
        errors = data.get("errors") or []
    except (OSError, ValueError, KeyError, TypeError):
        return Verdict(False, f"rc={rc}, no JSON report: {_last_line(err or out)}")
    if scanned == 0:
        return Verdict(False, f"scanned 0 files, skipped {skipped} (rc={rc})")
    note = f"scanned {scanned}, skipped {skipped}"
    if errors:
        note += f", {len(errors)} error(s): {_short(str(errors[0]))}"
    return Verdict(True, note)


def _judge_fickling(rc: int, out: str, err: str, _report: Path) -> Verdict:
    if rc in (0, 1):
        note = "flagged unsafe" if rc == 1 else "judged safe"
        if "resource limits exceeded" in err:
            note = "gave up (resource limits exceeded), " + note
        return Verdict(True, note)
    return Verdict(False, f"rc={rc}: {_last_line(err or out)}")


def _judge_fickling_api(rc: int, out: str, err: str, _report: Path) -> Verdict:
    m = re.search(r"members=(\d+) errors=(\d+)", out)
    if rc != 0 or m is None:
        return Verdict(False, f"rc={rc}: {_last_line(err or out)}")
    return Verdict(True, f"library API, {m.group(1)} members, {m.group(2)} errors")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return _short(lines[-1]) if lines else "no output"


def _short(s: str, n: int = 90) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


# ---------------------------------------------------------------- commands

# fickling's CLI reads one pickle stream; for a zip of pickles its library offers
# scan_zip_archive, so that is what we time (the CLI would reject the zip as a pickle).
_FICKLING_ZIP = (
    "import sys, fickling\n"
    "r = fickling.scan_zip_archive(sys.argv[1], graceful=True)\n"
    "print(f'members={len(r)} errors={sum(len(v.errors) for v in r.values())}')\n"
)


def peer_cmds(venv_dir: Path, target: Path, kind: str, scratch: Path) -> list[Cmd]:
    """The peer invocations for ``target``.

    Args:
        venv_dir: the peers venv.
        target: the file or directory to scan.
        kind: ``"dir"``, ``"pickle"`` or ``"zip"``.
        scratch: a folder for the peers' report files.
    """
    b = venv_bin(venv_dir)
    ms_report = scratch / "modelscan.json"
    cmds = [
        Cmd("picklescan", [str(b / "picklescan"), "-p", str(target)], _judge_picklescan),
        Cmd(
            "modelscan",
            [str(b / "modelscan"), "scan", "-p", str(target), "-r", "json", "-o", str(ms_report)],
            _judge_modelscan,
            report=ms_report,
        ),
    ]
    fick = Cmd("fickling", judge=_judge_fickling)
    if kind == "pickle":
        fick.argv = [str(b / "fickling"), "--check-safety", "--json-output", "/dev/null"]
        fick.argv.append(str(target))
    elif kind == "zip":
        fick.argv = [str(b / "python"), "-c", _FICKLING_ZIP, str(target)]
        fick.judge = _judge_fickling_api
    else:
        fick.skip = "fickling scans one pickle (or zip) at a time; it has no directory mode"
    cmds.append(fick)
    return cmds


# ---------------------------------------------------------------- running and timing

_RSS_LINE = "Maximum resident set size (kbytes):"
# Fallback when GNU time is absent: a fresh process whose only child is the tool, so
# RUSAGE_CHILDREN's max RSS is exactly the tool's peak.
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "kb = kb // 1024 if sys.platform == 'darwin' else kb\n"
    f"open(sys.argv[1], 'w').write('{_RSS_LINE} %d\\n' % kb)\n"
    "sys.exit(rc)\n"
)
GNU_TIME = Path("/usr/bin/time")


@dataclass
class Result:
    """The best of several runs of one tool on one input."""

    input: str
    tool: str
    seconds: float | None = None
    times: list[float] | None = None
    rss_mb: float | None = None
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] | None = None


# Every tool runs from compiled bytecode, as after a normal `pip install` (which writes .pyc
# files): a shell with PYTHONDONTWRITEBYTECODE set would otherwise charge whichever tool is
# installed editable (airlock, here) for recompiling its sources on every run.
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def precompile(src: Path) -> None:
    """Write .pyc files for an editable install, as pip does for installed packages."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True, env=TOOL_ENV)


class Timeout(Exception):
    """A run went over ``--timeout``."""


def _run_once(argv: list[str], timeout: float, cwd: Path) -> tuple[int, float, float, str, str]:
    """Run ``argv``; returns (exit code, wall seconds, peak RSS MB, stdout, stderr)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss", dir=cwd) as tf:
        if GNU_TIME.exists():
            full = [str(GNU_TIME), "-v", "-o", tf.name, *argv]
        else:
            full = [sys.executable, "-c", _RUSAGE_WRAPPER, tf.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(
            full, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=TOOL_ENV,
        )  # fmt: skip
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the tool runs under time: kill its group
            p.communicate()
            raise Timeout from None
        secs = time.perf_counter() - t0
        rss = next((ln for ln in tf.read().splitlines() if _RSS_LINE in ln), "")
    mb = int(rss.rsplit(":", 1)[1]) / 1024 if rss else float("nan")
    return p.returncode, secs, mb, out, err


def measure(label: str, cmd: Cmd, opts: argparse.Namespace, scratch: Path) -> Result:
    """Best wall time (and the peak RSS of that run) of up to ``opts.runs`` runs of ``cmd``."""
    res = Result(label, cmd.tool)
    if cmd.skip:
        return _na(res, cmd.skip)
    times: list[float] = []
    for i in range(opts.runs):
        try:
            rc, secs, mb, out, err = _run_once(cmd.argv, opts.timeout, scratch)
        except Timeout:
            if not times:
                return _na(res, f"timed out after {opts.timeout:.0f}s", lower=opts.timeout)
            break
        except OSError as e:
            return _na(res, f"could not run: {e}")
        verdict = cmd.judge(rc, out, err, cmd.report or scratch) if cmd.judge else None
        if verdict is not None and not verdict.ok:
            return _na(res, verdict.note)
        times.append(secs)
        if secs <= min(times):
            res.seconds, res.rss_mb = secs, mb
            res.note = verdict.note if verdict else ""
            res.extra = verdict.extra if verdict else None
        if secs > opts.long_run and i == 0:
            break  # one run of a slow tool is enough to rank it
    res.times = times
    return res


def _na(res: Result, why: str, lower: float | None = None) -> Result:
    res.ok, res.note = False, why
    res.seconds = lower  # a timeout is a lower bound on the tool's time
    return res


def openssl_cmd(paths: list[Path]) -> Cmd:
    """The sha256 floor: one ``openssl dgst`` over every file of the target."""
    files = [str(p) for p in paths]

    def judge(rc: int, out: str, err: str, _r: Path) -> Verdict:
        return Verdict(rc == 0, "" if rc == 0 else f"rc={rc}: {err.strip()[:80]}")

    return Cmd("openssl sha256", ["openssl", "dgst", "-sha256", *files], judge)


# ---------------------------------------------------------------- airlock and openssl

AIRLOCK_PY = ROOT / ".venv" / "bin" / "python"
AIRLOCK_BIN = ROOT / ".venv" / "bin" / "airlock"
# --preload-scanners: import every airlock.scan.* module before the CLI runs, so scanners
# that exist but are not yet listed in airlock.scan.api._BUILTINS are measured too.
_PRELOAD = (
    "import importlib, pkgutil, sys\n"
    "import airlock.scan as s\n"
    "for m in pkgutil.iter_modules(s.__path__, 'airlock.scan.'):\n"
    "    try: importlib.import_module(m.name)\n"
    "    except Exception as e: print(f'preload {m.name}: {e!r}', file=sys.stderr)\n"
)
_RUN_CLI = "from airlock.cli import main\nsys.argv = ['airlock', *sys.argv[1:]]\nmain()\n"
_INFO = (
    "import json, sys\n"
    "import airlock\n"
    "from airlock.scan import api, base\n"
    "api._load_builtins()\n"
    "print(json.dumps({'version': airlock.__version__, 'builtins': list(api._BUILTINS),"
    " 'formats': sorted(base.FORMAT_SCANNERS), 'file_checks': sorted(base.FILE_CHECKS)}))\n"
)


def airlock_prefix(preload: bool) -> list[str]:
    """How to start the airlock CLI (optionally with every scanner module imported)."""
    if preload:
        return [str(AIRLOCK_PY), "-c", _PRELOAD + _RUN_CLI]
    return [str(AIRLOCK_BIN)]


def airlock_info(preload: bool) -> dict[str, Any]:
    """airlock's version and the scanners a scan would use."""
    code = (_PRELOAD if preload else "") + _INFO
    res = subprocess.run([str(AIRLOCK_PY), "-c", code], capture_output=True, text=True)
    try:
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": res.stderr.strip()[-300:]}


_WEIGHTS = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".pkl", ".zip")


def _judge_airlock(rc: int, out: str, err: str, report: Path) -> Verdict:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return Verdict(False, f"rc={rc}, no report: {(err or out).strip()[-120:]}")
    if rc not in (0, 1):
        return Verdict(False, f"rc={rc}")
    formats = collections.Counter(f["format"] for f in data["files"])
    # a weight file (or archive member) airlock did not recognise was not really scanned:
    # its time means little. The "format" facts cover archive members too.
    seen = data.get("facts", {}).get("format") or data["files"]
    unparsed = [f["path"] for f in seen if f["format"] == "other"]
    unparsed = [p for p in unparsed if p.lower().endswith(_WEIGHTS)]
    rules = collections.Counter(f["rule_id"] for f in data["findings"])
    note = " ".join(f"{k}×{v}" for k, v in sorted(formats.items()))
    note += f"; {len(data['findings'])} findings"
    if rules:
        note += " (" + ", ".join(r for r, _ in rules.most_common(3)) + ")"
    if unparsed:
        note += f"; NOT PARSED: {len(unparsed)} weight file(s)/member(s), e.g. {unparsed[0]}"
    crashed = rules["scan.internal-error"]  # a scanner crashed: a file was only partly read
    if crashed:
        note += f"; {crashed} INTERNAL ERROR(S)"
    extra = {"in_process_s": data["duration_s"], "formats": dict(formats), "rules": dict(rules)}
    extra["unparsed"] = unparsed + ["scan.internal-error"] * bool(crashed)
    return Verdict(True, note, extra)


def airlock_cmd(target: Path, scratch: Path, *, hash_files: bool, preload: bool) -> Cmd:
    """``airlock scan TARGET --no-db --no-lock -q -f json -o REPORT [--no-hash]``."""
    report = scratch / ("airlock.json" if hash_files else "airlock-nohash.json")
    argv = [*airlock_prefix(preload), "scan", str(target), "--no-db", "--no-lock", "-q"]
    argv += ["-f", "json", "-o", str(report)] + ([] if hash_files else ["--no-hash"])
    tool = "airlock" if hash_files else "airlock --no-hash"
    return Cmd(tool, argv, _judge_airlock, report=report)

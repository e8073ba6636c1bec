"""Benchmark ``airlock probe`` against garak: same prompts, same target, attempts per second.

Run ``.venv/bin/python benchmarks/probe_bench.py`` (``--help`` for options). The reference
target (``airlock reference-target --profile naive --delay-ms 50``) runs as a separate
process on a free port, so that client and server share the machine's cores as in a real
deployment. garak (installed on first use into ``benchmarks/.work/garak-venv``) sends the
prompts of one of its probes through its OpenAI-compatible generator at several parallel
settings; airlock sends the very same prompts, written at run time into a probe pack under
``benchmarks/.work``, at ``--concurrency 64`` and at two run sizes. Every client is a fresh
process (start-up included); we report wall time, attempts per second and the peak memory
of the client's whole process tree.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _garak
import _peers
from _peers import AIRLOCK_BIN, AIRLOCK_PY, ROOT, host_info

WORK = ROOT / "benchmarks" / ".work"
MODEL = "reference-naive"
PACK_PROBE = "encoding.garak-prompts"  # the id of the pack's one probe
GOAL_RATE, GOAL_RATIO, GOAL_FLAT = 600.0, 10.0, 1.15
SAMPLE_S = 0.05  # memory sampling interval per process in the client's tree

# ============================================================== measuring a process tree


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"{task.path}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    return out


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (forked workers) are counted once in a sum."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            text = fh.read()
        m = re.search(r"^Pss:\s+(\d+)", text, re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def tree_pss_mb(root: int) -> tuple[float, int]:
    """Summed PSS (MB) of ``root`` and all its descendants now, and how many they are."""
    todo, kb, count = [root], 0, 0
    while todo:
        pid = todo.pop()
        kb, count = kb + _pss_kb(pid), count + 1
        todo += _children(pid)
    return kb / 1024, count


@dataclass
class Measured:
    """One client run: exit code, wall seconds, peak tree PSS and largest single RSS (MB)."""

    rc: int
    wall_s: float
    peak_mb: float
    max_rss_mb: float


class Timeout(Exception):
    """A run went over ``--timeout``."""


def measure(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> Measured:
    """Run ``argv`` (output to ``log``), sampling its process tree's memory.

    The largest single-process RSS comes from ``wait4`` (exact); the tree's summed PSS is
    sampled, so a peak shorter than the interval can be missed.

    Raises:
        Timeout: the run went over ``timeout`` seconds (it is killed).
    """
    with log.open("wb") as fh:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
            start_new_session=True,
        )  # fmt: skip
        peak, next_sample = 0.0, t0
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            now = time.perf_counter()
            if pid:
                break
            if now - t0 > timeout:
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
                p.returncode = -9
                raise Timeout
            if now >= next_sample:
                mb, count = tree_pss_mb(p.pid)
                # reading smaps costs ~0.5 ms a process: keep the sampler near 1% of a core
                peak, next_sample = max(peak, mb), now + SAMPLE_S * count
            time.sleep(0.005)
    p.returncode = os.waitstatus_to_exitcode(status)
    return Measured(p.returncode, now - t0, peak, usage.ru_maxrss / 1024)


# ============================================================== the reference target


def free_port() -> int:
    """A TCP port that is free now (the server gets it as a fixed ``--port``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_argv(port: int, delay_ms: float) -> list[str]:
    """``airlock reference-target``, naive profile, on ``port`` with a fixed delay."""
    args = ["--profile", "naive", "--port", str(port), "--delay-ms", f"{delay_ms:g}"]
    return [str(AIRLOCK_BIN), "reference-target", *args]


@contextlib.contextmanager
def reference_target(port: int, delay_ms: float, log: Path) -> Iterator[str]:
    """Start the reference target in its own process; yields its base URL."""
    argv = server_argv(port, delay_ms)
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as fh:
        p = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=_peers.TOOL_ENV, start_new_session=True
        )
    try:
        _wait_ready(p, url + "/models")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the server stops cleanly
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_ready(p: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit(f"the reference target exited (rc={p.returncode}); see its log")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    sys.exit("the reference target did not answer within 20 s")


# ============================================================== runs


@dataclass
class Row:
    """One client run, as reported."""

    tool: str
    setting: str
    generations: int
    attempts: int  # requests the run was asked to make: prompts × generations
    done: int = 0  # answered requests, as the tool's own output shows
    errors: int = 0
    wall_s: float | None = None
    in_process_s: float | None = None
    peak_mb: float | None = None
    max_rss_mb: float | None = None
    ok: bool = False
    note: str = ""

    @property
    def rate(self) -> float | None:
        """Answered attempts per second of wall time (start-up included)."""
        return self.done / self.wall_s if self.ok and self.wall_s else None


def _timed(row: Row, argv: list[str], env: dict[str, str], log: Path, timeout: float) -> bool:
    try:
        m = measure(argv, env, log, timeout)
    except Timeout:
        row.note = f"timed out after {timeout:.0f}s"
        return False
    except OSError as e:
        row.note = f"could not run: {e}"
        return False
    row.wall_s, row.peak_mb, row.max_rss_mb = m.wall_s, m.peak_mb, m.max_rss_mb
    allowed = (0, 1) if row.tool == "airlock" else (0,)  # airlock: 1 = a probe failed
    if m.rc not in allowed:
        row.note = f"rc={m.rc}: {_last_line(log)}"
        return False
    return True


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:120] if lines else "no output"


def run_garak(
    opts: argparse.Namespace, url: str, s: _garak.Setting, prompts: list[_garak.Prompt], g: int
) -> Row:
    """One garak run at one parallel setting; its report says how many requests succeeded."""
    prefix = f"garak-g{g}-{s.knob}{s.n}"
    runs = opts.out / "garak-runs"
    runs.mkdir(parents=True, exist_ok=True)
    cfg, report = runs / f"{prefix}.yaml", runs / f"{prefix}.report.jsonl"
    _garak.config(cfg, url=url, model=MODEL, setting=s, generations=g)
    report.unlink(missing_ok=True)
    row = Row("garak", s.label, g, len(prompts) * g)
    argv = _garak.argv(opts.garak_venv, cfg, prefix, opts.garak_probe)
    env = _garak.env(opts.work / "garak-home")
    if not _timed(row, argv, env, cfg.with_suffix(".log"), opts.timeout):
        return row
    out = _garak.read_report(report)
    row.done, row.errors = out.requests - out.errors, out.errors
    row.ok = not out.note and row.done == row.attempts
    missing = sum(1 for p in prompts if p.text not in out.prompts)
    row.note = out.note or ("sent every prompt" if not missing else f"{missing} prompts NOT sent")
    row.note += f"; {out.errors} failed requests" if out.errors else ""
    return row


def run_airlock(opts: argparse.Namespace, url: str, pack: Path, n: int, g: int) -> Row:
    """One ``airlock probe`` run of the pack (``n`` prompts) with ``g`` generations each."""
    label = f"airlock-g{g}"
    out, db = opts.out / f"{label}.json", opts.out / f"{label}.db"
    for f in (out, db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        f.unlink(missing_ok=True)
    argv = [str(AIRLOCK_BIN), "probe", "--target", url, "--model", MODEL]
    argv += ["--concurrency", str(opts.concurrency), "--generations", str(g)]
    argv += ["--probe-file", str(pack), "--probes", f"{PACK_PROBE}.*", "--langs", "en"]
    argv += ["--db", str(db), "-q", "--format", "json", "-o", str(out)]
    row = Row("airlock", f"--concurrency {opts.concurrency}", g, n * g)
    if not _timed(row, argv, _peers.TOOL_ENV, opts.out / f"{label}.log", opts.timeout):
        return row
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
        totals = data["totals"]
        row.errors = int(totals.get("errors", 0))
        row.done = int(totals["done"]) - row.errors
        row.in_process_s = float(data["duration_s"])
        hits = int(totals.get("hits", 0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        row.note = f"no usable JSON summary: {e}"
        return row
    row.ok = row.done == row.attempts
    row.note = (f"{row.errors} errors; " if row.errors else "") + f"{hits} hits; SQLite {db.name}"
    return row


def bench_garak(opts: argparse.Namespace, url: str, prompts: list[_garak.Prompt]) -> list[Row]:
    """Every parallel setting at ``--generations`` and at ``--scale`` × that (sequential
    only at the first size: it is never the fastest, and the slowest by far)."""
    rows = []
    for i, g in enumerate(_sizes(opts)):
        settings = [s for s in opts.settings if s.n > 1 or i == 0] or opts.settings
        for s in settings:
            job = functools.partial(run_garak, opts, url, s, prompts, g)
            rows.append(_announce(job, "garak", f"{s.label}, g={g}", opts.runs))
    return rows


def bench_airlock(opts: argparse.Namespace, url: str, pack: Path, n: int) -> list[Row]:
    """airlock at ``--concurrency`` on two run sizes: ``--generations`` and ``--scale`` ×."""
    rows = []
    for g in _sizes(opts):
        job = functools.partial(run_airlock, opts, url, pack, n, g)
        rows.append(_announce(job, "airlock", f"g={g}", opts.runs))
    return rows


def _sizes(opts: argparse.Namespace) -> list[int]:
    """Generations per prompt of the two run sizes."""
    return [opts.generations] + ([opts.generations * opts.scale] if opts.scale > 1 else [])


def _announce(job: Callable[[], Row], tool: str, label: str, runs: int) -> Row:
    """Run ``job`` up to ``runs`` times (the machine may be shared) and keep the fastest."""
    print(f"  {tool} {label} ...", end="", flush=True)
    best: Row | None = None
    for _ in range(runs):
        row = job()
        print(f" {row.rate:.1f}/s" if row.rate else f" FAILED ({row.note})", end="", flush=True)
        if not row.rate:
            best = row
            break
        if best is None or (best.rate or 0.0) < row.rate:
            best = row
    print(flush=True)
    assert best is not None
    return best


# ============================================================== reporting


def best_garak(rows: list[Row], attempts: int) -> Row | None:
    """garak's fastest finished run of this many attempts."""
    done = [r for r in rows if r.tool == "garak" and r.attempts == attempts and r.rate]
    return max(done, key=lambda r: r.rate or 0.0, default=None)


def _ratio(r: Row, rows: list[Row]) -> float | None:
    best = best_garak(rows, r.attempts)
    return r.rate / best.rate if r.rate and best and best.rate else None


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def print_table(rows: list[Row], desc: str) -> None:
    """attempts/s, memory and the ratio to garak's best run of as many attempts."""
    print(f"\n== {desc}")
    head = f"  {'tool':<8} {'setting':<25} {'gen':>3} {'attempts':>8} {'wall s':>7} {'att/s':>7}"
    print(head + f" {'in-proc/s':>9} {'peak MB':>8} {'max RSS':>8} {'×garak':>7}  notes")
    for r in sorted(rows, key=lambda r: (r.attempts, r.tool != "garak")):
        inproc = r.done / r.in_process_s if r.ok and r.in_process_s else None
        print(
            f"  {r.tool:<8} {r.setting:<25} {r.generations:>3} {r.attempts:>8}"
            f" {_f(r.wall_s, '.2f'):>7} {_f(r.rate, '.1f'):>7} {_f(inproc, '.1f'):>9}"
            f" {_f(r.peak_mb, '.0f'):>8} {_f(r.max_rss_mb, '.0f'):>8}"
            f" {_f(_ratio(r, rows), '.1f'):>7}  {'' if r.ok else 'FAILED: '}{r.note}"
        )


def _target(
    name: str, value: float | None, goal: str, met: bool | None, detail: str
) -> dict[str, Any]:
    return {"target": name, "value": value, "goal": goal, "met": met, "detail": detail}


def evaluate(rows: list[Row]) -> list[dict[str, Any]]:
    """The issue's targets, each met / missed / not judged (``met`` None)."""
    mine = [r for r in rows if r.tool == "airlock"]
    ratios = [_ratio_target(r, rows) for r in mine] or [_ratio_target(None, rows)]
    return [_rate_target(mine), *ratios, _flat_target(mine)]


def _rate_target(mine: list[Row]) -> dict[str, Any]:
    name, goal = "airlock attempts/s", f"≥ {GOAL_RATE:.0f}"
    big = max((r for r in mine if r.rate), key=lambda r: r.attempts, default=None)
    if big is None or big.rate is None:
        return _target(name, None, goal, None, "no finished airlock run")
    detail = f"largest run: {big.attempts} attempts, {big.setting}, start-up included"
    return _target(name, big.rate, goal, big.rate >= GOAL_RATE, detail)


def _ratio_target(r: Row | None, rows: list[Row]) -> dict[str, Any]:
    name, goal = f"airlock / best garak, g={r.generations if r else '?'}", f"≥ {GOAL_RATIO:.0f}"
    best = best_garak(rows, r.attempts) if r else None
    ratio = _ratio(r, rows) if r else None
    if ratio is None or best is None or best.rate is None or r is None:
        return _target(name, None, goal, None, "needs garak and airlock on as many attempts")
    detail = f"{r.attempts} attempts each; garak's best: {best.setting}, {best.rate:.1f}/s"
    return _target(name, ratio, goal, ratio >= GOAL_RATIO, detail)


def _flat_target(mine: list[Row]) -> dict[str, Any]:
    name, goal = "airlock memory flat (big/small)", f"≤ {GOAL_FLAT}"
    runs = [r for r in mine if r.ok and r.peak_mb]
    if len(runs) < 2:
        return _target(name, None, goal, None, "needs two airlock runs")
    small, big = min(runs, key=lambda r: r.attempts), max(runs, key=lambda r: r.attempts)
    grow = (big.peak_mb or 0.0) / (small.peak_mb or 1.0)
    detail = f"peak {small.peak_mb:.0f} MB at {small.attempts}, {big.peak_mb:.0f} MB at"
    return _target(name, grow, goal, grow <= GOAL_FLAT, f"{detail} {big.attempts} attempts")


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("\n== targets (issue 3; 2 cores)")
    for t in targets:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["met"]]
        shown = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  [{mark}] {t['target']:<32} {shown:>8}  goal {t['goal']:<6} {t['detail']}")


def machine_info(opts: argparse.Namespace) -> dict[str, Any]:
    """Where the numbers come from."""
    res = subprocess.run([str(AIRLOCK_BIN), "--version"], capture_output=True, text=True)
    return {
        **host_info(),
        "airlock": res.stdout.strip() or res.stderr.strip()[-80:],
        "garak": _garak.version(opts.garak_venv),
        "server": f"airlock reference-target --profile naive --delay-ms {opts.delay_ms:g}",
        "memory": f"peak MB = summed PSS of the client's process tree, sampled every "
        f"{SAMPLE_S} s × processes; max RSS = largest single process (wait4)",
    }


def print_machine(info: dict[str, Any]) -> None:
    print("\n== machine")
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in v.items())
        print(f"  {k:<8} {v}")


NOTES = """
notes: an attempt is one request (one prompt, one generation) in both tools.
  att/s = answered attempts / wall time of a fresh client process (start-up included);
  in-proc/s uses airlock's own campaign time; ×garak = att/s / garak's best att/s on as
  many attempts (every parallel setting runs at both sizes; sequential at the first only).
  garak's --parallel_attempts spreads prompts over worker processes; the generations of
  one prompt run one after another inside a worker, so garak gains with more generations.
  airlock's ceiling is concurrency / delay = {ceiling:.0f} attempts/s.
  airlock writes every attempt to SQLite; garak writes its JSONL report and runs only its
  probe's primary detector (no bootstrap confidence intervals)."""


# ============================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=1, help="per prompt, both tools [1]")
    ap.add_argument("--scale", type=int, default=4, help="second run size: × generations [4]")
    ap.add_argument("--concurrency", type=int, default=64, help="airlock's concurrency [64]")
    ap.add_argument("--runs", type=int, default=1, help="runs per tool and setting, best kept [1]")
    ap.add_argument(
        "--garak-settings",
        default="1,a8,a16,a32",
        help="garak runs: 1 sequential, aN --parallel_attempts N, rN --parallel_requests N "
        "[1,a8,a16,a32]",
    )
    ap.add_argument("--garak-probe", default=_garak.PROBE, help=f"[{_garak.PROBE}]")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="target's delay per answer [50]")
    ap.add_argument("--port", type=int, default=0, help="target's port [a free one]")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run [600]")
    ap.add_argument("--quick", action="store_true", help="smoke test: garak at a16 only")
    ap.add_argument("--no-garak", action="store_true", help="time airlock only")
    ap.add_argument("--no-airlock", action="store_true", help="time garak only")
    ap.add_argument("--setup", action="store_true", help="only install garak, then exit")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--work", type=Path, default=WORK, help=f"work folder [{WORK}]")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.garak_settings = "a16"
    try:
        opts.settings = _garak.parse_settings(opts.garak_settings)
    except ValueError as e:
        ap.error(str(e))
    if opts.no_garak:
        opts.settings = []
    opts.work = opts.work.resolve()
    opts.garak_venv = opts.work / "garak-venv"
    opts.out = opts.work / "probe-bench"  # this run's pack, logs, reports and databases
    return opts


def run(opts: argparse.Namespace) -> dict[str, Any]:
    """Prepare the prompts, start the target, time every client, print; returns the data."""
    info = machine_info(opts)
    home = opts.work / "garak-home"
    home.mkdir(parents=True, exist_ok=True)
    prompts, garak_detector = _garak.prompts(opts.garak_venv, home, opts.garak_probe)
    pack = opts.out / "garak-prompts.yaml"
    detector = _garak.write_pack(pack, prompts, opts.garak_probe, PACK_PROBE)
    same = _garak.check_pack(pack, prompts, AIRLOCK_PY)
    n = len(prompts)
    print(f"{n} prompts from garak probes.{opts.garak_probe} (its detector {garak_detector});")
    print(f"airlock's pack {pack.name} (detector {detector}) sends them {same}", flush=True)
    port = opts.port or free_port()
    with reference_target(port, opts.delay_ms, opts.out / "reference-target.log") as url:
        rows = bench_garak(opts, url, prompts)
        rows += [] if opts.no_airlock else bench_airlock(opts, url, pack, n)
    desc = (
        f"{n} prompts of garak probes.{opts.garak_probe}; reference target (naive profile,"
        f" {opts.delay_ms:g} ms per answer) in its own process on port {port}"
    )
    print_machine(info)
    print_table(rows, desc)
    targets = evaluate(rows)
    print_targets(targets)
    print(NOTES.format(ceiling=opts.concurrency / (opts.delay_ms / 1000 or float("nan"))))
    return {
        "machine": info,
        "description": desc,
        "options": {k: str(v) for k, v in vars(opts).items()},
        "prompts": {"count": n, "airlock_pack": same, "garak_detector": garak_detector},
        "results": [asdict(r) | {"rate": r.rate} for r in rows],
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    opts = parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    _garak.ensure(opts.garak_venv)  # the prompts come from garak even with --no-garak
    if opts.setup:
        return 0
    if not AIRLOCK_BIN.exists():
        sys.exit(f"airlock is not installed in {AIRLOCK_BIN.parent} (run `make test` once)")
    _peers.precompile(ROOT / "src")
    data = run(opts)
    if opts.json:
        opts.json.write_text(json.dumps(data, indent=2))
        print(f"results written to {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

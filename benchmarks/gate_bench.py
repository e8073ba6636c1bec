"""Benchmark ``airlock gate`` against LiteLLM's proxy, and its guard against LLM Guard.

Run ``.venv/bin/python benchmarks/gate_bench.py`` (``--help`` for options). One run starts
an instant loopback upstream (``_gate_wire.py upstream``, its own process) and drives, with
a cheap closed-loop load generator in a process of its own (``_gate_wire.py load``), the
same chat requests (1 KB and 10 KB prompts, streaming and not, concurrency 1 and 32)
straight at the upstream, through LiteLLM's proxy, and through ``airlock gate`` with the
guard off and with its default scanners. It reports requests/s, p50/p99 latency and
streaming time to first event, the servers' CPU time per request, and checks that the
gate's audit log holds one row per request sent. Then it times airlock's guard scanners
alone against LLM Guard's model-free scanners (Secrets, Regex, InvisibleText,
BanSubstrings) on the same texts, in-process, each in a fresh process of its own venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gate_peers as peers
from _peers import AIRLOCK_BIN, AIRLOCK_PY, ROOT, host_info, installed_versions

WORK = ROOT / "benchmarks" / ".work"
WIRE = ROOT / "benchmarks" / "_gate_wire.py"
PUBLIC, UPSTREAM_MODEL = "bench", "reference-naive"
SIZES = {"1KB": 1024, "10KB": 10 * 1024}
GOAL_ADD_MS, GOAL_RATIO, GOAL_SECRETS = 2.0, 10.0, 10.0
# airlock's guard scanners timed one by one, and LLM Guard's counterpart of each.
PAIRS = {"secrets": "Secrets", "pii": "Regex", "unicode": "InvisibleText", "terms": "BanSubstrings"}
# airlock's other default scanners, timed alone too (LLM Guard's counterparts need a model).
ONLY_AIRLOCK = ("injection", "leaks", "exfil", "code")
TERMS = [
    "project nightingale", "codename bluebird", "operation tidewater", "falcon ledger",
    "blue harbor merger", "orchid payroll", "granite roadmap", "silverline audit",
    "northwind pricing", "cedar layoffs", "aurora buyout", "maple settlement",
    "quartz outage", "juniper lawsuit", "hollow creek", "ironbridge memo",
    "willow forecast", "saffron deal", "copperfield breach", "stonegate review",
]  # fmt: skip

# ============================================================== texts


_EN = [
    "The quarterly report covers sales, logistics and hiring across three regions.",
    "Please summarise the main risks and suggest two follow-up questions for the team.",
    "Our warehouse in the north moved to a new shift plan in March, and deliveries sped up.",
    "Customer feedback mentions slow replies on weekends and praises the new mobile app.",
    "Budget planning for next year assumes modest growth and stable prices for materials.",
    "The engineering group wants to retire the old build server before the summer release.",
    "Training sessions for new staff run every second Tuesday until the end of the year.",
    "Marketing tested two landing pages, and the shorter one converted slightly better.",
    "Legal asked for a review of supplier contracts that renew automatically.",
    "The support queue held about four hundred open tickets at the end of the month.",
]
_ZH = [
    "第三季度的销售额比去年同期略有增长。",
    "请根据会议记录整理出下周需要完成的任务。",
    "新员工培训将在每月的第二个星期二举行。",
]


def make_text(size: int, seed: int = 4, zh: float = 0.1) -> str:
    """Clean business prose of ``size`` UTF-8 bytes, deterministic: English sentences and
    a share ``zh`` of Chinese ones. Nothing in it should trip a scanner: the gateway must
    forward every request.
    """
    rng, parts, used = random.Random(seed), [], 0
    while used < size:
        s = rng.choice(_ZH) if rng.random() < zh else rng.choice(_EN)
        s += "\n" if rng.random() < 0.2 else " "
        parts.append(s)
        used += len(s.encode())
    text = "".join(parts).encode()[:size].decode("utf-8", "ignore")
    return text.rstrip() + "."


def plant(text: str, seed: int = 4) -> str:
    """``text`` with a secret, an e-mail, a zero-width space and a banned term in its middle:
    every timed scanner must find its kind here, or its time means nothing."""
    rng = random.Random(seed)
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    aws = "AKIA" + "".join(rng.choice(alnum) for _ in range(16))
    ghp = "ghp_" + "".join(rng.choice(alnum + alnum.lower()) for _ in range(36))
    inset = (
        f" For the sync use key {aws} and token {ghp}, then write to jane.roe@example.org"
        f" about project nightingale.\u200b "
    )
    mid = len(text) // 2
    return text[:mid] + inset + text[mid:]


def write_bodies(
    work: Path, texts: dict[str, str], model: str = PUBLIC
) -> dict[tuple[str, bool], Path]:
    """One JSON request body per (size, stream) for the load generator."""
    out: dict[tuple[str, bool], Path] = {}
    for label, text in texts.items():
        for stream in (False, True):
            body = {"model": model, "stream": stream, "max_tokens": 256,
                    "messages": [{"role": "user", "content": text}]}  # fmt: skip
            path = work / f"body-{model}-{label}-{'stream' if stream else 'json'}.json"
            path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
            out[label, stream] = path
    return out


# ============================================================== servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process we started (its own session, so its whole group can be stopped)."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT

    def tree(self) -> list[int]:
        todo, out = [self.proc.pid], []
        while todo:
            pid = todo.pop()
            out.append(pid)
            with contextlib.suppress(OSError):
                for task in os.scandir(f"/proc/{pid}/task"):
                    with open(f"{task.path}/children") as fh:
                        todo += [int(x) for x in fh.read().split()]
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the server's process tree."""
        tick, total = os.sysconf("SC_CLK_TCK"), 0.0
        for pid in self.tree():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def peak_rss_mb(self) -> float:
        """Summed peak RSS (VmHWM) of the server's processes."""
        kb = 0
        for pid in self.tree():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        kb += int(line.split()[1])
        return kb / 1024


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except OSError as e:
        return getattr(e, "code", 0) or 0, b""


@contextlib.contextmanager
def started(
    name: str, argv: list[str], env: dict[str, str], log: Path, health: str, port: int,
    timeout: float = 120.0,
) -> Iterator[Server]:  # fmt: skip
    """Start a server, wait until ``health`` answers 200, stop its process group after."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
            start_new_session=True,
        )  # fmt: skip
    server = Server(name, proc, f"http://127.0.0.1:{port}")
    try:
        t0 = time.monotonic()
        while _get(server.base + health)[0] != 200:
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                tail = log.read_text(errors="replace").strip()[-800:]
                raise RuntimeError(f"{name} did not start (see {log}):\n{tail}")
            time.sleep(0.2)
        print(f"  {name} up in {time.monotonic() - t0:.1f}s at {server.base}", flush=True)
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def upstream_received(upstream: Server) -> int:
    """Completions (plain and streamed) the instant upstream has answered so far."""
    status, body = _get(upstream.base + "/stats")
    if status != 200:
        return -1
    data = json.loads(body)
    return int(data["completions"]) + int(data["streams"])


def gate_config(path: Path, upstream: str, guard: str, db: Path, port: int) -> Path:
    """Write the gate.yaml this bench runs the gate with."""
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "database": str(db),
        "auth": {"required": False},
        "models": {PUBLIC: [{"url": upstream, "model": UPSTREAM_MODEL, "timeout": 30}]},
        "guard": guard,
        "audit": {"store": "hash"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def audit_rows(db: Path) -> int:
    """Rows in the gate's audit log (-1 when it cannot be read)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            return int(c.execute("SELECT count(*) FROM audit_log").fetchone()[0])
    except sqlite3.Error:
        return -1


def wait_audit(db: Path, want: int, settle_s: float = 10.0) -> int:
    """The audit row count once it reaches ``want`` or stops changing (the writer may batch)."""
    last, stable_since, t0 = -2, time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < settle_s:
        n = audit_rows(db)
        if n == want:
            return n
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            break
        time.sleep(0.1)
    return audit_rows(db)


# ============================================================== load


@dataclass
class Cell:
    """One load run: a target, a prompt size, streaming or not, a concurrency."""

    target: str
    size: str
    stream: bool
    conc: int
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None
    server_cpu_ms: float | None = None  # gateway CPU per request (None for direct)
    forwarded: int | None = None  # requests the upstream answered during the run
    audit: str = ""  # "rows/sent" for the gate
    note: str = ""


def load(url: str, body: Path, conc: int, opts: argparse.Namespace, n: int | None = None,
         duration: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the load generator in its own process; its JSON summary."""
    argv = [str(AIRLOCK_PY), str(WIRE), "load", "--url", url + "/v1/chat/completions",
            "--body-file", str(body), "-c", str(conc), "-n", str(n or opts.requests),
            "-d", str(duration or opts.duration)]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, env=peers.tool_env())
    try:
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"sent": 0, "ok": 0, "errors": {"load generator": 1}, "note": res.stderr[-300:]}


class Audit:
    """Counts requests sent to a gate and compares them with its audit log after each run;
    any row of a run that is not ``allowed`` with status 200 is named (a blocked or failed
    request would make the run's speed mean something else)."""

    def __init__(self, db: Path | None) -> None:
        self.db, self.sent, self.seq = db, 0, 0

    def check(self, sent: int) -> str:
        if self.db is None:
            return ""
        self.sent += sent
        rows = wait_audit(self.db, self.sent)
        out = f"{rows}/{self.sent}" + ("" if rows == self.sent else " MISMATCH")
        odd = self._odd_rows()
        return out + (f" ({odd})" if odd else "")

    def _odd_rows(self) -> str:
        assert self.db is not None
        query = "SELECT decision, status, count(*), max(seq) FROM audit_log WHERE seq > ?"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as c:
                groups = c.execute(query + " GROUP BY 1, 2", (self.seq,)).fetchall()
        except sqlite3.Error as e:
            return f"unreadable: {e}"
        self.seq = max([self.seq, *(int(g[3]) for g in groups)])
        return ", ".join(f"{d} {s}: {n}" for d, s, n, _ in groups if (d, s) != ("allowed", 200))


def measure(
    name: str, server: Server | None, upstream: Server, bodies: dict[tuple[str, bool], Path],
    opts: argparse.Namespace, audit: Audit,
) -> list[Cell]:  # fmt: skip
    """Every (size, stream, concurrency) cell against one target, after a warm-up."""
    base = server.base if server else upstream.base
    warm = load(base, bodies["1KB", False], 4, opts, n=opts.warmup, duration=10)
    warm_s = load(base, bodies["1KB", True], 4, opts, n=opts.warmup, duration=10)
    audit.check(warm["sent"] + warm_s["sent"])
    cells = []
    for (size, stream), body in bodies.items():
        for conc in opts.concurrency:
            cell = Cell(name, size, stream, conc)
            cpu0, up0 = (server.cpu_s() if server else 0.0), upstream_received(upstream)
            res = load(base, body, conc, opts)
            for k in ("sent", "ok", "errors", "rps", "p50_ms", "p99_ms"):
                setattr(cell, k, res.get(k, getattr(cell, k)))
            if stream:
                cell.ttfb_p50_ms, cell.ttfb_p99_ms = res.get("ttfb_p50_ms"), res.get("ttfb_p99_ms")
            up1 = upstream_received(upstream)
            cell.forwarded = up1 - up0 if min(up0, up1) >= 0 else None  # None: no /stats
            if server and cell.ok:
                cell.server_cpu_ms = (server.cpu_s() - cpu0) * 1000 / cell.ok
            cell.audit = audit.check(cell.sent)
            cell.note = res.get("note", "")
            _progress(cell)
            cells.append(cell)
    return cells


def _progress(c: Cell) -> None:
    errs = f" errors {c.errors}" if c.errors else ""
    print(
        f"    {c.target:<14} {c.size:>4} {'stream' if c.stream else 'json':<6} c={c.conc:<3}"
        f" {_f(c.rps, '.0f'):>6}/s p50 {_f(c.p50_ms, '.2f')} ms{errs}"
        f"{'  audit ' + c.audit if c.audit else ''}",
        flush=True,
    )


# ============================================================== the runs


def run_gateways(opts: argparse.Namespace, texts: dict[str, str]) -> list[Cell]:
    """Start the upstream, then each target in turn; every cell of every target."""
    work, cells = opts.work, []
    bodies = write_bodies(work, texts)  # for the public model name the gateways serve
    direct = write_bodies(work, texts, UPSTREAM_MODEL)
    port = free_port()
    argv = [str(AIRLOCK_PY), str(WIRE), "upstream", "--port", str(port)]
    if opts.upstream == "reference":
        argv = [str(AIRLOCK_BIN), "reference-target", "--port", str(port), "--delay-ms", "0"]
    with started("upstream", argv, peers.tool_env(), work / "upstream.log", "/v1/models",
                 port) as up:  # fmt: skip
        upstream_v1 = up.base + "/v1"
        print("  direct", flush=True)
        cells += measure("direct", None, up, direct, opts, Audit(None))
        if not opts.no_litellm:
            cells += _litellm(opts, up, upstream_v1, bodies)
        if not opts.no_gate:
            for guard in opts.guards:
                cells += _gate(opts, up, upstream_v1, bodies, guard)
    return cells


def _litellm(
    opts: argparse.Namespace, up: Server, upstream_v1: str, bodies: dict[tuple[str, bool], Path]
) -> list[Cell]:
    home = opts.work / "litellm-home"
    home.mkdir(parents=True, exist_ok=True)
    cfg = peers.litellm_config(opts.work / "litellm.yaml", upstream_v1, UPSTREAM_MODEL, PUBLIC)
    port = free_port()
    argv = peers.litellm_cmd(opts.litellm_venv, cfg, port)
    env = peers.litellm_env(home)
    try:
        with started("litellm", argv, env, opts.work / "litellm.log", peers.LITELLM_HEALTH,
                     port) as srv:  # fmt: skip
            cells = measure("litellm", srv, up, bodies, opts, Audit(None))
            opts.rss["litellm"] = srv.peak_rss_mb()
            return cells
    except RuntimeError as e:
        print(f"  LiteLLM not measured: {e}", flush=True)
        return []


def _gate(
    opts: argparse.Namespace, up: Server, upstream_v1: str,
    bodies: dict[tuple[str, bool], Path], guard: str,
) -> list[Cell]:  # fmt: skip
    name = f"gate {guard}"
    db = opts.work / f"gate-audit-{guard}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    port = free_port()
    cfg = gate_config(opts.work / f"gate-{guard}.yaml", upstream_v1, guard, db, port)
    if guard == "default":  # the file the README names for the default-scanner run
        gate_config(opts.work / "gate.yaml", upstream_v1, guard, db, port)
    argv = [str(AIRLOCK_BIN), "gate", "--config", str(cfg), "--port", str(port)]
    try:
        with started(name, argv, peers.tool_env(), opts.work / f"gate-{guard}.log", "/healthz",
                     port, timeout=60) as srv:  # fmt: skip
            cells = measure(name, srv, up, bodies, opts, Audit(db))
            opts.rss[name] = srv.peak_rss_mb()
            return cells
    except RuntimeError as e:
        print(f"  airlock gate (guard {guard}) not measured: {e}", flush=True)
        return []


def scan_texts() -> dict[str, str]:
    """The scanner timings' texts: the gateway's prompts and English-only ones of the same
    sizes (LLM Guard's Secrets scanner is much slower on the mixed text)."""
    texts = {label: make_text(size) for label, size in SIZES.items()}
    return texts | {f"{label} en": make_text(size, zh=0.0) for label, size in SIZES.items()}


def run_scanners(opts: argparse.Namespace, texts: dict[str, str]) -> dict[str, Any]:
    """airlock's guard scanners and LLM Guard's on the same clean and planted texts."""
    all_texts = {**texts, **{f"{k}+planted": plant(v) for k, v in texts.items()}}
    budget = {"seconds": opts.scan_seconds, "min_runs": 20, "max_runs": 5000}
    out: dict[str, Any] = {}
    print("  airlock guard scanners ...", flush=True)
    scanners = {name: ({"terms": TERMS} if name == "terms" else {}) for name in PAIRS}
    scanners |= {name: {} for name in ONLY_AIRLOCK}
    out["airlock"] = peers.time_airlock_guard(AIRLOCK_PY, all_texts, scanners, budget, opts.work)
    if not opts.no_llm_guard:
        print("  LLM Guard scanners ...", flush=True)
        out["llm-guard"] = peers.time_llm_guard(
            opts.llm_guard_venv, all_texts, TERMS, budget, opts.work
        )
    return out


# ============================================================== report


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _find(cells: list[Cell], target: str, size: str, stream: bool, conc: int) -> Cell | None:
    return next(
        (c for c in cells if (c.target, c.size, c.stream, c.conc) == (target, size, stream, conc)),
        None,
    )


def print_gateways(cells: list[Cell]) -> None:
    """One row per cell, with requests/s relative to LiteLLM's in the same cell."""
    print("\n== gateways (requests/s; latency ms; TTFE = time to the first SSE event)")
    head = f"  {'target':<14} {'size':>4} {'mode':<6} {'conc':>4} {'req/s':>7} {'p50':>7}"
    print(head + f" {'p99':>7} {'TTFE50':>7} {'TTFE99':>7} {'cpu/req':>7} {'×LiteLLM':>8}  audit")
    order = list(SIZES)
    for c in sorted(cells, key=lambda c: (order.index(c.size), c.stream, c.conc)):
        peer = _find(cells, "litellm", c.size, c.stream, c.conc)
        ratio = c.rps / peer.rps if peer and peer.rps and c.rps else None
        errs = f" errors {c.errors}" if c.errors else ""
        fwd = "" if c.forwarded in (None, c.ok) else f" upstream saw {c.forwarded}"
        print(
            f"  {c.target:<14} {c.size:>4} {'stream' if c.stream else 'json':<6} {c.conc:>4}"
            f" {_f(c.rps, '.0f'):>7} {_f(c.p50_ms, '.2f'):>7} {_f(c.p99_ms, '.2f'):>7}"
            f" {_f(c.ttfb_p50_ms, '.2f'):>7} {_f(c.ttfb_p99_ms, '.2f'):>7}"
            f" {_f(c.server_cpu_ms, '.2f'):>7} {_f(ratio, '.1f'):>8}  {c.audit}{errs}{fwd}"
        )


def _median(res: dict[str, Any], tool: str, scanner: str, text: str) -> float | None:
    row = res.get(tool, {}).get("scanners", {}).get(scanner, {}).get(text, {})
    return row.get("median_us") if isinstance(row, dict) else None


def _hits(res: dict[str, Any], tool: str, scanner: str, text: str) -> str:
    row = res.get(tool, {}).get("scanners", {}).get(scanner, {}).get(text, {})
    return "err" if "error" in row else str(row.get("hits", "-"))


def print_scanners(res: dict[str, Any], sizes: list[str]) -> None:
    """Median µs per scan on the clean texts; hits on clean / planted texts."""
    print("\n== guard scanners alone (median µs per scan, in-process; hits clean/planted)")
    for tool in ("airlock", "llm-guard"):
        errors = res.get(tool, {}).get("errors") or {}
        if res.get(tool, {}).get("error"):
            errors = {"all": res[tool]["error"]}
        for name, why in errors.items():
            print(f"  {tool} {name}: could not run: {why}")
    head = f"  {'airlock':<24} {'LLM Guard':<14} {'size':>7} {'airlock µs':>10}"
    print(head + f" {'LLM Guard µs':>12} {'×':>7}  hits airlock / LLM Guard")
    rows = [*PAIRS.items(), *((name, "") for name in ONLY_AIRLOCK)]
    rows += [("default input pipeline", ""), ("default output pipeline", "")]
    for mine, theirs in rows:
        for size in sizes:
            a, b = _median(res, "airlock", mine, size), _median(res, "llm-guard", theirs, size)
            ratio = b / a if a and b else None
            ha = _hits(res, "airlock", mine, size) + "/"
            ha += _hits(res, "airlock", mine, size + "+planted")
            hb = _hits(res, "llm-guard", theirs, size) + "/"
            hb += _hits(res, "llm-guard", theirs, size + "+planted")
            print(
                f"  {mine:<24} {theirs or '-':<14} {size:>7} {_f(a, '.1f'):>10} {_f(b, '.1f'):>12}"
                f" {_f(ratio, '.1f'):>7}  {ha} / {hb if theirs else '-'}"
            )


def _target(name: str, value: float | None, goal: str, met: bool | None,
            detail: str) -> dict[str, Any]:  # fmt: skip
    return {"target": name, "value": value, "goal": goal, "met": met, "detail": detail}


def evaluate(cells: list[Cell], scans: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each met / missed / not judged (``met`` None)."""
    out = []
    off, on = (
        _find(cells, "gate off", "1KB", False, 1),
        _find(cells, "gate default", "1KB", False, 1),
    )
    name = "default scanners add (p50, 1 KB, c=1)"
    if off and on and off.p50_ms is not None and on.p50_ms is not None and not on.errors:
        add = on.p50_ms - off.p50_ms
        detail = f"p50 {on.p50_ms:.2f} ms with scanners, {off.p50_ms:.2f} ms without"
        out.append(_target(name, add, f"< {GOAL_ADD_MS:g} ms", add < GOAL_ADD_MS, detail))
    else:
        out.append(_target(name, None, f"< {GOAL_ADD_MS:g} ms", None, "needs both gate runs"))
    for stream in (False, True):
        for conc in (32, 1):
            out.append(_ratio_target(cells, stream, conc))
    for size in scan_texts():
        a, b = (
            _median(scans, "airlock", "secrets", size),
            _median(scans, "llm-guard", "Secrets", size),
        )
        ratio = b / a if a and b else None
        detail = f"{_f(a, '.0f')} µs vs LLM Guard's {_f(b, '.0f')} µs" if ratio else "not timed"
        met = None if ratio is None else ratio >= GOAL_SECRETS
        out.append(_target(f"secrets scan {size} (× LLM Guard)", ratio, f"≥ {GOAL_SECRETS:g}",
                           met, detail))  # fmt: skip
    gate = [c for c in cells if c.target.startswith("gate")]
    bad = [f"{c.target} {c.size} c={c.conc}: {c.audit}" for c in gate if "MISMATCH" in c.audit]
    detail = "; ".join(bad) if bad else f"{len(gate)} gate runs checked"
    if not gate:
        out.append(_target("audit rows = requests", None, "0 runs off", None, "no gate run"))
    else:
        out.append(_target("audit rows = requests", len(bad), "0 runs off", not bad, detail))
    return out


def _ratio_target(cells: list[Cell], stream: bool, conc: int) -> dict[str, Any]:
    mode = "stream" if stream else "json"
    name, goal = f"gate default / LiteLLM req/s, {mode} c={conc}", f"≥ {GOAL_RATIO:g}"
    mine, peer = (
        _find(cells, "gate default", "1KB", stream, conc),
        _find(cells, "litellm", "1KB", stream, conc),
    )
    if not (mine and peer and mine.rps and peer.rps) or mine.errors:
        return _target(name, None, goal, None, "needs both on 1 KB without errors")
    ratio = mine.rps / peer.rps
    detail = f"1 KB: {mine.rps:.0f}/s vs {peer.rps:.0f}/s"
    if mine.server_cpu_ms and peer.server_cpu_ms:
        detail += f"; cpu/req {mine.server_cpu_ms:.2f} vs {peer.server_cpu_ms:.2f} ms"
        detail += f" ({peer.server_cpu_ms / mine.server_cpu_ms:.0f}× less)"
    # the issue's target is about throughput: judged at concurrency 32, shown at 1
    return _target(name, ratio, goal, ratio >= GOAL_RATIO if conc > 1 else None, detail)


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("\n== targets (issue 4; 2 cores)")
    for t in targets:
        mark = {True: "PASS", False: "FAIL", None: "info" if t["value"] is not None else "n/a "}
        shown = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(
            f"  [{mark[t['met']]}] {t['target']:<40} {shown:>8}  goal {t['goal']:<8} {t['detail']}"
        )


def machine_info(opts: argparse.Namespace) -> dict[str, Any]:
    """Where the numbers come from."""
    res = subprocess.run([str(AIRLOCK_BIN), "--version"], capture_output=True, text=True)
    return {
        **host_info(),
        "airlock": res.stdout.strip() or res.stderr.strip()[-80:],
        "litellm": installed_versions(opts.litellm_venv, ("litellm", "uvicorn", "uvloop")),
        "llm-guard": installed_versions(opts.llm_guard_venv, ("llm-guard", "bc-detect-secrets")),
        "upstream": opts.upstream,
    }


NOTES = """
notes: every server is its own process (one worker each); the load generator is a raw
  asyncio client in its own process (closed loop, keep-alive, one request per connection
  at a time), run for --duration s or --requests requests per cell, whichever comes first,
  and all requests in flight are awaited, so 'sent' is exact. req/s = answered / wall time.
  TTFE: time to the first SSE event of a streamed answer. cpu/req: the server's own CPU
  ms per answered request (independent of what else runs on the machine). ×LiteLLM:
  req/s over LiteLLM's in the same cell. audit: the gate's audit_log rows / requests sent
  (warm-ups included). The gate runs with auth off and audit store 'hash'."""


# ============================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per cell [5]")
    ap.add_argument("--requests", type=int, default=50_000, help="at most, per cell [50000]")
    ap.add_argument("--warmup", type=int, default=200, help="requests per mode and target [200]")
    ap.add_argument("--concurrency", default="1,32", help="client concurrencies [1,32]")
    ap.add_argument("--guards", default="off,default", help="gate runs [off,default]")
    ap.add_argument("--upstream", choices=("raw", "reference"), default="raw",
                    help="raw: the instant asyncio upstream; reference: airlock "
                    "reference-target --delay-ms 0 [raw]")  # fmt: skip
    ap.add_argument("--scan-seconds", type=float, default=1.0,
                    help="time budget per scanner and text [1]")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="smoke test: 1.5 s cells, 0.3 s scans")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    ap.add_argument("--no-llm-guard", action="store_true", help="skip LLM Guard")
    ap.add_argument("--no-gate", action="store_true", help="skip airlock gate")
    ap.add_argument("--no-scanners", action="store_true", help="skip the scanner timings")
    ap.add_argument("--no-gateways", action="store_true", help="only the scanner timings")
    ap.add_argument("--setup", action="store_true", help="only install the peers, then exit")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--work", type=Path, default=WORK, help=f"work folder [{WORK}]")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.duration, opts.scan_seconds, opts.warmup = 1.5, 0.3, 50
    opts.concurrency = [int(x) for x in opts.concurrency.split(",") if x.strip()]
    opts.guards = [g.strip() for g in opts.guards.split(",") if g.strip()]
    opts.work = opts.work.resolve()
    opts.litellm_venv = opts.work / "litellm-venv"
    opts.llm_guard_venv = opts.work / "llmguard-venv"
    opts.rss = {}
    return opts


def run(opts: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, printed; returns the data."""
    info = machine_info(opts)
    texts = {label: make_text(size) for label, size in SIZES.items()}
    cells: list[Cell] = []
    scans: dict[str, Any] = {}
    if not opts.no_gateways:
        print("gateways:", flush=True)
        cells = run_gateways(opts, texts)
    if not opts.no_scanners:
        print("scanners:", flush=True)
        scans = run_scanners(opts, scan_texts())
    print("\n== machine")
    for k, v in info.items():
        shown = ", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else v
        print(f"  {k:<9} {shown}")
    if cells:
        print_gateways(cells)
        rss = ", ".join(f"{k} {v:.0f} MB" for k, v in opts.rss.items())
        print(f"  peak RSS: {rss}" if rss else "")
    if scans:
        print_scanners(scans, list(scan_texts()))
    targets = evaluate(cells, scans)
    print_targets(targets)
    print(NOTES)
    return {
        "machine": info,
        "options": {k: str(v) for k, v in vars(opts).items()},
        "texts": {k: len(v.encode()) for k, v in scan_texts().items()},
        "gateways": [asdict(c) for c in cells],
        "peak_rss_mb": opts.rss,
        "scanners": scans,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    opts = parse_args(argv)
    opts.work.mkdir(parents=True, exist_ok=True)
    if not (opts.no_litellm or opts.no_gateways):
        peers.ensure_litellm(opts.litellm_venv)
    if not (opts.no_llm_guard or opts.no_scanners):
        peers.ensure_llm_guard(opts.llm_guard_venv)
    if opts.setup:
        return 0
    subprocess.run([str(AIRLOCK_PY), "-m", "compileall", "-q", str(ROOT / "src")],
                   env=peers.tool_env(), check=False)  # fmt: skip
    data = run(opts)
    if opts.json:
        opts.json.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

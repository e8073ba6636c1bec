"""``airlock gate`` as a process: serves, drains in-flight requests on shutdown, keeps
every audit row; ``airlock gate keys`` manages client keys."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from airlock.cli import main
from airlock.targets.reference.server import running as reference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:  # the socket is bound before uvicorn runs: ask for /healthz, not a connection
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("gate did not start")


def test_sigterm_drains_in_flight_requests_and_keeps_every_audit_row(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    port = _free_port()
    with reference("naive", delay_s=1.0) as up:
        cfg = tmp_path / "gate.yaml"
        cfg.write_text(
            json.dumps(
                {
                    "listen": {"host": "127.0.0.1", "port": port},
                    "database": str(db),
                    "auth": {"required": False},
                    "guard": "off",
                    "audit": {"store": "hash"},
                    "models": {"m": [{"url": up, "model": "reference-naive"}]},
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "airlock.cli", "gate", "--config", str(cfg)],
            stderr=subprocess.PIPE,
        )
        try:
            _wait_up(port, proc)
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=20
            )
            answers: list[str] = []

            def ask() -> None:
                out = client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
                answers.append(out.choices[0].message.content or "")

            threads = [threading.Thread(target=ask) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.4)  # the three are in flight at the upstream
            proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(20)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(answers) == 3 and all(answers)
    code = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)]).exit_code
    assert code == 0
    from airlock.gate.audit import AuditLog

    with AuditLog(str(db)) as log:
        rows = log.tail(10)
    assert len(rows) == 3 and {r.record.decision for r in rows} == {"allowed"}


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    r = CliRunner().invoke(
        main, ["gate", "keys", "create", "ci", "--model", "m", "--rpm", "5", "--db", db]
    )
    assert r.exit_code == 0 and r.stdout.startswith("alk-")
    key_id = r.stdout.split("-")[1]
    listed = CliRunner().invoke(main, ["gate", "keys", "list", "--db", db]).stdout
    assert key_id in listed and "active" in listed and r.stdout.strip() not in listed
    assert CliRunner().invoke(main, ["gate", "keys", "revoke", key_id, "--db", db]).exit_code == 0
    assert "revoked" in CliRunner().invoke(main, ["gate", "keys", "list", "--db", db]).stdout
    again = CliRunner().invoke(main, ["gate", "keys", "revoke", key_id, "--db", db])
    assert again.exit_code == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("models: {}", "name at least one"),
        ("models: {m: [{url: 'ftp://x', model: y}]}", "http(s)"),
        ("bogus: 1\nmodels: {m: [{url: 'http://x/v1', model: y}]}", "unknown key"),
        ("models: {m: [{url: 'http://x/v1', model: y}]}\naudit: {store: all}", "audit.store"),
        (": [", "not valid YAML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "gate.yaml"
    cfg.write_text(text)
    r = CliRunner().invoke(main, ["gate", "--config", str(cfg)])
    assert r.exit_code == 2 and needle in r.stderr, r.stderr

"""``airlock audit verify|head|tail|export``: exit codes 0 intact / 1 tampered / 2 error,
and output fit for terminals and for other tools."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from airlock._cli.audit import audit
from airlock.gate.audit import AuditLog, AuditRecord, Head


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(audit, list(args))
    return res.exit_code, res.stdout, res.stderr


def make_log(where: str, n: int = 5, **over: Any) -> Head:
    recs = []
    for i in range(1, n + 1):
        r = AuditRecord(
            request_id=f"r{i}",
            time=f"2025-03-0{i}T08:00:00.000Z",
            model="qwen",
            key_id="team-a",
            status=200,
            latency_ms=4.25,
            **over,
        )
        r.set_content("hash", prompt="hello", response="hi")
        recs.append(r)
    with AuditLog(where) as log:
        return log.append(recs)


@pytest.fixture
def logdb(tmp_path: Path) -> str:
    where = str(tmp_path / "audit.db")
    make_log(where)
    return where


def tamper(where: str, sql: str) -> None:
    conn = sqlite3.connect(where)
    with conn:
        conn.execute(sql)
    conn.close()


def test_verify_intact_exits_0(logdb: str) -> None:
    code, out, _ = run("verify", "--db", logdb)
    assert code == 0
    assert out.startswith("intact: 5 rows, head 5:")


def test_verify_tampered_exits_1_and_names_the_row(logdb: str) -> None:
    tamper(logdb, "UPDATE audit_log SET status = 403 WHERE seq = 2")
    code, out, err = run("verify", "--db", logdb)
    assert code == 1
    assert "TAMPERED (1 problems)" in out
    assert "seq        2  edited" in err


def test_verify_json(logdb: str) -> None:
    tamper(logdb, "DELETE FROM audit_log WHERE seq = 3")
    code, out, _ = run("verify", "--db", logdb, "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["problems"][0]["seq"] == 4


def test_head_then_expect_head_catches_truncation(logdb: str) -> None:
    code, out, _ = run("head", "--db", logdb)
    head = out.strip()
    assert code == 0 and Head.parse(head).seq == 5
    assert run("verify", "--db", logdb, "--expect-head", head)[0] == 0
    with AuditLog(logdb) as log:
        kept = log.tail(2)[0]  # seq 4
    tamper(logdb, "DELETE FROM audit_log WHERE seq = 5")
    tamper(logdb, f"UPDATE audit_head SET seq = 4, hash = '{kept.hash}'")
    assert run("verify", "--db", logdb)[0] == 0  # the chain alone cannot see it
    code, out, err = run("verify", "--db", logdb, "--expect-head", head)
    assert code == 1 and "truncated" in err


def test_usage_and_database_errors_exit_2(tmp_path: Path, logdb: str) -> None:
    missing = str(tmp_path / "none.db")
    for args in (
        ("verify", "--db", missing),
        ("head", "--db", missing),
        ("tail", "--db", missing),
        ("export", "--db", missing),
        ("verify", "--db", logdb, "--expect-head", "5:nothex"),
        ("export", "--db", logdb, "--since", "last tuesday"),
        ("export", "--db", logdb, "-o", str(Path(logdb) / "x.jsonl")),
    ):
        code, _, err = run(*args)
        assert code == 2, args
        assert err.startswith("airlock: error: "), args
    assert not Path(missing).exists()


def test_unreachable_postgresql_exits_2_without_the_password() -> None:
    pytest.importorskip("psycopg")
    code, _, err = run("verify", "--db", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert code == 2 and "hunter2" not in err and "cannot open" in err


def test_verify_on_postgresql(pg_url: str) -> None:
    make_log(pg_url, 3)
    assert run("verify", "--db", pg_url)[0] == 0
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE audit_log SET model = 'other' WHERE seq = 1")
    assert run("verify", "--db", pg_url)[0] == 1


def test_default_database_is_the_results_database() -> None:
    from airlock.store import default_db_path

    make_log(default_db_path(), 2)
    assert run("verify")[0] == 0
    assert run("head")[1].startswith("2:")


def test_tail_lines_and_json(logdb: str) -> None:
    code, out, _ = run("tail", "--db", logdb, "-n", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[0] == "4" and "allowed" in lines[0] and "key=team-a" in lines[0]
    code, out, _ = run("tail", "--db", logdb, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prompt"].startswith("sha256:")


def test_tail_escapes_terminal_control_characters(tmp_path: Path) -> None:
    where = str(tmp_path / "a.db")
    make_log(where, 1, upstream="x", error="\x1b]0;pwned\x07 \x1b[2J bad gateway")
    code, out, _ = run("tail", "--db", where)
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "bad gateway" in out


def test_tail_follow_prints_new_rows_until_interrupted(
    logdb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def follow(self: AuditLog, after_seq: int, poll_s: float = 0.5, stop: Any = None) -> Any:
        seen.append(after_seq)
        make_log_row = AuditRecord(request_id="late", model="late-model")
        self.append([make_log_row])
        yield from self.entries(after_seq=after_seq)
        raise KeyboardInterrupt

    monkeypatch.setattr(AuditLog, "follow", follow)
    code, out, _ = run("tail", "--db", logdb, "-n", "1", "--follow")
    assert code == 0 and seen == [5]
    assert [line.split()[0] for line in out.splitlines()] == ["5", "6"]
    assert "model=late-model" in out


def test_export_jsonl_to_file_and_csv_to_stdout(logdb: str, tmp_path: Path) -> None:
    out_file = tmp_path / "out" / "audit.jsonl"
    code, _, err = run("export", "--db", logdb, "-o", str(out_file))
    assert code == 0 and "5 rows written" in err
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3", "r4", "r5"]

    code, out, _ = run(
        "export", "--db", logdb, "--format", "csv", "--since", "2025-03-02", "--until", "2025-03-04"
    )
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["request_id"] for r in table] == ["r2", "r3"]

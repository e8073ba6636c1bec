"""The results database, on SQLite (default) and on a real PostgreSQL server when one answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.scan import scan_path
from airlock.store import Store, StoreError
from helpers import clean_model


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite")
    return str(request.getfixturevalue("pg_url"))


def test_save_load_history_and_hash_lookup(tmp_path: Path, db: str) -> None:
    r1 = scan_path(clean_model(tmp_path / "a"))
    r2 = scan_path(clean_model(tmp_path / "b"))
    with Store(db) as s:
        id1, id2 = s.save_scan(r1), s.save_scan(r2)
        assert {r.id for r in s.runs()} == {id1, id2}
        loaded = s.load_scan(id1)
        assert loaded.files == r1.files and loaded.findings == r1.findings
        assert loaded.run_id == id1
        sha = next(f.sha256 for f in r1.files if f.path == "config.json")
        assert sha is not None
        assert {run for run, _, _ in s.seen_hash(sha)} == {id1, id2}
        with pytest.raises(KeyError):
            s.load_scan("zzzz")
    with Store(db) as again:  # history survives reconnecting
        assert len(again.runs()) == 2


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as s:
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        Store(blocker / "sub" / "db.sqlite")


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as e:
        Store("postgresql://u:hunter2@127.0.0.1:1/none?connect_timeout=2")
    assert "hunter2" not in str(e.value) and "***" in str(e.value)


def test_two_processes_opening_a_new_database_at_once(tmp_path) -> None:
    """Switching a new SQLite file to WAL can find it locked (SQLite's busy timeout does
    not cover it): processes starting together must all still open it."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, time, pathlib\n"
        "from airlock.gate.audit import AuditWriter\n"
        "go = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "with AuditWriter(sys.argv[1]): pass\n"
    )
    for round_ in range(6):
        db, go = tmp_path / f"new{round_}.db", tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(db), str(go)], stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        time.sleep(0.5)  # all three imported and waiting
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()

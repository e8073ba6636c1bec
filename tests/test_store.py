"""The results database, on SQLite (default) and on a real PostgreSQL server when one answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.scan import scan_path
from airlock.store import Store, StoreError
from helpers import clean_model

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_schema_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_URL, connect_timeout=2, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")
    schema = f"airlock_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "db.sqlite")
    else:
        yield from _pg_schema_url()


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

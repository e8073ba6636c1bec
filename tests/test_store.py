from __future__ import annotations

from pathlib import Path

import pytest

from airlock.scan import scan_path
from airlock.store import Store, StoreError
from helpers import clean_model


def test_save_load_history_and_hash_lookup(tmp_path: Path) -> None:
    r1 = scan_path(clean_model(tmp_path / "a"))
    r2 = scan_path(clean_model(tmp_path / "b"))
    with Store(tmp_path / "db.sqlite") as s:
        id1, id2 = s.save_scan(r1), s.save_scan(r2)
        assert [r.id for r in s.runs()][:2] in ([id2, id1], [id1, id2])
        loaded = s.load_scan(id1)
        assert loaded.files == r1.files and loaded.run_id == id1
        sha = next(f.sha256 for f in r1.files if f.path == "config.json")
        assert {run for run, _, _ in s.seen_hash(sha)} == {id1, id2}
        mode = s.conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        with pytest.raises(KeyError):
            s.load_scan("zzzz")


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        Store(blocker / "sub" / "db.sqlite")

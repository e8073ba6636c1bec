"""The audit log: records as stored, the hash chain, and every kind of tampering it must
show (done with raw SQL, as someone with database access would), on SQLite and on a real
PostgreSQL server when one answers."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import uuid
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.gate.audit import (
    AuditError,
    AuditLog,
    AuditRecord,
    Head,
    stored_content,
)
from airlock.gate.audit_record import FIELDS, GENESIS, iso_utc, row_hash, stored_values


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "audit.db")
    return str(request.getfixturevalue("pg_url"))


def record(i: int, **over: Any) -> AuditRecord:
    """A record with every field set, so any column edit changes something."""
    rec = AuditRecord(
        request_id=f"req-{i}",
        time=f"2025-01-{1 + i % 28:02d}T10:00:00.{i % 1000:03d}Z",
        key_id=f"key-{i % 3}",
        client=f"10.0.0.{i % 250}",
        path="/v1/chat/completions",
        model="qwen",
        upstream="http://vllm:8000/v1",
        status=403 if i % 4 == 3 else 200,
        decision="blocked" if i % 4 == 3 else "allowed",
        latency_ms=12.5 + i,
        prompt_tokens=10 + i,
        completion_tokens=20 + i,
        stream=bool(i % 2),
        verdicts=[{"scanner": "secrets", "stage": "input", "action": "pass", "hits": 0}],
        blocked_by="secrets",
        error="upstream said no",
    )
    rec.set_content("full", prompt=f"prompt {i} 你好", response=f"answer {i}")
    for k, v in over.items():
        setattr(rec, k, v)
    return rec


def filled(where: str, n: int = 10) -> AuditLog:
    log = AuditLog(where)
    log.append([record(i) for i in range(1, n + 1)])
    return log


def raw(where: str, *statements: str, params: tuple[Any, ...] = ()) -> None:
    """Run SQL behind the log's back, as someone with access to the database would."""
    if where.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(where, autocommit=True) as conn:
            for s in statements:
                conn.execute(s.replace("?", "%s"), params if "?" in s else ())
        return
    conn = sqlite3.connect(where, isolation_level=None)
    try:
        for s in statements:
            conn.execute(s, params if "?" in s else ())
    finally:
        conn.close()


def rechain(log: AuditLog) -> None:
    """Recompute every hash and the head, as an attacker who knows the algorithm would."""
    entries = list(log.entries())
    prev = GENESIS
    for e in entries:
        digest = row_hash(e.seq, prev, stored_values(e.record))
        raw(
            log.where,
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
            params=(prev, digest, e.seq),
        )
        prev = digest
    raw(log.where, "UPDATE audit_head SET seq = ?, hash = ?", params=(entries[-1].seq, prev))


# --- the chain, intact -------------------------------------------------------------------


def test_appended_rows_chain_and_verify(db: str) -> None:
    with filled(db, 10) as log:
        res = log.verify()
        assert res.ok and res.rows == 10 and res.problem_count == 0
        assert res.head == log.head() and res.head.seq == 10
        first, *_ = log.entries()
        assert first.prev_hash == GENESIS
        assert first.hash == row_hash(1, GENESIS, stored_values(record(1)))
        head = log.append([record(11)])
        assert head == log.head() and head.seq == 11
        assert log.verify(expect_head=res.head).ok  # the log grew after the anchor: fine
        assert log.verify(expect_head=head).ok


def test_rows_read_back_as_written(db: str) -> None:
    with filled(db, 3) as log:
        got = [e.record for e in log.entries()]
    assert got == [record(i) for i in range(1, 4)]


def test_empty_log_is_intact_with_genesis_head(db: str) -> None:
    with AuditLog(db) as log:
        assert log.head() == Head(0, GENESIS)
        assert log.verify().ok and log.verify().rows == 0
        assert log.verify(expect_head=Head(0, GENESIS)).ok
        assert not log.verify(expect_head=Head(1, "a" * 64)).ok


def test_reading_a_log_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit log"):
        AuditLog(tmp_path / "nothing.db", create=False)
    (tmp_path / "results.db").touch()  # a database without audit tables
    with pytest.raises(AuditError, match="no audit log"):
        AuditLog(tmp_path / "results.db", create=False)
    assert not (tmp_path / "nothing.db").exists()


def test_unreachable_postgresql_is_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(AuditError, match=r"cannot open the audit log postgresql://u:\*\*\*@"):
        AuditLog("postgresql://u:secret@127.0.0.1:1/x")


def test_shares_a_file_with_the_results_database(tmp_path: Path) -> None:
    from airlock.store import Store

    where = tmp_path / "airlock.db"
    with Store(where) as store, AuditLog(where) as log:
        log.append([record(1)])
        assert store.runs() == []
        assert log.verify().ok


def test_default_location_is_the_results_database() -> None:
    from airlock.store import default_db_path

    with AuditLog() as log:
        assert log.where == default_db_path()


# --- tampering ---------------------------------------------------------------------------

EDITS = {
    "time": "'2020-01-01T00:00:00.000Z'",
    "request_id": "'forged'",
    "key_id": "'key-9'",
    "client": "'6.6.6.6'",
    "path": "'/v1/embeddings'",
    "model": "'llama'",
    "upstream": "'http://evil/v1'",
    "status": "200",
    "decision": "'allowed'",
    "latency_ms": "1.25",
    "prompt_tokens": "1",
    "completion_tokens": "1",
    "stream": "0",
    "verdicts": "'[]'",
    "blocked_by": "NULL",
    "error": "NULL",
    "content_policy": "'hash'",
    "prompt": "'harmless'",
    "response": "'harmless'",
}


def test_every_column_is_covered_by_the_hash() -> None:
    assert set(EDITS) == set(FIELDS)


@pytest.mark.parametrize("column", sorted(EDITS))
def test_editing_any_field_is_detected_at_that_row(tmp_path: Path, column: str) -> None:
    where = str(tmp_path / "audit.db")
    with filled(where, 6) as log:
        raw(where, f"UPDATE audit_log SET {column} = {EDITS[column]} WHERE seq = 3")
        res = log.verify()
    assert not res.ok
    assert res.problem_count == 1
    assert res.first is not None and res.first.seq == 3 and res.first.kind == "edited"


def test_edit_detected_on_postgresql_too(db: str) -> None:
    with filled(db, 6) as log:
        raw(db, "UPDATE audit_log SET prompt = 'nothing to see' WHERE seq = 4")
        res = log.verify()
    assert (res.problem_count, res.first and res.first.seq) == (1, 4)


def test_edit_with_recomputed_row_hash_breaks_the_next_link(db: str) -> None:
    with filled(db, 6) as log:
        e = next(islice(log.entries(after_seq=2), 1))
        forged = stored_values(record(3, decision="allowed", status=200))
        raw(
            db,
            "UPDATE audit_log SET decision = 'allowed', status = 200, hash = ? WHERE seq = 3",
            params=(row_hash(3, e.prev_hash, forged),),
        )
        res = log.verify()
    assert res.first is not None and (res.first.seq, res.first.kind) == (4, "broken-link")


def test_deleting_a_middle_row_is_detected(db: str) -> None:
    with filled(db, 10) as log:
        raw(db, "DELETE FROM audit_log WHERE seq = 5")
        res = log.verify()
    assert not res.ok and res.first is not None
    assert (res.first.seq, res.first.kind) == (6, "missing")
    assert "row 5" in res.first.message
    assert res.problem_count == 1


def test_deleting_several_rows_names_the_range(db: str) -> None:
    with filled(db, 10) as log:
        raw(db, "DELETE FROM audit_log WHERE seq BETWEEN 3 AND 6")
        res = log.verify()
    assert res.first is not None and "rows 3-6" in res.first.message


def test_swapping_two_rows_seq_is_detected(db: str) -> None:
    with filled(db, 10) as log:
        raw(
            db,
            "UPDATE audit_log SET seq = -1 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 7",
            "UPDATE audit_log SET seq = 7 WHERE seq = -1",
        )
        res = log.verify()
    assert not res.ok and res.first is not None and res.first.seq == 3
    assert {p.seq for p in res.problems} >= {3, 4, 7, 8}


def test_inserted_forged_rows_are_detected(db: str) -> None:
    with filled(db, 10) as log:
        e = list(log.entries())
        cols = ", ".join(FIELDS)
        marks = ", ".join("?" * (len(FIELDS) + 3))
        forged = stored_values(record(99, decision="allowed"))
        # a careless forgery at the end: any hash will do
        raw(
            db,
            f"INSERT INTO audit_log (seq, prev_hash, hash, {cols}) VALUES ({marks})",
            params=(11, e[-1].hash, "f" * 64, *forged),
        )
        res = log.verify()
        assert res.first is not None and (res.first.seq, res.first.kind) == (11, "edited")
        # a careful one in the middle: renumber the rows above, hash the forged row properly
        raw(db, "DELETE FROM audit_log WHERE seq = 11")
        for seq in range(10, 4, -1):
            raw(db, "UPDATE audit_log SET seq = ? WHERE seq = ?", params=(seq + 1, seq))
        digest = row_hash(5, e[3].hash, forged)
        raw(
            db,
            f"INSERT INTO audit_log (seq, prev_hash, hash, {cols}) VALUES ({marks})",
            params=(5, e[3].hash, digest, *forged),
        )
        res = log.verify()
    assert res.first is not None and res.first.seq == 6  # the renumbered row fails its hash
    assert {p.kind for p in res.problems} >= {"edited", "broken-link"}


def test_row_with_seq_below_one_is_detected(db: str) -> None:
    with filled(db, 3) as log:
        cols = ", ".join(FIELDS)
        raw(
            db,
            f"INSERT INTO audit_log (seq, prev_hash, hash, {cols}) "
            f"VALUES ({', '.join('?' * (len(FIELDS) + 3))})",
            params=(0, GENESIS, "0" * 64, *stored_values(record(0))),
        )
        res = log.verify()
    assert res.first is not None and res.first.seq == 0


def test_truncating_the_tail_is_caught_by_the_head_table(db: str) -> None:
    with filled(db, 10) as log:
        raw(db, "DELETE FROM audit_log WHERE seq > 7")
        res = log.verify()
    assert not res.ok and res.first is not None
    assert res.first.kind == "truncated" and "seq 10" in res.first.message


def test_truncating_tail_and_head_table_needs_the_expected_head(db: str) -> None:
    with filled(db, 10) as log:
        anchor = log.head()
        kept = list(log.entries())[6]
        raw(
            db,
            "DELETE FROM audit_log WHERE seq > 7",
            "UPDATE audit_head SET seq = ?, hash = ?",
            params=(7, kept.hash),
        )
        assert log.verify().ok  # the chain alone cannot tell: documented
        res = log.verify(expect_head=anchor)
    assert not res.ok and res.first is not None
    assert res.first.kind == "truncated" and "seq 10" in res.first.message


def test_a_rebuilt_chain_is_caught_only_by_the_expected_head(db: str) -> None:
    with filled(db, 10) as log:
        anchor = log.head()
        raw(db, "UPDATE audit_log SET decision = 'allowed' WHERE seq = 3")
        rechain(log)
        assert log.verify().ok  # no secret in the chain: a full rewrite is consistent
        res = log.verify(expect_head=anchor)
    assert res.first is not None and (res.first.seq, res.first.kind) == (10, "head-mismatch")


def test_rows_appended_behind_the_head_table_are_detected(db: str) -> None:
    with filled(db, 5) as log:
        head = log.head()
        forged = stored_values(record(6))
        cols = ", ".join(FIELDS)
        raw(
            db,
            f"INSERT INTO audit_log (seq, prev_hash, hash, {cols}) "
            f"VALUES ({', '.join('?' * (len(FIELDS) + 3))})",
            params=(6, head.hash, row_hash(6, head.hash, forged), *forged),
        )
        res = log.verify()
    assert res.first is not None and (res.first.seq, res.first.kind) == (6, "head-mismatch")


def test_missing_head_table_or_row_is_a_problem(db: str) -> None:
    with filled(db, 3) as log:
        raw(db, "DELETE FROM audit_head")
        assert log.verify().first is not None
        raw(db, "DROP TABLE audit_head")
        res = log.verify()
    assert not res.ok and res.first is not None and "audit_head" in res.first.message


def test_expected_head_with_another_hash_is_a_mismatch(db: str) -> None:
    with filled(db, 4) as log:
        res = log.verify(expect_head=Head(2, "a" * 64))
    assert res.first is not None and (res.first.seq, res.first.kind) == (2, "head-mismatch")


def test_problem_count_goes_on_past_the_listed_problems(tmp_path: Path) -> None:
    where = str(tmp_path / "audit.db")
    with filled(where, 150) as log:
        raw(where, "UPDATE audit_log SET model = 'x'")
        res = log.verify(batch=7)  # small batches: the walk crosses pages
    assert res.problem_count == 150 and len(res.problems) == 100
    assert [p.seq for p in res.problems[:3]] == [1, 2, 3]
    assert json.loads(json.dumps(res.to_dict()))["problem_count"] == 150


# --- what is stored ----------------------------------------------------------------------


def test_content_policies() -> None:
    text = "my card is 4111 1111 1111 1111"
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert stored_content("full", text) == text
    assert stored_content("redacted", text, "my card is [CARD_1]") == "my card is [CARD_1]"
    assert stored_content("redacted", text) == text  # nothing was redacted
    assert stored_content("hash", text, "ignored") == digest
    assert stored_content("hash", None) is None
    with pytest.raises(ValueError, match="content policy"):
        stored_content("all", text)


def test_hash_policy_holds_even_when_text_was_set_directly(tmp_path: Path) -> None:
    rec = record(1, content_policy="hash", prompt="hunter2 prompt", response="hunter2 answer")
    with AuditLog(tmp_path / "a.db") as log:
        log.append([rec])
        (e,) = log.entries()
    assert e.record.prompt == "sha256:" + hashlib.sha256(b"hunter2 prompt").hexdigest()
    assert "hunter2" not in json.dumps(e.to_dict())


def test_unknown_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="decision"):
        stored_values(record(1, decision="maybe"))


def test_awkward_values_are_stored_and_chain_holds(db: str) -> None:
    rec = record(
        1,
        model="a\x00b",
        prompt="lone \ud800 surrogate",
        error="e" * 10_000,
        prompt_tokens=2**70,
        completion_tokens=-5,
        latency_ms=float("nan"),
        status=12345,
        verdicts=[{"kinds": ("x", "y"), "obj": object.__name__}],
    )
    with AuditLog(db) as log:
        log.append([rec])
        (e,) = log.entries()
        assert log.verify().ok
    r = e.record
    assert r.model == "a\ufffdb" and r.prompt == "lone ? surrogate"
    assert r.error is not None and len(r.error) == 4001
    assert (r.prompt_tokens, r.completion_tokens, r.latency_ms, r.status) == (None, None, 0.0, 0)
    assert r.verdicts == [{"kinds": ["x", "y"], "obj": "object"}]


@pytest.mark.parametrize("ms", [-0.0, 1e-7, 0.1, 0.0005, 2.675, 123456.789, 1e15, 1e300])
def test_float_latencies_survive_the_database(db: str, ms: float) -> None:
    with AuditLog(db) as log:
        log.append([record(1, latency_ms=ms)])
        assert log.verify().ok


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=4),
    tokens=st.one_of(st.none(), st.integers()),
    latency=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_text_or_number_keeps_the_chain_valid(
    tmp_path: Path, texts: list[str], tokens: int | None, latency: float
) -> None:
    recs = [
        record(i, model=t, prompt_tokens=tokens, latency_ms=latency, key_id=t)
        for i, t in enumerate(texts)
    ]
    with AuditLog(tmp_path / f"fuzz-{uuid.uuid4().hex}.db") as log:  # one log per example
        log.append(recs)
        assert log.verify().ok
        stored = [e.record for e in log.entries()]
    # read back as stored: the same text, but for NUL and lone surrogates (made storable)
    assert [r.model for r in stored] == [stored_values(r)[FIELDS.index("model")] for r in recs]
    assert all(r.model == t for r, t in zip(stored, texts, strict=True) if t.isprintable())


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_head_parse_accepts_only_seq_colon_hash(text: str) -> None:
    try:
        head = Head.parse(text)
    except ValueError as e:
        assert "SEQ:HASH" in str(e) or "hexadecimal" in str(e)
    else:
        assert Head.parse(str(head)) == head


def test_head_parse() -> None:
    h = Head(12, "ab" * 32)
    assert Head.parse(f" 12:{'AB' * 32} ") == h and str(h) == f"12:{'ab' * 32}"
    for bad in ("", "12", "x:" + "a" * 64, "12:" + "a" * 63, "12:" + "g" * 64, "-1:" + "a" * 64):
        with pytest.raises(ValueError):
            Head.parse(bad)


def test_iso_utc() -> None:
    assert iso_utc("2025-01-31") == "2025-01-31T00:00:00.000Z"
    assert iso_utc("2025-01-31T12:00:00+08:00") == "2025-01-31T04:00:00.000Z"
    assert iso_utc("2025-01-31T12:00:00.5Z") == "2025-01-31T12:00:00.500Z"
    with pytest.raises(ValueError, match="ISO 8601"):
        iso_utc("yesterday")


def test_default_time_is_utc_iso_with_milliseconds() -> None:
    t = AuditRecord().time
    assert len(t) == 24 and t.endswith("Z") and t[10] == "T" and t[19] == "."
    assert iso_utc(t) == t


# --- reading -----------------------------------------------------------------------------


def test_tail_and_entries(db: str) -> None:
    with filled(db, 12) as log:
        assert [e.seq for e in log.tail(3)] == [10, 11, 12]
        assert log.tail(0) == []
        assert [e.seq for e in log.entries(after_seq=4, batch=5)] == list(range(5, 13))
        assert log.count() == 12


def test_follow_yields_new_rows_as_they_come(tmp_path: Path) -> None:
    where = str(tmp_path / "a.db")
    with filled(where, 2) as log, AuditLog(where) as other:
        polls = 0

        def stop() -> bool:
            nonlocal polls
            polls += 1
            if polls == 2:
                other.append([record(3), record(4)])
            return polls > 3

        got = [e.seq for e in log.follow(after_seq=1, poll_s=0.01, stop=stop)]
    assert got == [2, 3, 4]


def test_export_jsonl_and_csv_with_time_window(db: str) -> None:
    import csv

    with filled(db, 10) as log:
        out = io.StringIO()
        assert log.export(out, "jsonl") == 10
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [r["seq"] for r in rows] == list(range(1, 11))
        assert rows[0]["verdicts"][0]["scanner"] == "secrets" and rows[0]["prompt"].endswith("你好")

        out = io.StringIO()
        n = log.export(out, "csv", since="2025-01-03", until="2025-01-06T00:00:00Z")
        table = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert n == 3 and [r["seq"] for r in table] == ["2", "3", "4"]  # days 3-5
        assert list(table[0]) == ["seq", *FIELDS, "prev_hash", "hash"]
        assert json.loads(table[0]["verdicts"])[0]["action"] == "pass"
        with pytest.raises(ValueError, match="format"):
            log.export(out, "xml")
        with pytest.raises(ValueError, match="ISO 8601"):
            log.export(out, "csv", since="soon")


def test_hash_follows_the_documented_recipe(tmp_path: Path) -> None:
    """sha256(prev_hash || canonical JSON of {seq, *fields as stored}), computed here
    without the library, as an outside auditor would."""
    where = str(tmp_path / "a.db")
    with filled(where, 2):
        pass
    conn = sqlite3.connect(where)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM audit_log ORDER BY seq").fetchall()
    conn.close()
    prev = "0" * 64
    for row in rows:
        skip = ("prev_hash", "hash")  # sqlite3.Row iterates values: keys() is needed
        payload = {k: row[k] for k in row.keys() if k not in skip}  # noqa: SIM118
        canon = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert row["prev_hash"] == prev
        assert row["hash"] == hashlib.sha256((prev + canon).encode()).hexdigest()
        prev = row["hash"]

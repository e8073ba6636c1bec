"""Pickle walker internals that findings depend on: strings read back, the memo's two forms.

The walker keeps a string as its offset in the stream and reads it back only when a
STACK_GLOBAL needs it, so a name memoized megabytes before its use (behind refills and
seek-skipped payloads) must still be recovered exactly. The memo is a list while keys
come in order and a dict after the first out-of-order key; both must keep strings.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, Limits, ScanContext
from airlock.scan.engine import scan_file
from airlock.scan.pickle_ops import string_payload
from airlock.scan.pickles import scan_pickle_stream

PROTO4 = b"\x80\x04"
MEMOIZE = b"\x94"
STACK_GLOBAL = b"\x93"


def sstr(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def ustr(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def binget(key: int) -> bytes:
    return b"h" + bytes([key]) if key < 256 else b"j" + struct.pack("<I", key)


def call_with(arg: str) -> bytes:
    return sstr(arg) + b"\x85R"  # TUPLE1 REDUCE


def globals_of(found: list[Finding], rule_id: str) -> dict[str, bool]:
    return {f.extra["global"]: f.extra["called"] for f in found if f.rule_id == rule_id}


def scan_bytes(data: bytes, start: int = 0) -> list[Finding]:
    f = FileInput.from_bytes("x.pkl", data)
    fh = io.BytesIO(data)
    fh.seek(start)
    return list(scan_pickle_stream(fh, f, ScanContext()))


def with_filler(filler: bytes, module: str, name: str) -> bytes:
    """Memoize module and name, run ``filler``, then import them through BINGET."""
    head = PROTO4 + sstr(module) + MEMOIZE + sstr(name) + MEMOIZE
    use = binget(0) + binget(1) + STACK_GLOBAL + call_with("id") + b"."
    return head + filler + use


FILLERS = {
    # ~3 MiB of opcodes: the buffer is refilled several times before the names are used
    "refills": b"(" + (sstr("x" * 20) + b"0") * 130_000 + b"1",
    # a 3 MiB bytes constant: skipped with seek, the names' chunk is long gone
    "seek": b"B" + struct.pack("<I", 3 << 20) + bytes(3 << 20) + b"0",
}


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_memoized_names_are_read_back_exactly(filler: bytes) -> None:
    found = scan_bytes(with_filler(filler, "os", "system"))
    assert globals_of(found, "pickle.dangerous-global") == {"os.system": True}
    assert {f.rule_id for f in found} == {"pickle.dangerous-global"}


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_read_back_names_are_judged_by_their_text(filler: bytes) -> None:
    """Near miss: the same layout with a safe and an unknown name."""
    assert scan_bytes(with_filler(filler, "collections", "OrderedDict")) == []
    found = scan_bytes(with_filler(filler, "mylib.models", "Helper"))
    assert globals_of(found, "pickle.unknown-global") == {"mylib.models.Helper": True}


def test_walk_continues_in_place_after_reading_a_name_back() -> None:
    """Reading a name back seeks the handle; the next refill must resume where it was."""
    use = binget(0) + binget(1) + STACK_GLOBAL + call_with("id") + b"0"
    data = with_filler(FILLERS["seek"], "os", "system")[:-1] + b"0" + FILLERS["refills"]
    data += use + b"c" + b"builtins\nexec\n" + call_with("1") + b"."
    found = scan_bytes(data)
    assert globals_of(found, "pickle.dangerous-global") == {
        "os.system": True,
        "builtins.exec": True,
    }
    hit = [f for f in found if f.extra.get("global") == "os.system"]
    assert hit[0].extra["count"] == 2
    assert {f.rule_id for f in found} == {"pickle.dangerous-global"}


def test_read_back_from_a_file_on_disk(tmp_path: Path) -> None:
    p = tmp_path / "model.pkl"
    p.write_bytes(with_filler(FILLERS["seek"], "subprocess", "Popen"))
    found = list(scan_file(FileInput.from_path(p, "model.pkl"), ScanContext()))
    assert globals_of(found, "pickle.dangerous-global") == {"subprocess.Popen": True}


def test_stream_starting_mid_file_reads_names_at_their_offsets() -> None:
    """npy hands over a handle positioned after its header: offsets are absolute."""
    junk = b"\x93NUMPY" + b"\x8c\x02xx" * 1000  # string-like bytes before the pickle
    data = junk + with_filler(FILLERS["seek"], "os", "system")
    found = scan_bytes(data, start=len(junk))
    assert globals_of(found, "pickle.dangerous-global") == {"os.system": True}


def test_long_binunicode_names_and_direct_operands() -> None:
    data = PROTO4 + ustr("builtins") + ustr("eval") + STACK_GLOBAL + call_with("1+1") + b"."
    assert globals_of(scan_bytes(data), "pickle.dangerous-global") == {"builtins.eval": True}


def test_strings_survive_the_switch_to_a_sparse_memo() -> None:
    """BINPUT 0, then LONG_BINPUT 70000 (out of order): both strings stay readable."""
    data = (
        PROTO4
        + sstr("os")
        + b"q\x00"
        + sstr("system")
        + b"r"
        + struct.pack("<I", 70_000)
        + b"0" * 2
        + binget(0)
        + binget(70_000)
        + STACK_GLOBAL
        + call_with("id")
        + b"."
    )
    found = scan_bytes(data)
    assert globals_of(found, "pickle.dangerous-global") == {"os.system": True}
    assert "pickle.missing-memo" not in {f.rule_id for f in found}


def test_memo_overwrite_replaces_a_string() -> None:
    """BINPUT over a used key: the later value wins, as in the unpickler."""
    data = (
        PROTO4
        + sstr("collections")
        + b"q\x00"
        + sstr("os")
        + b"q\x00"  # overwrite key 0
        + b"00"
        + binget(0)
        + sstr("system")
        + STACK_GLOBAL
        + call_with("id")
        + b"."
    )
    assert globals_of(scan_bytes(data), "pickle.dangerous-global") == {"os.system": True}


def test_get_of_a_key_never_stored_is_missing_memo() -> None:
    data = PROTO4 + sstr("os") + MEMOIZE + b"0" + binget(5) + b"0."
    assert {f.rule_id for f in scan_bytes(data)} == {"pickle.missing-memo"}


def test_string_payload_parses_both_forms_and_rejects_cut_ones() -> None:
    assert string_payload(sstr("abc") + b"tail") == b"abc"
    assert string_payload(ustr("abcdef")) == b"abcdef"
    assert string_payload(sstr("abc")[:-1]) is None
    assert string_payload(b"X\x05\x00") is None
    assert string_payload(b"K\x01") is None
    assert string_payload(b"") is None


# each pushes one value and may memoize it; BINPUT 9 / LONG_BINPUT 300 make the memo sparse
FILLER_ITEMS = [sstr("ab") + MEMOIZE, ustr("cd"), b"N", b"K\x07", b"N0", sstr("e") + b"q\x09"]
FILLER_ITEMS += [b")" + MEMOIZE, ustr("f") + b"r" + struct.pack("<I", 300), b"\x88\x85" + MEMOIZE]


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(FILLER_ITEMS), max_size=60),
    st.sampled_from(["os", "collections"]),
)
def test_names_memoized_before_any_filler_resolve(filler: list[bytes], module: str) -> None:
    """Whatever balanced ops sit between memoizing and using the names, they resolve."""
    body = b"(" + b"".join(filler) + b"1"  # POP_MARK drops whatever the filler pushed
    found = scan_bytes(with_filler(body, module, "system"))
    verdicts = {f.extra["global"]: f.rule_id for f in found if "global" in f.extra}
    expected = "pickle.dangerous-global" if module == "os" else "pickle.unknown-global"
    assert verdicts == {f"{module}.system": expected}


# runs of one push opcode are skipped by a regex: bounded memory, exact opcode counts -------
PUSH_ARGS = {b"N": b"", b"K": b"\x07", b"M": b"\x07\x00", b"J": b"\x07\x00\x00\x00",
             b"G": struct.pack(">d", 1.5), b"\x88": b"", b")": b""}  # fmt: skip


@pytest.mark.parametrize("op", sorted(PUSH_ARGS))
def test_long_push_run_is_walked_in_bounded_memory(op: bytes) -> None:
    # a backtracking (?:J.{4})+ kept ~140 bytes of regex state per repetition (146 MB for
    # 1 MiB of NONE); the walker's own stack costs 8 bytes per pushed item
    item = op + PUSH_ARGS[op]
    n = (1 << 20) // len(item) if len(item) == 1 else (4 << 20) // len(item)
    data = PROTO4 + b"]" + b"(" + item * n + b"e" + sstr("posix") + sstr("system") + STACK_GLOBAL
    data += call_with("id") + b"."
    tracemalloc.start()
    try:
        found = scan_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert globals_of(found, "pickle.dangerous-global") == {"posix.system": True}
    assert "pickle.malformed" not in {f.rule_id for f in found}
    assert peak < 48 << 20, f"peak {peak >> 20} MB"


@pytest.mark.parametrize("op", sorted(PUSH_ARGS))
@pytest.mark.parametrize("n", [1, 2, 3, 4, 4095, 4096, 4097, 300_001])
def test_push_runs_count_every_opcode(op: bytes, n: int) -> None:
    item = op + PUSH_ARGS[op]
    data = PROTO4 + item * n + b"."
    total = n + 2  # PROTO, the run, STOP
    over = ScanContext(limits=Limits(max_pickle_opcodes=total - 1))
    exact = ScanContext(limits=Limits(max_pickle_opcodes=total))
    f = FileInput.from_bytes("x.pkl", data)
    assert "pickle.unscannable" in {x.rule_id for x in scan_file(f, over)}
    assert list(scan_file(f, exact)) == []


def test_push_run_cut_by_the_end_of_the_file_is_truncated() -> None:
    data = PROTO4 + b"J\x01\x00\x00\x00" * 1000 + b"J\x01\x00"
    assert "pickle.malformed" in {f.rule_id for f in scan_bytes(data)}

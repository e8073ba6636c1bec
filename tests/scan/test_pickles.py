"""Pickle scanner: opcode walking, import resolution, malformed and nested streams."""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.policy import policy_from_dict
from airlock.scan.base import FileInput, Limits, ScanContext
from airlock.scan.engine import choose_format, scan_file
from airlock.scan.pickles import looks_like_pickle, scan_pickle_stream

PROTOS = range(pickle.HIGHEST_PROTOCOL + 1)


def scan(data: bytes, name: str = "model.pkl", ctx: ScanContext | None = None) -> list[Finding]:
    return list(scan_file(FileInput.from_bytes(name, data), ctx or ScanContext()))


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def globals_of(findings: list[Finding], rule_id: str) -> set[str]:
    return {f.extra["global"] for f in findings if f.rule_id == rule_id}


# opcode builders (protocol 2+ header, short strings) ------------------------------------
def proto(n: int = 4) -> bytes:
    return b"\x80" + bytes([n])


def sstr(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def glob(mod: str, name: str) -> bytes:
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def call_with_str(arg: str) -> bytes:
    """Stack holds a callable: call it with (arg,)."""
    return sstr(arg) + b"\x85R"  # TUPLE1 REDUCE


class Touch:
    """Unpickling this would create a sentinel file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


# clean pickles -------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOS)
def test_stdlib_pickles_of_plain_data_are_clean(protocol: int) -> None:
    objs = [
        {"a": [1, 2.5, None, True, "x" * 300, b"bytes", (1, 2)], "n": 2**70, "f": -1.5},
        collections.OrderedDict(layer=[1.0] * 10, bias={"k": frozenset({1})}),
        [(i, str(i)) for i in range(3000)],  # batched APPENDS, memo keys > 255
        {1, 2, 3},
        bytearray(b"abc"),
    ]
    for obj in objs:
        assert scan(pickle.dumps(obj, protocol=protocol)) == [], obj


def test_torch_like_state_dict_is_clean() -> None:
    # OrderedDict of tensors built the way torch.save's data.pkl is: persistent storages
    storage = (
        b"("
        + sstr("storage")
        + glob("torch", "FloatStorage")
        + sstr("0")
        + sstr("cpu")
        + b"K\x04tQ"  # TUPLE, BINPERSID
    )
    tensor = (
        glob("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + storage
        + b"K\x00K\x02K\x02\x86"
        + b"K\x02K\x01\x86\x89"
        + glob("collections", "OrderedDict")
        + b")R"
        + b"tR"
    )
    data = proto(2) + glob("collections", "OrderedDict") + b")R" + b"(" + sstr("w") + tensor
    data += b"u."  # SETITEMS STOP
    assert scan(data, "pytorch_model.bin") == []


# dangerous imports ---------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOS)
def test_reduce_to_os_system_is_critical_and_never_executed(protocol: int, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    findings = scan(pickle.dumps(Touch(sentinel), protocol=protocol))
    hits = [f for f in findings if f.rule_id == "pickle.dangerous-global"]
    assert hits and hits[0].severity.name == "CRITICAL"
    assert hits[0].extra["global"] in {"posix.system", "nt.system", "os.system"}
    assert hits[0].extra["called"] is True
    assert hits[0].location and hits[0].location.startswith("opcode ")
    assert not sentinel.exists()


def test_global_opcode_os_system() -> None:
    data = glob("os", "system") + b"(" + b"S'ls'\n" + b"tR."
    f = [x for x in scan(data) if x.rule_id == "pickle.dangerous-global"]
    assert f[0].evidence == "os.system"
    assert f[0].extra["opcode"] == "GLOBAL"


@pytest.mark.parametrize(
    ("mod", "name"),
    [
        ("builtins", "eval"),
        ("__builtin__", "exec"),  # Python 2 name mapped to builtins
        ("os.path", "join"),  # submodule of a denied module
        ("subprocess", "Popen"),
        ("torch.jit", "load"),
        ("torch.storage", "_load_from_bytes"),
        ("posixpath", "os.system"),  # dotted name walks to os.system
        ("collections", "OrderedDict.__init__.__globals__"),
        ("numpy.testing._private.utils", "runstring"),
    ],
)
def test_denied_callables(mod: str, name: str) -> None:
    data = proto(4) + sstr(mod) + sstr(name) + b"\x93" + call_with_str("x") + b"."
    assert "pickle.dangerous-global" in rules(scan(data))


def test_near_miss_names_are_not_denied() -> None:
    # "osx" is not "os", "torch.jitter" is not "torch.jit": unknown, not dangerous
    for mod in ("osx", "torch.jitter", "systems"):
        data = proto(4) + sstr(mod) + sstr("f") + b"\x93."
        found = rules(scan(data))
        assert found == {"pickle.unknown-global"}, mod


def test_suspicious_and_unknown() -> None:
    data = proto(4) + sstr("functools") + sstr("partial") + b"\x93" + b"0"
    data += sstr("mylib.layers") + sstr("Block") + b"\x93" + b"0" + b"N."
    found = scan(data)
    assert globals_of(found, "pickle.suspicious-global") == {"functools.partial"}
    assert globals_of(found, "pickle.unknown-global") == {"mylib.layers.Block"}


def test_policy_allow_silences_unknown_but_not_dangerous() -> None:
    ctx = ScanContext(policy=policy_from_dict({"pickle": {"allow": ["mylib.*", "os.system"]}}))
    data = proto(4) + sstr("mylib.layers") + sstr("Block") + b"\x93" + b"0"
    data += sstr("os") + sstr("system") + b"\x93" + b"0N."
    found = scan(data, ctx=ctx)
    assert rules(found) == {"pickle.dangerous-global"}


def test_inst_and_obj() -> None:
    inst = b"(S'ls'\nios\nsystem\n."
    assert globals_of(scan(inst), "pickle.dangerous-global") == {"os.system"}
    obj = b"(" + glob("subprocess", "Popen") + b"S'ls'\no."
    hit = [f for f in scan(obj) if f.rule_id == "pickle.dangerous-global"]
    assert hit[0].extra["global"] == "subprocess.Popen" and hit[0].extra["called"]


# memo tricks ---------------------------------------------------------------------------
def test_stack_global_through_memoize_and_binget() -> None:
    # strings stored with MEMOIZE / BINPUT, popped, fetched back with BINGET / LONG_BINGET
    data = proto(4) + sstr("os") + b"\x94" + b"0" + sstr("system") + b"q\x07" + b"0"
    data += b"h\x00" + b"j\x07\x00\x00\x00" + b"\x93" + call_with_str("id") + b"."
    assert globals_of(scan(data), "pickle.dangerous-global") == {"os.system"}


def test_memo_overwrite_is_followed() -> None:
    # key 0 first holds "collections", then is overwritten with "os"
    data = proto(4) + sstr("collections") + b"q\x00" + b"0" + sstr("os") + b"q\x00" + b"0"
    data += b"h\x00" + sstr("system") + b"\x93" + b"0N."
    assert globals_of(scan(data), "pickle.dangerous-global") == {"os.system"}


def test_text_put_get_protocol0() -> None:
    data = b"Vos\np5\n0Vsystem\np6\n0g5\ng6\n\x93N."
    assert globals_of(scan(data), "pickle.dangerous-global") == {"os.system"}


def test_non_string_module_is_unresolved() -> None:
    # module operand is the result of a call, not a string constant
    data = proto(4) + sstr("builtins") + sstr("str") + b"\x93" + sstr("os") + b"\x85R"
    data += sstr("system") + b"\x93" + b"0N."
    found = scan(data)
    unresolved = [f for f in found if f.rule_id == "pickle.unresolved-global"]
    assert unresolved and unresolved[0].severity.name == "HIGH"
    assert "system" in (unresolved[0].evidence or "")


def test_missing_memo_key_does_not_hide_global() -> None:
    data = proto(4) + b"h\x09" + sstr("system") + b"\x93" + b"0N."
    found = rules(scan(data))
    assert {"pickle.missing-memo", "pickle.unresolved-global"} <= found


def test_memoized_global_reused_many_times_is_one_finding() -> None:
    body = proto(4) + sstr("mylib") + sstr("Thing") + b"\x93\x94"
    body += (b"h\x02)R0") * 5000 + b"N."
    found = [f for f in scan(body) if f.rule_id == "pickle.unknown-global"]
    assert len(found) == 1
    unique = proto(4) + (sstr("mylib") + sstr("Thing") + b"\x93)R0") * 5000 + b"N."
    found = [f for f in scan(unique) if f.rule_id == "pickle.unknown-global"]
    assert len(found) == 1 and found[0].extra["count"] == 5000


# broken, trailing and multiple pickles --------------------------------------------------
def test_nullifai_style_break_after_payload() -> None:
    data = proto(2) + glob("os", "system") + sstr("id") + b"\x85R" + b"\xff\xfe garbage"
    found = rules(scan(data))
    assert {"pickle.dangerous-global", "pickle.malformed"} <= found


@pytest.mark.parametrize("cut", [1, 3, 10, 25])
def test_truncated_files_are_malformed(cut: int) -> None:
    data = pickle.dumps({"key": "value" * 20, "n": [1, 2, 3]}, protocol=4)
    found = scan(data[:-cut])
    assert "pickle.malformed" in rules(found)


def test_huge_declared_length_is_truncation_not_allocation() -> None:
    data = proto(4) + b"\x8e" + struct.pack("<Q", 2**62) + b"abc"
    assert "pickle.malformed" in rules(scan(data))


def test_back_to_back_second_is_malicious() -> None:
    data = pickle.dumps({"ok": 1}, protocol=2) + pickle.dumps(Touch(Path("x")), protocol=2)
    assert "pickle.dangerous-global" in rules(scan(data))


def test_trailing_garbage_is_low() -> None:
    found = scan(pickle.dumps([1, 2], protocol=4) + b"\x00\x01\x02 not a pickle")
    assert rules(found) == {"pickle.trailing-data"}
    assert found[0].severity.name == "LOW"


def test_legacy_torch_sequence_raw_tail_is_expected() -> None:
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    parts = [magic, pickle.dumps(1001, protocol=2), pickle.dumps({"little_endian": True}, 2)]
    parts.append(pickle.dumps(collections.OrderedDict(w=1), protocol=2))
    parts.append(pickle.dumps(["0", "1"], protocol=2))
    raw = struct.pack("<q", 4) + b"\x00\xff\xfe\x07" * 4
    assert scan(b"".join(parts) + raw, "model.pt") == []
    # the same shape with a payload as the object is still caught
    parts[3] = pickle.dumps(Touch(Path("x")), protocol=2)
    assert "pickle.dangerous-global" in rules(scan(b"".join(parts) + raw, "model.pt"))


# nested pickles ------------------------------------------------------------------------
def test_pickle_in_bytes_constant_is_scanned() -> None:
    inner = pickle.dumps(Touch(Path("x")), protocol=4)
    outer = pickle.dumps({"blob": inner}, protocol=4)
    found = scan(outer)
    assert "pickle.embedded-pickle" in rules(found)
    nested = [f for f in found if f.rule_id == "pickle.dangerous-global"]
    assert nested and "!<embedded@" in nested[0].path


def test_loader_argument_is_scanned() -> None:
    inner = b"cos\nsystem\n(S'id'\ntR."  # protocol 0 payload passed to pickle.loads
    outer = proto(2) + glob("pickle", "loads") + b"C" + bytes([len(inner)]) + inner + b"\x85R."
    found = scan(outer)
    assert globals_of(found, "pickle.dangerous-global") >= {"pickle.loads"}
    assert any(f.path.endswith(">") and f.extra.get("global") == "os.system" for f in found)


# dispatch, limits, streams ----------------------------------------------------------------
def test_sniffing() -> None:
    f = FileInput.from_bytes("weights.bin", pickle.dumps([1], protocol=2))
    assert choose_format(f) is not None and choose_format(f).name == "pickle"  # type: ignore[union-attr]
    raw = FileInput.from_bytes("tokenizer.bin", b"\x00\x01 raw data")
    assert not looks_like_pickle(raw.head, raw)
    assert scan(b"\x00\x01 raw data", "tokenizer.bin") == []
    p0 = FileInput.from_bytes("x.pkl", pickle.dumps({"a": 1}, protocol=0))
    assert looks_like_pickle(p0.head, p0)


def test_scan_pickle_stream_from_offset() -> None:
    payload = pickle.dumps(Touch(Path("x")), protocol=3)
    data = b"HEADER--" + payload
    f = FileInput.from_bytes("x.npy", data)
    fh = io.BytesIO(data)
    fh.seek(8)
    found = list(scan_pickle_stream(fh, f, ScanContext()))
    hit = [x for x in found if x.rule_id == "pickle.dangerous-global"]
    assert hit and int(hit[0].location.rsplit("0x", 1)[1], 16) >= 8  # type: ignore[union-attr]


def test_opcode_limit_reports_unscannable() -> None:
    ctx = ScanContext(limits=Limits(max_pickle_opcodes=100))
    found = scan(pickle.dumps(list(range(1000)), protocol=4), ctx=ctx)
    assert "pickle.unscannable" in rules(found)


def test_large_file_streams_and_is_fast(tmp_path: Path) -> None:
    # > several chunks: a long list of ints with a string crossing chunk edges
    data = pickle.dumps([list(range(300_000)), "s" * 5000, Touch(Path("x"))], protocol=4)
    p = tmp_path / "big.pkl"
    p.write_bytes(data)
    t = time.perf_counter()
    found = list(scan_file(FileInput.from_path(p, "big.pkl"), ScanContext()))
    assert time.perf_counter() - t < 5
    assert "pickle.dangerous-global" in rules(found)
    assert "pickle.malformed" not in rules(found)


# fuzzing -------------------------------------------------------------------------------
SEEDS = [pickle.dumps({"a": [1, "b", (2.0, None)]}, protocol=p) for p in PROTOS] + [
    pickle.dumps(Touch(Path("x")), protocol=4)
]


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    for name in ("x.pkl", "x.bin"):
        for f in scan(data, name):
            assert isinstance(f, Finding) and f.rule_id != "scan.internal-error", f


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255))))
def test_fuzz_mutations(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for pos, val in edits:
        data[pos % len(data)] = val
    for f in scan(bytes(data)):
        assert isinstance(f, Finding) and f.rule_id != "scan.internal-error", f


# headerless streams: .bin/.dat trial walk and the any-extension sniff -------------------
def payload_body(sentinel: Path) -> bytes:
    """posix.system(touch sentinel) in protocol-4 opcodes, without PROTO and STOP."""
    return (
        sstr("posix") + b"\x94" + sstr("system") + b"\x94\x93" + call_with_str(f"touch {sentinel}")
    )


@pytest.mark.parametrize(
    "prefix",
    [b"", b"}", b"(", b"N0", b"\x88\x89\x86", b"K\x05J\x00\x00\x00\x000\x8f0", b"C\x03abc0"],
)
@pytest.mark.parametrize("name", ["pytorch_model.bin", "data.dat"])
def test_headerless_pickle_in_generic_file_is_caught(
    prefix: bytes, name: str, tmp_path: Path
) -> None:
    # torch.load's legacy path unpickles any non-zip file, with or without a PROTO header
    sentinel = tmp_path / "SENTINEL"
    found = scan(prefix + payload_body(sentinel) + b".", name)
    assert globals_of(found, "pickle.dangerous-global") == {"posix.system"}
    assert not sentinel.exists()


def test_headerless_pickle_behind_a_long_constant_is_caught(tmp_path: Path) -> None:
    # the trial walk is not a fixed-size window: a 1 MiB leading constant is skipped
    sentinel = tmp_path / "SENTINEL"
    junk = os.urandom(1 << 20)
    data = b"\x8e" + struct.pack("<Q", len(junk)) + junk + b"0" + payload_body(sentinel) + b"."
    assert globals_of(scan(data, "pytorch_model.bin"), "pickle.dangerous-global") == {
        "posix.system"
    }
    assert not sentinel.exists()


def test_headerless_payload_that_breaks_after_the_call_is_caught() -> None:
    data = payload_body(Path("x")) + b"\xff garbage"  # the call runs before the break
    found = scan(data, "pytorch_model.bin")
    assert globals_of(found, "pickle.dangerous-global") == {"posix.system"}
    assert "pickle.malformed" in rules(found)


def _no_proto_header(data: bytes) -> bool:
    # a random buffer starting \x80 [2-5] <opcode> (p ~ 1.6e-5) is a real pickle header
    return not (data[0] == 0x80 and 2 <= data[1] <= 5)


def test_raw_weights_in_bin_files_are_not_flagged() -> None:
    rng = np.random.default_rng(7)
    buffers = [os.urandom(1 << 16) for _ in range(64)]
    buffers += [rng.bytes(4096) for _ in range(3000)]
    buffers += [rng.standard_normal(1 << 14).astype(np.float32).tobytes() for _ in range(200)]
    buffers += [(rng.standard_normal(4096) * 0.02).astype(np.float16).tobytes() for _ in range(500)]
    buffers += [np.arange(5000, dtype=np.float32).tobytes(), bytes(4096), b"\xff" * 100]
    for data in filter(_no_proto_header, buffers):
        for name in ("pytorch_model.bin", "weights.dat"):
            assert scan(data, name) == [], data[:32]


def test_text_global_in_generic_file_still_scanned_and_data_pickles_clean() -> None:
    assert rules(scan(b"cos\nsystem\n(S'id'\ntR.", "model.bin")) == {"pickle.dangerous-global"}
    for protocol in (0, 1):  # headerless by design, plain data: nothing to report
        assert scan(pickle.dumps({"a": [1, 2.0, "x"]}, protocol=protocol), "x.bin") == []


@pytest.mark.parametrize(
    "data",
    [
        payload_body(Path("x")) + b".",  # STACK_GLOBAL of two names at byte 0
        b"N0(}" + payload_body(Path("x")) + b".",  # ... after a few opcodes
        b"X\x05\x00\x00\x00posixq\x00U\x06systemr\x01\x00\x00\x00\x93N.",  # other string ops
        b"cos\nsystem\n(S'id'\ntR.",  # text GLOBAL at byte 0
        b"cposix\nsystem\np0\n(Vid\np1\ntp2\nRp3\n.",
    ],
)
def test_headerless_start_sniffed_for_any_extension(data: bytes) -> None:
    for name in ("weights.model", "checkpoint", "x.txt"):
        f = FileInput.from_bytes(name, data)
        assert looks_like_pickle(f.head, f), (name, data)
        assert rules(scan(data, name)) & {"pickle.dangerous-global", "pickle.unknown-global"}


def test_framed_headerless_sniffed_only_when_the_frame_fits() -> None:
    body = payload_body(Path("x")) + b"."
    framed = b"\x95" + struct.pack("<Q", len(body)) + body
    f = FileInput.from_bytes("weights.model", framed)
    assert looks_like_pickle(f.head, f)
    assert "pickle.dangerous-global" in rules(scan(framed, "weights.model"))
    for bad in (
        b"\x95" + struct.pack("<Q", len(body) + 1) + body,  # frame longer than the file
        b"\x95" + struct.pack("<Q", 0) + body,
        b"\x95" + struct.pack("<Q", len(body)) + b"\x00" + body,  # no opcode after it
    ):
        g = FileInput.from_bytes("weights.model", bad)
        assert not looks_like_pickle(g.head, g)


REALISTIC_TEXT = {
    "README.md": b"---\nlicense: apache-2.0\ntags:\n- text-generation\n---\n# Model\n",
    "config.json": b'{\n  "architectures": ["LlamaForCausalLM"],\n  "hidden_size": 4096\n}\n',
    "modeling_x.py": b"# coding=utf-8\nimport torch\nfrom torch import nn\n\nclass X(nn.Module):\n",
    "vocab.txt": b"cat\ndog\nemu\nfox\ngnu\nhen\nowl\nram\nyak\nant\nbee\nbat\ncow\n",
    "words.model": b"cos\nsystem\nshell\nexec\nhome\nroot\nuser\nwheel\nstaff\nadm\n",
    "merges.txt": b"#version: 0.2\n\xc4\xa0 t\n\xc4\xa0 a\nh e\ni n\nr e\no n\n",
    "LICENSE": b"Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n",
    "model.model": b"\n\x0e\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02\n\x0c\n\x03<s>\x15",
}


@pytest.mark.parametrize("name", sorted(REALISTIC_TEXT))
def test_text_and_tokenizer_files_never_sniff_as_pickles(name: str) -> None:
    f = FileInput.from_bytes(name, REALISTIC_TEXT[name])
    assert not looks_like_pickle(f.head, f)
    assert not {r for r in rules(scan(REALISTIC_TEXT[name], name)) if r.startswith("pickle.")}


_TEXT_GLOBAL_LINE = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
# printable text; control characters are left out because bytes < 0x20 are the length
# fields of binary string opcodes, which makes such a stream binary, not text
_PRINTABLE = st.characters(min_codepoint=0x20, blacklist_categories=("Cc", "Cs")) | st.just("\n")


@settings(max_examples=300, deadline=2000)
@given(st.text(_PRINTABLE, max_size=80), st.sampled_from(["x.model", "x.bin", "x.txt", "x"]))
def test_printable_text_sniffs_as_pickle_only_if_it_is_a_global_line(text: str, name: str) -> None:
    data = text.encode()
    f = FileInput.from_bytes(name, data)
    if looks_like_pickle(f.head, f):
        assert _TEXT_GLOBAL_LINE.match(data), data


@settings(max_examples=200, deadline=2000)
@given(st.from_regex(rb"\Ac[a-z_]{1,8}\n[a-z_]{1,8}\n(?:[a-z]{1,6}\n){1,6}\Z"))
def test_word_lists_starting_like_a_global_are_not_sniffed(data: bytes) -> None:
    f = FileInput.from_bytes("words.model", data)
    assert not looks_like_pickle(f.head, f)


def test_torchscript_list_builders_are_safe_but_torch_jit_load_is_not() -> None:
    """torch.jit.save writes torch.jit._pickle.build_* into its pickles (seen in real files)."""
    from airlock.scan.pickle_judge import Judge

    judge = Judge()
    for name in ("build_intlist", "build_tensorlist", "restore_type_tag"):
        assert judge.verdict("torch.jit._pickle", name) == "safe"
    assert judge.verdict("torch.jit", "load") == "dangerous"
    assert judge.verdict("torch.jit._pickle", "something_else") == "dangerous"

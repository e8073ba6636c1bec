"""GGUF scanner: bounded header parse, layout checks, metadata extraction."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.engine import choose_format
from airlock.scan.gguf import scan_gguf

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
       U64: "Q", I64: "q", F64: "d"}  # fmt: skip


def s(text: str | bytes, e: str = "<") -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack(e + "Q", len(b)) + b


def val(vtype: int, v: Any, e: str = "<") -> bytes:
    if vtype == STR:
        return s(v, e)
    if vtype == ARR:
        etype, items = v
        return struct.pack(e + "IQ", etype, len(items)) + b"".join(
            val(etype, x, e)[0:] if etype in (STR, ARR) else struct.pack(e + FMT[etype], x)
            for x in items
        )
    return struct.pack(e + FMT[vtype], v)


def kv(key: str, vtype: int, v: Any, e: str = "<") -> bytes:
    return s(key, e) + struct.pack(e + "I", vtype) + val(vtype, v, e)


def tinfo(name: str, dims: list[int], ttype: int, offset: int, e: str = "<") -> bytes:
    return (
        s(name, e)
        + struct.pack(e + "I", len(dims))
        + b"".join(struct.pack(e + "Q", d) for d in dims)
        + struct.pack(e + "IQ", ttype, offset)
    )


def build(
    kvs: list[bytes] | None = None,
    tensors: list[tuple[str, list[int], int, int]] | None = None,
    *,
    data_len: int | None = None,
    version: int = 3,
    e: str = "<",
    alignment: int = 32,
    counts: tuple[int, int] | None = None,
) -> bytes:
    kvs = (
        [kv("general.architecture", STR, "llama", e), kv("general.name", STR, "tiny", e)]
        if kvs is None
        else kvs
    )
    tensors = [("a", [8], 0, 0), ("b", [4, 2], 0, 32)] if tensors is None else tensors
    n_t, n_kv = counts or (len(tensors), len(kvs))
    out = b"GGUF" + struct.pack(e + "IQQ", version, n_t, n_kv) + b"".join(kvs)
    out += b"".join(tinfo(n, d, t, o, e) for n, d, t, o in tensors)
    out += b"\0" * (-len(out) % alignment)
    if data_len is None:
        data_len = max((o + 4 * _numel(d) for _, d, t, o in tensors), default=0)
        data_len += -data_len % alignment
    return out + b"\0" * data_len


def _numel(d: list[int]) -> int:
    n = 1
    for x in d:
        n *= x
    return n


def scan(data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    return list(scan_gguf(FileInput.from_bytes("m.gguf", data), ctx or ScanContext()))


def ids(fs: list[Finding]) -> set[str]:
    return {f.rule_id for f in fs}


def test_clean_file_and_facts() -> None:
    ctx = ScanContext()
    kvs = [
        kv("general.architecture", STR, "llama"),
        kv("general.name", STR, "Tiny Llama"),
        kv("general.license", STR, "apache-2.0"),
        kv("general.url", STR, "https://huggingface.co/x/y"),
        kv("general.description", STR, "A small model. We import weights from the base model."),
        kv("llama.context_length", U32, 2048),
        kv("tokenizer.ggml.tokens", ARR, (STR, ["<s>", "</s>", "hello"] * 100)),
        kv("tokenizer.ggml.scores", ARR, (F32, [0.5] * 300)),
        kv("nested", ARR, (ARR, [(U8, [1, 2]), (STR, ["x"])])),
    ]
    assert scan(build(kvs), ctx) == []
    assert ctx.facts["license"] == [
        {"source": "m.gguf", "field": "general.license", "value": "apache-2.0"}
    ]
    [model] = ctx.facts["model"]
    assert (
        model["name"] == "Tiny Llama" and model["architecture"] == "llama" and model["tensors"] == 2
    )


def test_dispatch_by_magic() -> None:
    fmt = choose_format(FileInput.from_bytes("model.bin", build()))
    assert fmt is not None and fmt.name == "gguf"


def test_big_endian_file_is_parsed() -> None:
    ctx = ScanContext()
    assert scan(build(e=">", kvs=[kv("general.name", STR, "be", ">")]), ctx) == []
    assert ctx.facts["model"][0]["name"] == "be"


def test_unsupported_versions() -> None:
    assert ids(scan(build(version=1))) == {"gguf.unsupported-version"}
    assert ids(scan(build(version=7))) == {"gguf.unsupported-version"}


def test_chat_templates_are_forwarded() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    def recorder(child: FileInput, ctx: ScanContext) -> Iterator[Finding]:
        with child.open() as fh:
            seen.append((child.path, child.format_hint, fh.read()))
        return iter(())

    ctx = ScanContext(nested_scanner=recorder)
    kvs = [
        kv("tokenizer.chat_template", STR, "{{ messages }}"),
        kv("tokenizer.chat_template.tool_use", STR, "{% for m in messages %}{% endfor %}"),
    ]
    assert scan(build(kvs), ctx) == []  # templates are not flagged as metadata by this scanner
    assert seen == [
        ("m.gguf#tokenizer.chat_template", "chat-template", b"{{ messages }}"),
        (
            "m.gguf#tokenizer.chat_template.tool_use",
            "chat-template",
            b"{% for m in messages %}{% endfor %}",
        ),
    ]


def test_duplicate_template_key_is_malformed_and_both_copies_forwarded() -> None:
    seen: list[bytes] = []

    def recorder(child: FileInput, ctx: ScanContext) -> Iterator[Finding]:
        with child.open() as fh:
            seen.append(fh.read())
        return iter(())

    kvs = [kv("tokenizer.chat_template", STR, "benign"), kv("tokenizer.chat_template", STR, "evil")]
    found = scan(build(kvs), ScanContext(nested_scanner=recorder))
    assert "gguf.malformed" in ids(found)
    assert sorted(seen) == [b"benign", b"evil"]


def test_suspicious_metadata() -> None:
    kvs = [
        kv("general.description", STR, "__import__('os').system('id')"),
        kv("general.note", STR, "see http://evil.example/x"),
        kv("general.name", STR, "good\u200bmodel"),
    ]
    found = [f for f in scan(build(kvs)) if f.rule_id == "gguf.suspicious-metadata"]
    by_loc = {f.location: str(f.severity) for f in found}
    assert by_loc == {
        "key general.description": "medium",
        "key general.note": "low",
        "key general.name": "medium",
    }


def test_huge_string_length() -> None:
    bad = s("k")[:0] + struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", STR, 2**60)
    found = scan(build([bad], counts=(0, 1)))
    assert ids(found) == {"gguf.malformed"}


def test_huge_counts_fail_fast() -> None:
    start = time.monotonic()
    assert ids(scan(build(counts=(2, 2**63)))) == {"gguf.malformed"}
    assert ids(scan(build(counts=(2**63, 2)))) == {"gguf.malformed"}
    huge_arr = struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", ARR, U64, 2**61)
    assert ids(scan(build([huge_arr], counts=(0, 1)))) == {"gguf.malformed"}
    str_arr = struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", ARR, STR, 2**62)
    assert ids(scan(build([str_arr], counts=(0, 1)))) == {"gguf.malformed"}
    deep = (
        struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<I", ARR)
        + struct.pack("<IQ", ARR, 1) * 3
        + struct.pack("<IQ", U8, 0)
    )
    assert ids(scan(build([deep], counts=(0, 1)))) == {"gguf.malformed"}
    assert time.monotonic() - start < 1


def test_string_array_with_lying_length() -> None:
    arr = (
        struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<IIQ", ARR, STR, 3)
        + s("a")
        + struct.pack("<Q", 2**40)
        + b"x"
    )
    assert "gguf.malformed" in ids(scan(build([arr], counts=(0, 1))))


def test_unknown_value_type() -> None:
    assert ids(scan(build([struct.pack("<Q", 1) + b"k" + struct.pack("<I", 13) + b"\0" * 8]))) == {
        "gguf.malformed"
    }


def test_n_dims_and_dim_overflow() -> None:
    assert "gguf.malformed" in ids(scan(build(tensors=[("a", [1, 1, 1, 1, 1], 0, 0)])))
    assert "gguf.malformed" in ids(scan(build(tensors=[("a", [2**32, 2**32], 0, 0)], data_len=64)))
    assert "gguf.malformed" in ids(scan(build(tensors=[("a", [2**63], 0, 0)], data_len=64)))


def test_layout_violations() -> None:
    assert "gguf.out-of-bounds" in ids(scan(build(tensors=[("a", [64], 0, 0)], data_len=32)))
    assert "gguf.out-of-bounds" in ids(scan(build(tensors=[("a", [8], 0, 2**62)], data_len=32)))
    assert "gguf.misaligned" in ids(scan(build(tensors=[("a", [8], 0, 0), ("b", [1], 0, 40)])))
    assert "gguf.overlap" in ids(scan(build(tensors=[("a", [16], 0, 0), ("b", [8], 0, 32)])))
    assert "gguf.gap" in ids(scan(build(tensors=[("a", [8], 0, 0), ("b", [8], 0, 128)])))
    assert "gguf.gap" in ids(scan(build(tensors=[("a", [8], 0, 0)], data_len=4096)))
    assert "gguf.unknown-tensor-type" in ids(scan(build(tensors=[("a", [8], 99, 0)])))


def test_quantized_sizes_are_understood() -> None:
    # Q4_0: 32 elements per 18-byte block; 2 rows of 64 -> 4 blocks = 72 bytes (padded to 96).
    assert scan(build(tensors=[("q", [64, 2], 2, 0), ("f", [8], 0, 96)], data_len=128)) == []
    assert "gguf.malformed" in ids(scan(build(tensors=[("q", [33], 2, 0)], data_len=64)))


def test_alignment_key() -> None:
    kvs = [kv("general.alignment", U32, 64)]
    assert scan(build(kvs, tensors=[("a", [8], 0, 0), ("b", [8], 0, 64)], alignment=64)) == []
    assert ids(scan(build([kv("general.alignment", U32, 3)]))) == {"gguf.malformed"}


def test_large_token_array_is_fast() -> None:
    tokens = [f"tok{i}" for i in range(150_000)]
    data = build([kv("tokenizer.ggml.tokens", ARR, (STR, tokens))])
    start = time.monotonic()
    assert scan(data) == []
    assert time.monotonic() - start < 1.5


def test_truncated_after_metadata_keeps_facts() -> None:
    ctx = ScanContext()
    data = build([kv("general.license", STR, "mit")])
    found = scan(data[: data.index(b"mit") + 3 + 2], ctx)
    assert "gguf.malformed" in ids(found)
    assert ctx.facts["license"][0]["value"] == "mit"


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in scan(b"GGUF" + data))


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutations(d: st.DataObject) -> None:
    kvs = [
        kv("general.name", STR, "x"),
        kv("tokenizer.ggml.tokens", ARR, (STR, ["a", "b"])),
        kv("a", ARR, (U32, [1, 2])),
    ]
    data = bytearray(build(kvs))
    for _ in range(d.draw(st.integers(1, 6))):
        i = d.draw(st.integers(4, len(data) - 1))
        data[i] = d.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, d.draw(st.integers(0, 255))]))
    assert all(isinstance(f, Finding) for f in scan(bytes(data)))


@settings(max_examples=100, deadline=2000)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_fuzz_declared_counts(n_t: int, n_kv: int) -> None:
    assert all(isinstance(f, Finding) for f in scan(build(counts=(n_t, n_kv))))

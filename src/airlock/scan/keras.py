"""Keras: find code references in a model's architecture config (``.keras`` and ``.h5``).

A Keras model config is JSON, but loading it imports and calls what it names:
``Lambda`` layers carry marshalled Python bytecode (run at load unless
``safe_mode``), custom objects name classes and functions in arbitrary modules,
and some built-in names are gadgets (``keras.utils.get_file`` downloads,
``TFOpLambda`` calls any TensorFlow op such as ``io.write_file``). Nothing here
unmarshals or imports anything: the JSON is walked and the bytecode is only
searched for printable names.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner

LAMBDA = rule(
    "keras.lambda-layer",
    Severity.HIGH,
    "Keras Lambda layer (arbitrary Python code)",
    "Lambda layers carry Python bytecode or a function reference that runs when the "
    "model is loaded with safe_mode=False. Load only with safe_mode=True, or rebuild "
    "the model from trusted code and load the weights alone.",
    "The model config contains a Lambda layer or a serialised lambda.",
)
CUSTOM_OBJECT = rule(
    "keras.custom-object",
    Severity.MEDIUM,
    "Keras custom object (code outside Keras)",
    "Loading this model imports the named module or needs its class from "
    "custom_objects. Review that code before loading; never install packages a model "
    "asks for without review.",
    "A layer, function or object in the config is not a Keras built-in.",
)
DANGEROUS_REFERENCE = rule(
    "keras.dangerous-reference",
    Severity.HIGH,
    "Keras config references a dangerous function",
    "Do not load this model: its config makes Keras import or call a function that "
    "can run commands, touch files or download content (known safe_mode bypass).",
    "A config entry names a module such as os/subprocess/builtins or a Keras gadget "
    "such as keras.utils.get_file.",
)
MALFORMED = rule(
    "keras.malformed",
    Severity.MEDIUM,
    "Keras config could not be analysed",
    "The model config is not valid JSON of the expected shape; Keras may fail to load "
    "it. Treat the model as unscanned.",
    "The Keras model config is invalid, too large or too deeply nested.",
)
H5_UNSCANNED = rule(
    "keras.h5-unscanned",
    Severity.LOW,
    "HDF5 model could not be scanned",
    "Install airlock with the h5 extra (pip install 'airlock[h5]') so the Keras model "
    "config inside HDF5 files can be read, then scan again.",
    "No Keras model config was found in the HDF5 file without h5py.",
)

DANGEROUS_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "sys",
        "shutil",
        "socket",
        "runpy",
        "importlib",
        "pickle",
        "marshal",
        "ctypes",
        "code",
        "codeop",
        "pty",
        "webbrowser",
        "requests",
        "urllib",
        "urllib3",
        "http",
        "ftplib",
        "telnetlib",
        "smtplib",
        "asyncio",
        "multiprocessing",
        "threading",
        "pathlib",
        "io",
        "tempfile",
    ]
)
# Functions inside Keras/TensorFlow that are known gadgets when named by a config.
KERAS_GADGETS = re.compile(
    r"(?:^|\.)(?:get_file|enable_unsafe_deserialization|load_model|load_weights|"
    r"register_keras_serializable|py_function|numpy_function|py_func|"
    r"write_file|read_file|gfile\.\w+|exec|eval|system|popen)$"
)
KNOWN_PACKAGES = ("keras_hub", "keras_nlp", "keras_cv", "tensorflow_addons", "tensorflow_hub")
MAX_NODES = 2_000_000
MAX_DEPTH = 200
MAX_REPORTS = 50
H5_MAGIC = b"\x89HDF\r\n\x1a\n"
H5_SEARCH_BYTES = 64 * 1024 * 1024
_CONFIG_START = re.compile(rb'\{\s*"class_name"\s*:')
_LAMBDA_MARK = re.compile(rb'"class_name"\s*:\s*"(?:Lambda|__lambda__)"')


def _load_builtins() -> frozenset[str]:
    text = resources.files("airlock").joinpath("data/keras_builtins.txt").read_text("utf-8")
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(n for n in names if n)


KERAS_BUILTINS = _load_builtins()


def analyze_keras_config(config: bytes, where: str, ctx: ScanContext) -> Iterator[Finding]:
    """Report Lambda layers, custom objects and dangerous references in a Keras config.

    Args:
        config: the bytes of ``config.json`` (``.keras``) or the ``model_config``
            attribute (``.h5``).
        where: display path for findings (``model.keras!config.json``).
        ctx: the scan context.

    Yields:
        Findings of the ``keras.*`` rules.
    """
    if len(config) > ctx.limits.max_header_bytes:
        ev = f"config is {len(config)} bytes; not analysed"
        yield ctx.finding(MALFORMED, where, evidence=ev)
        return
    try:
        obj = json.loads(config.decode("utf-8-sig"))
    except (ValueError, RecursionError) as e:
        yield ctx.finding(MALFORMED, where, evidence=f"invalid JSON: {str(e)[:120]}")
        return
    yield from _Walk(where, ctx).run(obj)


class _Walk:
    """Iterative walk over the JSON tree (bounded in nodes and depth)."""

    def __init__(self, where: str, ctx: ScanContext) -> None:
        from airlock.scan.pickle_judge import judge_for

        self.where, self.ctx = where, ctx
        self.judge = judge_for(ctx)  # the pickle deny list names the same gadgets
        self.handled: set[int] = set()
        self.reported = 0

    def run(self, root: Any) -> Iterator[Finding]:
        stack: list[tuple[Any, str, int]] = [(root, "", 0)]
        seen = 0
        while stack:
            node, path, depth = stack.pop()
            seen += 1
            if seen > MAX_NODES or depth > MAX_DEPTH:
                yield self.ctx.finding(MALFORMED, self.where, evidence="config too large or deep")
                return
            if isinstance(node, dict):
                if isinstance(node.get("class_name"), str) and id(node) not in self.handled:
                    path = _extend(path, node)
                    yield from self._limit(self._object(node, path))
                children = list(node.values())
            elif isinstance(node, list):
                children = node
            else:
                continue
            stack.extend((c, path, depth + 1) for c in reversed(children))

    def _limit(self, found: Iterator[Finding]) -> Iterator[Finding]:
        for fnd in found:
            self.reported += 1
            if self.reported <= MAX_REPORTS:
                yield fnd

    def _object(self, node: dict[str, Any], path: str) -> Iterator[Finding]:
        cls, module = node["class_name"], node.get("module")
        module = module if isinstance(module, str) else None
        cfg = node.get("config")
        if cls in ("Lambda", "__lambda__") and (module is None or _is_keras(module)):
            yield self._lambda(node, cls, cfg, path)
        elif cls in ("TFOpLambda", "SlicingOpLambda") and isinstance(cfg, dict):
            yield from self._tf_op(cfg, path)
        elif cls == "function" or (module is not None and not _is_keras(module)):
            yield from self._reference(module, cls, cfg, node.get("registered_name"), path)
        else:
            yield from self._class(node, cls, module, path)

    def _lambda(self, node: dict[str, Any], cls: str, cfg: Any, path: str) -> Finding:
        ev = f"{path}: {_describe_function(cfg, self.handled)}"
        return self.ctx.finding(LAMBDA, self.where, location=path, evidence=ev)

    def _tf_op(self, cfg: dict[str, Any], path: str) -> Iterator[Finding]:
        fn = cfg.get("function")
        if isinstance(fn, str) and KERAS_GADGETS.search(fn):
            ev = f"{path}: TensorFlow op tf.{fn}"
            yield self.ctx.finding(DANGEROUS_REFERENCE, self.where, location=path, evidence=ev)

    def _reference(
        self, module: str | None, cls: str, cfg: Any, registered: Any, path: str
    ) -> Iterator[Finding]:
        name = cfg if cls == "function" and isinstance(cfg, str) else cls
        full = f"{module}.{name}" if module else name
        root = (module or "").split(".", 1)[0]
        denied = bool(module) and self.judge.verdict(module or "", name) == "dangerous"
        if denied or root in DANGEROUS_MODULES or (module and KERAS_GADGETS.search(full)):
            ev = f"{path}: {full}"
            yield self.ctx.finding(DANGEROUS_REFERENCE, self.where, location=path, evidence=ev)
        elif module and not _is_keras(module):
            sev = Severity.LOW if root in KNOWN_PACKAGES else None
            yield self._custom(path, full, registered, sev)

    def _class(
        self, node: dict[str, Any], cls: str, module: str | None, path: str
    ) -> Iterator[Finding]:
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            pkg = registered.split(">", 1)[0]
            sev = Severity.LOW if pkg in KNOWN_PACKAGES else None
            yield self._custom(path, f"{module or '?'}.{cls}", registered, sev)
        elif module is None and not _is_builtin_name(cls):
            yield self._custom(path, cls, registered, None)

    def _custom(self, path: str, full: str, registered: Any, sev: Severity | None) -> Finding:
        reg = f" (registered as {registered})" if isinstance(registered, str) else ""
        return self.ctx.finding(
            CUSTOM_OBJECT,
            self.where,
            location=path,
            evidence=f"{path}: {full}{reg}",
            severity=sev,
            extra={"object": full},
        )


def _extend(path: str, node: dict[str, Any]) -> str:
    cfg = node.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    label = f"{node['class_name']}:{name}" if isinstance(name, str) else node["class_name"]
    return f"{path}/{label}" if path else label


def _is_keras(module: str) -> bool:
    root = module.split(".", 1)[0]
    return root in ("keras", "tf_keras") or module.startswith(
        ("tensorflow.keras", "tensorflow.python.keras")
    )


def _is_builtin_name(cls: str) -> bool:
    return cls in KERAS_BUILTINS or (cls.startswith("__") and cls.endswith("__"))


def _describe_function(cfg: Any, handled: set[int]) -> str:
    """A short, static description of what a Lambda would run."""
    if not isinstance(cfg, dict):
        return "serialised lambda"
    fn = cfg.get("function", cfg.get("code"))
    if isinstance(fn, dict):  # Keras 3: nested {"class_name": "__lambda__"|"function", ...}
        handled.add(id(fn))
        inner = fn.get("config")
        if fn.get("class_name") == "function":
            return f"function {fn.get('module')}.{inner}"
        fn = inner.get("code") if isinstance(inner, dict) else inner
    if isinstance(fn, list) and fn:
        fn = fn[0]
    if cfg.get("function_type") == "function" and isinstance(fn, str):
        return f"function {cfg.get('module')}.{fn}"
    if isinstance(fn, str):
        return _bytecode_names(fn)
    return "serialised lambda"


def _bytecode_names(b64: str) -> str:
    """Names visible in base64 marshalled bytecode (read as bytes, never unmarshalled)."""
    try:
        raw = base64.b64decode(b64[: 1 << 20], validate=False)
    except (binascii.Error, ValueError):
        return f"lambda code {b64[:60]!r}"
    names = dict.fromkeys(m.decode() for m in re.findall(rb"[A-Za-z_][A-Za-z0-9_.]{1,40}", raw))
    shown = ", ".join(list(names)[:12])
    return f"marshalled bytecode ({len(raw)} bytes), names: {shown}"


# --- HDF5 (.h5) ------------------------------------------------------------------------


def _sniff_h5(head: bytes, f: FileInput) -> bool:
    return head.startswith(H5_MAGIC)


@format_scanner("keras-h5", extensions=(".h5", ".hdf5"), sniff=_sniff_h5)
def scan_keras_h5(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Read the ``model_config`` of a Keras HDF5 file (h5py, else a bounded byte search)."""
    config = _config_via_h5py(f)
    if config is not None:
        yield from analyze_keras_config(config, f.path, ctx)
        return
    configs, lambda_seen = _config_via_search(f)
    for c in configs:
        yield from analyze_keras_config(c, f.path, ctx)
    if not configs and lambda_seen:
        ev = "Lambda layer marker found in raw bytes (config not parsed)"
        yield ctx.finding(LAMBDA, f, evidence=ev)
    if not configs and not lambda_seen:
        yield ctx.finding(H5_UNSCANNED, f, evidence="h5py not installed; no model_config found")


def _config_via_h5py(f: FileInput) -> bytes | None:
    try:
        import h5py
    except ImportError:
        return None
    try:
        with f.open() as fh, h5py.File(fh, "r") as h5:
            raw = h5.attrs.get("model_config")
    except Exception:  # h5py raises many types on corrupt files; fall back to search
        return None
    if isinstance(raw, str):
        return raw.encode("utf-8")
    if isinstance(raw, bytes):
        return raw
    return None


def _config_via_search(f: FileInput) -> tuple[list[bytes], bool]:
    """JSON objects that start like a Keras config in the first bytes of the file."""
    with f.open() as fh:
        data = fh.read(H5_SEARCH_BYTES)
    configs: list[bytes] = []
    decoder = json.JSONDecoder()
    covered = attempts = 0
    for m in _CONFIG_START.finditer(data):
        if m.start() < covered:  # inside a config already parsed
            continue
        attempts += 1
        if attempts > 16 or len(configs) >= 4:
            break
        end = data.find(b"\x00", m.start())
        text = data[m.start() : end if end != -1 else len(data)].decode("utf-8", "replace")
        try:
            obj, n = decoder.raw_decode(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and "config" in obj:
            blob = text[:n].encode("utf-8")
            configs.append(blob)
            covered = m.start() + len(blob)
    return configs, bool(_LAMBDA_MARK.search(data))

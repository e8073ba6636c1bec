"""Python files shipped with a model (``trust_remote_code``): static audit of their AST.

``transformers`` imports a repository's ``modeling_*.py`` / ``tokenization_*.py``
when a user passes ``trust_remote_code=True``; whatever runs at import time runs on
the user's machine. This scanner parses the source with :func:`ast.parse` (never
imports or executes it), resolves imports and aliases (``import subprocess as sp``)
and reports dangerous capabilities with file, line and the offending source line.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airlock.data import load_yaml
from airlock.findings import Finding, Rule, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner

_REMEDIATE = (
    "Do not load this model with trust_remote_code=True until the code is reviewed; "
    "prefer an architecture built into transformers or a reviewed, pinned revision."
)
MALFORMED = rule(
    "remote-code.malformed",
    Severity.LOW,
    "Python file does not parse",
    "The file cannot be imported as it is and could not be audited; remove it or get a "
    "clean copy from the original publisher.",
    "A .py file is not valid Python 3 source (or not UTF-8).",
)
UNSCANNABLE = rule(
    "remote-code.unscannable",
    Severity.MEDIUM,
    "Python file too large to audit",
    "Review this file by hand before any trust_remote_code load.",
    "The file is larger than the text limit, so it was not parsed.",
)
NETWORK = rule(
    "remote-code.network", Severity.HIGH, "Python code uses the network", _REMEDIATE,
    "Model code opens sockets or HTTP connections (exfiltration, payload download).",
)  # fmt: skip
PROCESS = rule(
    "remote-code.process", Severity.CRITICAL, "Python code starts processes", _REMEDIATE,
    "Model code runs shell commands or other programs.",
)  # fmt: skip
DYNAMIC = rule(
    "remote-code.dynamic-code", Severity.CRITICAL, "Python code runs dynamic code", _REMEDIATE,
    "eval/exec/compile/__import__/marshal and similar run code the scanner cannot see.",
)  # fmt: skip
OBFUSCATED_EXEC = rule(
    "remote-code.obfuscated-exec", Severity.CRITICAL, "Python code executes decoded data",
    _REMEDIATE, "Encoded or compressed data is decoded and passed to exec/eval: hidden code.",
)  # fmt: skip
ENV_READ = rule(
    "remote-code.env-read", Severity.MEDIUM, "Python code reads environment variables",
    "Check which variables are read and why; model code rarely needs the environment.",
    "Model code reads os.environ / os.getenv.",
)  # fmt: skip
CREDENTIAL_READ = rule(
    "remote-code.credential-read", Severity.HIGH, "Python code reads credentials",
    _REMEDIATE, "Model code reads credential-like environment variables or credential files "
    "(~/.ssh, ~/.aws, ~/.netrc, the Hugging Face token).",
)  # fmt: skip
FILE_WRITE = rule(
    "remote-code.file-write", Severity.MEDIUM, "Python code writes or deletes files",
    "Check what is written; model code should only write inside its save directory.",
    "Model code opens files for writing or moves/removes files.",
)  # fmt: skip
FILE_WRITE_OUTSIDE = rule(
    "remote-code.file-write-outside", Severity.HIGH, "Python code writes outside the model",
    _REMEDIATE, "Model code writes to absolute, home (~), parent (..), /etc or /tmp paths.",
)  # fmt: skip
DOWNLOAD = rule(
    "remote-code.download", Severity.HIGH, "Python code downloads files", _REMEDIATE,
    "Model code fetches files or code at run time (hub downloads, torch.hub, urlretrieve); "
    "high when this happens at import time, medium inside functions.",
)  # fmt: skip
OBFUSCATION = rule(
    "remote-code.obfuscation", Severity.HIGH, "Python code contains an encoded blob",
    _REMEDIATE, "A long high-entropy, base64 or hex string literal: a typical way to hide "
    "a payload.",
)  # fmt: skip

MAX_PER_RULE = 50
_HEX_RE = re.compile(r"[0-9a-fA-F\n]{200,}")
_B64_RE = re.compile(r"[A-Za-z0-9+/=_\-\n]{200,}")
_OPEN_FUNCS = frozenset({"open", "io.open", "codecs.open", "os.open", "os.fdopen"})
_WRITE_METHODS = frozenset({"write_text", "write_bytes", "touch", "symlink_to", "unlink"})
_ENV_CALLS = frozenset(
    {"os.getenv", "os.getenvb", "os.environ.get", "os.environ.pop", "os.environ.setdefault"}
)
_IMPORTERS = frozenset({"__import__", "importlib.import_module"})
_HOME_FUNCS = frozenset(
    {"os.path.expanduser", "os.path.expandvars", "pathlib.Path.home", "tempfile.gettempdir"}
)
_BUILTINS = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "getattr", "execfile", "breakpoint"}
)


@dataclass(frozen=True)
class _Tables:
    categories: dict[str, re.Pattern[str]]
    cred_env: re.Pattern[str]
    cred_paths: tuple[str, ...]


@functools.cache
def _tables() -> _Tables:
    raw: dict[str, Any] = load_yaml("remote_code_apis.yaml")
    cats = ("network", "process", "dynamic_code", "decoders", "download", "env", "file_write")
    categories = {
        c: re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in raw[c])) for c in cats
    }
    words = "|".join(re.escape(w) for w in raw["credential_env_words"])
    return _Tables(categories, re.compile(words, re.I), tuple(raw["credential_paths"]))


def _sniff(head: bytes, f: FileInput) -> bool:
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"#!") and b"python" in first


@format_scanner("python", extensions=(".py", ".pyw"), sniff=_sniff)
def scan_python(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Audit a Python source file by parsing it (never importing it)."""
    limit = ctx.limits.max_text_bytes
    if f.size > limit:
        yield ctx.finding(UNSCANNABLE, f, evidence=f"{f.size} bytes (limit {limit})")
        return
    text = f.read_text(limit)
    if text is None:
        yield ctx.finding(MALFORMED, f, evidence="not UTF-8 text")
        return
    try:
        tree = ast.parse(text, filename=f.path)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        line = getattr(e, "lineno", None)
        yield ctx.finding(MALFORMED, f, line=line, evidence=f"{type(e).__name__}: {e}")
        return
    yield from _Analyzer(f, ctx, text, tree).run()


def shannon_entropy(s: str | bytes) -> float:
    """Bits per symbol of ``s`` (0.0 for empty input)."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


class _Analyzer:
    """One file's audit: import resolution, a scope-aware walk, capped findings."""

    def __init__(self, f: FileInput, ctx: ScanContext, text: str, tree: ast.Module) -> None:
        self.f, self.ctx, self.tree = f, ctx, tree
        self.lines = text.splitlines()
        self.t = _tables()
        self.aliases: dict[str, str] = {}
        self.local_names: set[str] = set()
        self.decoded_names: set[str] = set()
        self.docstrings: set[int] = set()
        self.seen: set[tuple[str, int]] = set()
        self.counts: Counter[str] = Counter()
        self.out: list[Finding] = []
        self.rules: dict[str, tuple[Rule, Severity]] = {}

    # -- driver -------------------------------------------------------------------------

    def run(self) -> Iterator[Finding]:
        self._prepass()
        stack: list[tuple[ast.AST, bool]] = [(self.tree, False)]
        while stack:
            node, deferred = stack.pop()
            self._visit(node, deferred)
            stack.extend(reversed(list(_children(node, deferred))))
        yield from self.out
        yield from self._overflow()

    def _prepass(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = (
                        a.name if a.asname else a.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    if a.name != "*":
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.local_names.add(node.name)
                _note_docstring(node, self.docstrings)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.local_names.add(node.id)
            elif isinstance(node, ast.arg):
                self.local_names.add(node.arg)
            elif isinstance(node, ast.Assign) and self._has_decoder(node.value):
                self.decoded_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        _note_docstring(self.tree, self.docstrings)

    def _emit(
        self, r: Rule, node: ast.AST, *, severity: Severity | None = None, note: str = ""
    ) -> None:
        line = getattr(node, "lineno", 0)
        if (r.id, line) in self.seen:
            return
        self.seen.add((r.id, line))
        self.counts[r.id] += 1
        self.rules.setdefault(r.id, (r, severity or r.severity))
        if self.counts[r.id] > MAX_PER_RULE:
            return
        src = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        evidence = f"{src}  [{note}]" if note else src
        self.out.append(
            self.ctx.finding(r, self.f, line=line or None, evidence=evidence, severity=severity)
        )

    def _overflow(self) -> Iterator[Finding]:
        for rid, n in self.counts.items():
            if n > MAX_PER_RULE:
                r, sev = self.rules[rid]
                yield self.ctx.finding(
                    r,
                    self.f,
                    title=f"{r.title}: {n - MAX_PER_RULE} more occurrences not listed",
                    severity=sev,
                    evidence=f"{n} occurrences in total",
                    extra={"count": n},
                )

    # -- name resolution ------------------------------------------------------------------

    def qualname(self, node: ast.AST) -> str | None:
        """Fully qualified name of an expression (``sp.run`` → ``subprocess.run``)."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        base = self._base_name(node)
        if base is None:
            return None
        name = ".".join([base, *reversed(parts)])
        for prefix in ("builtins.", "__builtins__."):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        return name

    def _base_name(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id == "__builtins__":
                return "builtins"
            return node.id if node.id in _BUILTINS and node.id not in self.local_names else None
        if isinstance(node, ast.Call):
            func = self.qualname(node.func)
            arg = _const_str(node.args[1] if func == "getattr" and len(node.args) > 1 else None)
            if func == "getattr" and arg is not None:
                inner = self.qualname(node.args[0])
                return f"{inner}.{arg}" if inner else None
            if func in _IMPORTERS and node.args:
                return _const_str(node.args[0])
        if isinstance(node, ast.Subscript):
            key = _const_str(node.slice)
            inner = self.qualname(node.value)
            if key is not None and inner in ("builtins", "builtins.__dict__"):
                return key
        return None

    def category(self, name: str | None, cat: str) -> bool:
        return name is not None and self.t.categories[cat].fullmatch(name) is not None

    def _has_decoder(self, node: ast.AST) -> bool:
        for n in _bounded_walk(node):
            if isinstance(n, ast.Call) and self.category(self.qualname(n.func), "decoders"):
                return True
            if isinstance(n, ast.Name) and n.id in self.decoded_names:
                return True
        return False

    # -- checks -----------------------------------------------------------------------------

    def _visit(self, node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                self._check_ref(a.name, node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                self._check_ref(f"{node.module}.{a.name}" if a.name != "*" else node.module, node)
        elif isinstance(node, ast.Call):
            self._check_call(node, deferred)
        elif isinstance(node, ast.Subscript):
            self._check_env_subscript(node)
        elif isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            self._check_ref(self.qualname(node), node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            self._check_constant(node)

    def _check_ref(self, name: str | None, node: ast.AST) -> None:
        if name is None:
            return
        if self.category(name, "process"):
            self._emit(PROCESS, node)
        elif self.category(name, "dynamic_code"):
            if (OBFUSCATED_EXEC.id, _line(node)) not in self.seen:
                self._emit(DYNAMIC, node)
        elif self.category(name, "network"):
            self._emit(NETWORK, node)
        elif self.category(name, "env") and (CREDENTIAL_READ.id, _line(node)) not in self.seen:
            self._emit(ENV_READ, node)

    def _check_call(self, node: ast.Call, deferred: bool) -> None:
        name = self.qualname(node.func)
        at_import = "runs at import time" if not deferred else ""
        if self.category(name, "dynamic_code") and any(self._has_decoder(a) for a in node.args):
            self._emit(OBFUSCATED_EXEC, node)
        if self.category(name, "process"):
            self._emit(PROCESS, node, note=at_import)
        elif self.category(name, "download"):
            sev = Severity.MEDIUM if deferred else Severity.HIGH
            self._emit(DOWNLOAD, node, severity=sev, note=at_import)
            if self.category(name, "network") and not deferred:
                self._emit(NETWORK, node, severity=Severity.CRITICAL, note=at_import)
        elif self.category(name, "network") and not deferred:
            self._emit(NETWORK, node, severity=Severity.CRITICAL, note=at_import)
        if name in _ENV_CALLS and node.args:
            self._check_env_name(_const_str(node.args[0]), node)
        self._check_write(node, name, deferred)

    def _check_env_subscript(self, node: ast.Subscript) -> None:
        if self.qualname(node.value) in ("os.environ", "os.environb"):
            self._check_env_name(_const_str(node.slice), node)

    def _check_env_name(self, var: str | None, node: ast.AST) -> None:
        if var is not None and self.t.cred_env.search(var):
            self._emit(CREDENTIAL_READ, node, note=f"environment variable {var}")

    def _check_write(self, node: ast.Call, name: str | None, deferred: bool) -> None:
        target: ast.AST | None = None
        if name in _OPEN_FUNCS and _opens_for_write(node):
            target = node.args[0] if node.args else node
        elif self.category(name, "file_write"):  # source and destination both matter
            target = node
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _WRITE_METHODS:
            target = node.func.value
        if target is None:
            return
        if self._outside_path(target):
            self._emit(FILE_WRITE_OUTSIDE, node)
        else:
            self._emit(FILE_WRITE, node, severity=Severity.LOW if deferred else None)

    def _outside_path(self, node: ast.AST) -> bool:
        for n in _bounded_walk(node):
            s = _const_str(n)
            if s is not None and _is_outside(s):
                return True
            if isinstance(n, ast.Call) and self.qualname(n.func) in _HOME_FUNCS:
                return True
            if isinstance(n, ast.Attribute) and n.attr == "home":
                return True
        return False

    def _check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if not isinstance(value, (str, bytes)):
            return
        if isinstance(value, str) and any(p in value for p in self.t.cred_paths):
            hit = next(p for p in self.t.cred_paths if p in value)
            self._emit(CREDENTIAL_READ, node, note=f"path {hit}")
        if len(value) > 200 and id(node) not in self.docstrings and _looks_encoded(value):
            self._emit(OBFUSCATION, node, note=f"{len(value)}-character literal")


# --- helpers -------------------------------------------------------------------------------


def _children(node: ast.AST, deferred: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Child nodes and whether they run later than import (function bodies, __main__)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for d in node.decorator_list:
            yield d, deferred
        yield node.args, deferred  # defaults are evaluated at definition time
        for s in node.body:
            yield s, True
        return
    if isinstance(node, ast.Lambda):
        yield node.args, deferred
        yield node.body, True
        return
    if isinstance(node, ast.If) and _is_main_guard(node.test):
        yield node.test, deferred
        for s in node.body:
            yield s, True
        for s in node.orelse:
            yield s, deferred
        return
    for c in ast.iter_child_nodes(node):
        yield c, deferred


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(_const_str(c) == "__main__" for c in test.comparators)
    )


def _note_docstring(node: ast.AST, out: set[int]) -> None:
    body = getattr(node, "body", None)
    first = body[0] if isinstance(body, list) and body else None
    if isinstance(first, ast.Expr) and _const_str(first.value) is not None:
        out.add(id(first.value))


def _bounded_walk(node: ast.AST, limit: int = 200) -> Iterator[ast.AST]:
    """Breadth-first walk that stops after ``limit`` nodes (arguments are small)."""
    for i, n in enumerate(ast.walk(node)):
        if i >= limit:
            return
        yield n


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _line(node: ast.AST) -> int:
    return int(getattr(node, "lineno", 0))


def _opens_for_write(node: ast.Call) -> bool:
    mode = node.args[1] if len(node.args) > 1 else None
    for kw in node.keywords:
        if kw.arg in ("mode", "flags"):
            mode = kw.value
    s = _const_str(mode)
    if s is not None:
        return any(c in s for c in "wax+")
    # os.open flags (O_WRONLY | O_CREAT …) or a computed mode: assume writing.
    return mode is not None and not isinstance(mode, ast.Constant)


def _is_outside(path: str) -> bool:
    p = path.strip().replace("\\", "/")
    return (
        p.startswith(("/", "~"))
        or "../" in p
        or p == ".."
        or re.match(r"^[A-Za-z]:/", p) is not None
        or "$HOME" in p
    )


def _looks_encoded(value: str | bytes) -> bool:
    if isinstance(value, bytes):
        return shannon_entropy(value[:65536]) > 5.5
    sample = value[:65536]
    # Prose and code have spaces; encoded payloads do not.
    if sample.count(" ") + sample.count("\t") > len(sample) * 0.05:
        return False
    entropy = shannon_entropy(sample)
    if entropy < 3.0:  # "aaaa…", "----…": padding, not a payload
        return False
    return bool(_HEX_RE.fullmatch(sample) or _B64_RE.fullmatch(sample)) or entropy > 4.5

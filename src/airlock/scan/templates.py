"""Chat templates (Jinja): server-side template injection and hidden instructions.

A chat template is Jinja source that inference servers render for every request.
Rendered outside a sandbox, attribute walks such as ``cycler.__init__.__globals__``
reach ``os``; rendered anywhere, literal text in the template is silently added to
every conversation. This module only *parses* templates (``env.parse``): nothing is
rendered, compiled or executed. Judgement is done on the Jinja AST.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airlock.data import load_yaml
from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner

MALFORMED = rule(
    "template.malformed",
    Severity.MEDIUM,
    "Chat template does not parse",
    "Inference servers will fail on (or silently fall back from) this template. Replace it "
    "with the template published by the model's original authors.",
    "The Jinja chat template has a syntax error.",
)
SSTI = rule(
    "template.ssti",
    Severity.CRITICAL,
    "Chat template reaches into Python internals (template injection)",
    "Do not load this model in any server that renders its template. Replace the chat "
    "template with a known-good one; a chat template never needs dunder attributes.",
    "The template walks Python object internals (__class__, __globals__ …), the primitive "
    "of server-side template injection that leads to code execution.",
)
GADGET = rule(
    "template.gadget",
    Severity.LOW,
    "Chat template references a template-injection gadget",
    "Check why the template needs this global; chat templates normally only use messages, "
    "tools, add_generation_prompt and raise_exception.",
    "The template names a Jinja global (cycler, joiner, lipsum …) known as an SSTI gadget.",
)
EXTERNAL = rule(
    "template.external-reference",
    Severity.MEDIUM,
    "Chat template loads other templates",
    "A chat template should be self-contained. Inline what it needs or replace it.",
    "{% include %}, {% import %} or {% extends %} pull in template source from elsewhere.",
)
HIDDEN = rule(
    "template.hidden-instruction",
    Severity.HIGH,
    "Chat template injects instructions into every conversation",
    "Read the literal text the template emits. Remove instructions you did not write, or "
    "replace the template with the original authors' version.",
    "Literal instruction-like text is emitted by the template regardless of the user's "
    "messages: a prompt injection baked into the model files.",
)
DEFAULT_PROMPT = rule(
    "template.default-system-prompt",
    Severity.INFO,
    "Chat template has a default system prompt",
    "Know that this text is sent with conversations; override it with your own system "
    "message if it does not fit your use.",
    "The template emits fixed free text (usually a default system prompt).",
)
INVISIBLE = rule(
    "template.invisible-unicode",
    Severity.HIGH,
    "Chat template contains invisible or bidirectional Unicode",
    "Invisible characters hide text from reviewers. Remove them or replace the template.",
    "Zero-width, bidi-override or tag characters can smuggle hidden instructions.",
)
TOO_LARGE = rule(
    "template.too-large",
    Severity.MEDIUM,
    "Chat template too large to audit",
    "Real chat templates are a few kilobytes. Review this one by hand or replace it with the "
    "original authors' template.",
    "The template exceeds the size airlock parses, so only invisible characters were checked.",
)
URL = rule(
    "template.url",
    Severity.MEDIUM,
    "Chat template contains a URL",
    "A chat template has no reason to mention URLs; check what the model is told to do with it.",
    "A URL in a chat template may steer the model to exfiltrate or fetch content.",
)

_INVISIBLE_RE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
_URL_RE = re.compile(r"(?i)\b(?:https?|ftp)://[^\s'\"<>]+|\bwww\.[a-z0-9-]+\.[a-z]{2,}")
_DUNDER_RE = re.compile(r"__[A-Za-z_][A-Za-z0-9_]*__")
_FMT_WIDTH_RE = re.compile(r"\d{3,}")
_MAX_FOLD = 1024
_MAX_PER_RULE = 50
# Published chat templates are 1-30 KB; Jinja parses ~0.5 MB/s, so bound the work.
MAX_TEMPLATE_CHARS = 1024 * 1024


@dataclass(frozen=True)
class _Tables:
    markup: re.Pattern[str]
    tool_names: frozenset[str]
    strong: re.Pattern[str]
    weak: re.Pattern[str]
    long_text: int
    ssti_attrs: frozenset[str]
    gadgets: frozenset[str]
    quiet_gadgets: frozenset[str]


@functools.cache
def _tables() -> _Tables:
    raw: dict[str, Any] = load_yaml("templates_rules.yaml")
    return _Tables(
        markup=re.compile("|".join(f"(?:{p})" for p in raw["markup_patterns"])),
        tool_names=frozenset(raw["tool_names"]),
        strong=re.compile("|".join(raw["strong_markers"]), re.IGNORECASE),
        weak=re.compile("|".join(raw["weak_markers"]), re.IGNORECASE),
        long_text=int(raw["long_text_chars"]),
        ssti_attrs=frozenset(raw["ssti_attributes"]),
        gadgets=frozenset(raw["gadget_names"]),
        quiet_gadgets=frozenset(raw["quiet_gadget_names"]),
    )


class _GenerationTag(Extension):
    """Parse HF's ``{% generation %}…{% endgeneration %}`` block (markup only, no effect)."""

    tags = {"generation"}  # noqa: RUF012  (jinja2's Extension API uses a class attribute)

    def parse(self, parser: Parser) -> nodes.Node | list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


@functools.cache
def _env() -> ImmutableSandboxedEnvironment:
    # The same extensions transformers enables, so valid HF templates parse.
    return ImmutableSandboxedEnvironment(
        extensions=["jinja2.ext.loopcontrols", _GenerationTag],
    )


def parse_template(text: str) -> nodes.Template:
    """Parse (never render) a template.

    Raises:
        Exception: any Jinja/recursion error for a bad template (callers turn it into a finding).
    """
    return _env().parse(text)


# --- the analysis ----------------------------------------------------------------------


class _Analysis:
    """State of one template's audit: where findings go, and per-rule counts."""

    def __init__(self, where: str, ctx: ScanContext, location: str | None) -> None:
        self.where, self.ctx, self.location = where, ctx, location
        self.t = _tables()
        self.counts: dict[str, int] = {}
        self.out: list[Finding] = []
        self.seen: set[tuple[str, int | None, str]] = set()
        self.memo: dict[int, Any] = {}  # folded value per node id: keeps folding linear

    def emit(self, r: Any, lineno: int | None, evidence: str, **kw: Any) -> None:
        key = (r.id, lineno, evidence)
        if key in self.seen:  # the same URL/constant reached by two checks
            return
        self.seen.add(key)
        n = self.counts.get(r.id, 0)
        self.counts[r.id] = n + 1
        if n >= _MAX_PER_RULE:
            return
        if self.location is None:
            self.out.append(self.ctx.finding(r, self.where, line=lineno, evidence=evidence, **kw))
        else:
            loc = self.location if lineno is None else f"{self.location}, template line {lineno}"
            self.out.append(self.ctx.finding(r, self.where, location=loc, evidence=evidence, **kw))


def analyze_template(
    text: str, where: str, ctx: ScanContext, location: str | None = None
) -> Iterator[Finding]:
    """Audit chat-template source without rendering it.

    Args:
        text: the Jinja source.
        where: display path of the file holding the template.
        ctx: scan context.
        location: where inside the file (``key chat_template``) for embedded templates;
            when ``None`` template line numbers are reported as file lines.

    Yields:
        Findings: malformed, SSTI primitives, gadgets, include/import, hidden instructions,
        default prompts, invisible Unicode and URLs.
    """
    a = _Analysis(where, ctx, location)
    _check_invisible(a, text)
    if len(text) > MAX_TEMPLATE_CHARS:
        a.emit(TOO_LARGE, None, f"{len(text)} characters (limit {MAX_TEMPLATE_CHARS})")
        yield from a.out
        return
    try:
        tree = parse_template(text)
    except Exception as e:  # TemplateSyntaxError, RecursionError, lexer errors…
        a.emit(MALFORMED, getattr(e, "lineno", None), f"{type(e).__name__}: {e}")
        yield from a.out
        return
    _walk(a, tree)
    yield from a.out


def _check_invisible(a: _Analysis, text: str) -> None:
    # Line numbers are counted incrementally: one pass over the text whatever the hits.
    line, last, reported = 1, 0, set()
    for m in _INVISIBLE_RE.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        if line in reported:
            continue
        reported.add(line)
        context = text[max(0, m.start() - 30) : m.end() + 30]
        a.emit(INVISIBLE, line, f"U+{ord(m.group()):04X} in: {context}")
        if len(reported) >= _MAX_PER_RULE:
            return


def _walk(a: _Analysis, tree: nodes.Node) -> None:
    """Iterative walk (templates may nest deeply) carrying the 'tool branch' flag."""
    stack: list[tuple[nodes.Node, bool]] = [(tree, False)]
    while stack:
        node, tool_branch = stack.pop()
        _check_node(a, node, tool_branch)
        for child, flag in _children(a, node, tool_branch):
            stack.append((child, flag))


def _children(a: _Analysis, node: nodes.Node, tool: bool) -> Iterator[tuple[nodes.Node, bool]]:
    if isinstance(node, nodes.If):
        yield node.test, tool
        gated = tool or _mentions_tools(a, node.test)
        yield from ((c, gated) for c in node.body)
        yield from ((c, tool) for c in node.elif_)
        yield from ((c, tool) for c in node.else_)
        return
    if isinstance(node, nodes.For):
        gated = tool or _mentions_tools(a, node.iter)
        yield node.iter, tool
        yield from ((c, gated) for c in node.body)
        yield from ((c, tool) for c in node.else_)
        if node.test is not None:
            yield node.test, tool
        return
    yield from ((c, tool) for c in node.iter_child_nodes())


def _mentions_tools(a: _Analysis, expr: nodes.Node) -> bool:
    for n in _iter_nodes(expr):
        if isinstance(n, nodes.Name) and n.name in a.t.tool_names:
            return True
        if isinstance(n, nodes.Getattr) and n.attr in a.t.tool_names:
            return True
        if isinstance(n, nodes.Const) and isinstance(n.value, str) and n.value in a.t.tool_names:
            return True
    return False


def _iter_nodes(root: nodes.Node) -> Iterator[nodes.Node]:
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.iter_child_nodes())


def _check_node(a: _Analysis, node: nodes.Node, tool_branch: bool) -> None:
    lineno = getattr(node, "lineno", None)
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        a.emit(EXTERNAL, lineno, f"{{% {type(node).__name__.lower()} %}}")
    elif isinstance(node, nodes.Output):
        for part in node.nodes:
            for text in _emitted_strings(part):
                _judge_text(a, text, lineno, tool_branch)
    elif isinstance(node, (nodes.Assign, nodes.AssignBlock)):
        value = node.node if isinstance(node, nodes.Assign) else None
        if value is not None:
            for text in _emitted_strings(value):
                _judge_text(a, text, lineno, tool_branch)
    elif isinstance(node, nodes.Expr):
        _check_expr(a, node, lineno)


def _check_expr(a: _Analysis, node: nodes.Expr, lineno: int | None) -> None:
    t = a.t
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        _check_const_string(a, node.value, lineno)
    elif isinstance(node, nodes.Getattr):
        if node.attr in t.ssti_attrs or _DUNDER_RE.fullmatch(node.attr):
            a.emit(SSTI, lineno, f"attribute .{node.attr}")
        elif isinstance(node.node, nodes.Name) and node.node.name in t.gadgets | t.quiet_gadgets:
            a.emit(SSTI, lineno, f"{node.node.name}.{node.attr}")
    elif isinstance(node, nodes.Getitem):
        if isinstance(node.node, nodes.Name) and node.node.name in t.gadgets | t.quiet_gadgets:
            a.emit(SSTI, lineno, f"{node.node.name}[...]")
    elif isinstance(node, nodes.Name) and node.name in t.gadgets:
        a.emit(GADGET, lineno, f"global {node.name}")
    if _is_computed_attr(node):
        a.emit(SSTI, lineno, "|attr() with a computed attribute name")
    if not isinstance(node, nodes.Const) and isinstance(
        node, (nodes.BinExpr, nodes.Concat, nodes.Filter, nodes.Call)
    ):
        folded = _fold(node, 0, a.memo)
        if isinstance(folded, str) and _is_dangerous_name(a, folded):
            a.emit(SSTI, lineno, f"string built at runtime: {folded!r}")


def _is_computed_attr(node: nodes.Expr) -> bool:
    if not (isinstance(node, nodes.Filter) and node.name == "attr"):
        return False
    return not all(isinstance(x, nodes.Const) for x in node.args)


def _is_dangerous_name(a: _Analysis, s: str) -> bool:
    return bool(_DUNDER_RE.search(s)) or s in a.t.ssti_attrs


def _check_const_string(a: _Analysis, s: str, lineno: int | None) -> None:
    m = _DUNDER_RE.search(s)
    if m:
        a.emit(SSTI, lineno, f"string constant {m.group()!r}")
    for u in _URL_RE.finditer(s):
        a.emit(URL, lineno, u.group())


def _emitted_strings(expr: nodes.Node) -> Iterator[str]:
    """Literal strings an output expression writes (not dict keys, tests or call args)."""
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, nodes.TemplateData):
            yield n.data
        elif isinstance(n, nodes.Const) and isinstance(n.value, str):
            yield n.value
        elif isinstance(n, (nodes.Add, nodes.Mod)):
            stack.extend((n.left, n.right))
        elif isinstance(n, nodes.Concat):
            stack.extend(n.nodes)
        elif isinstance(n, nodes.CondExpr):
            stack.append(n.expr1)
            if n.expr2 is not None:
                stack.append(n.expr2)
        elif isinstance(n, nodes.Filter) and n.node is not None:
            stack.append(n.node)


def _judge_text(a: _Analysis, text: str, lineno: int | None, tool_branch: bool) -> None:
    """Classify literal text: markup (ignored), default prompt (info) or instruction (high)."""
    for u in _URL_RE.finditer(text):
        a.emit(URL, lineno, u.group())
    free = " ".join(a.t.markup.sub(" ", text).split())
    if len(re.findall(r"[A-Za-z]{2,}", free)) < 3:
        return
    strong = a.t.strong.search(free)
    weak = None if tool_branch else a.t.weak.search(free)
    long_prose = not tool_branch and len(free) > a.t.long_text
    marker = strong or weak
    if marker is not None or long_prose:
        why = marker.group() if marker is not None else f"{len(free)} chars of prose"
        a.emit(HIDDEN, lineno, f"[{why}] {text.strip()}", extra={"marker": why})
    elif not tool_branch:
        a.emit(DEFAULT_PROMPT, lineno, free)


# --- constant folding of string-building expressions -------------------------------------


def _fold(node: nodes.Node, depth: int, memo: dict[int, Any]) -> Any:
    """Evaluate a constant string expression (``'__cla' ~ 'ss__'``) without rendering.

    Returns ``None`` when the value is not a compile-time constant or would be too large.
    """
    if depth > 32:
        return None
    key = id(node)
    if key not in memo:
        v = _fold_inner(node, depth + 1, memo)
        memo[key] = None if isinstance(v, (str, list)) and len(v) > _MAX_FOLD else v
    return memo[key]


def _fold_inner(node: nodes.Node, depth: int, memo: dict[int, Any]) -> Any:
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, (str, int)) else None
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_fold(x, depth, memo) for x in node.items]
        return None if any(x is None for x in items) else items
    if isinstance(node, nodes.Concat):
        parts = [_fold(x, depth, memo) for x in node.nodes]
        return None if any(x is None for x in parts) else "".join(str(p) for p in parts)
    if isinstance(node, nodes.BinExpr):
        return _fold_binop(node, _fold(node.left, depth, memo), _fold(node.right, depth, memo))
    if isinstance(node, nodes.Filter) and node.node is not None:
        args = [_fold(x, depth, memo) for x in node.args]
        return _apply(node.name, _fold(node.node, depth, memo), args)
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        args = [_fold(x, depth, memo) for x in node.args]
        return _apply(node.node.attr, _fold(node.node.node, depth, memo), args)
    return None


def _fold_binop(node: nodes.BinExpr, left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if isinstance(node, nodes.Add) and isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(node, nodes.Mul):
        if isinstance(left, str) and isinstance(right, int) and 0 <= right <= 64:
            return left * right
        if isinstance(right, str) and isinstance(left, int) and 0 <= left <= 64:
            return right * left
    if isinstance(node, nodes.Mod) and isinstance(left, str):
        return _safe_format(left, tuple(right) if isinstance(right, list) else (right,), pct=True)
    return None


def _apply(name: str, value: Any, args: list[Any]) -> Any:
    """The few string filters/methods attackers use to build names, on constants only."""
    if value is None or any(x is None for x in args):
        return None
    if name == "join" and isinstance(value, list):
        sep = args[0] if args and isinstance(args[0], str) else ""
        return sep.join(str(v) for v in value)
    if not isinstance(value, str):
        return None
    simple = {
        "reverse": value[::-1],
        "lower": value.lower(),
        "upper": value.upper(),
        "string": value,
        "trim": value.strip(),
        "strip": value.strip(),
    }
    if name in simple and not args:
        return simple[name]
    if name == "replace" and len(args) == 2 and all(isinstance(x, str) for x in args):
        return value.replace(args[0], args[1]) if len(args[1]) <= 64 else None
    if name == "format":
        return _safe_format(value, tuple(args), pct="%" in value)
    return None


def _safe_format(fmt: str, args: tuple[Any, ...], *, pct: bool) -> str | None:
    # Large widths ('%999999999s') would allocate without bound: refuse them.
    if _FMT_WIDTH_RE.search(fmt) or len(fmt) > _MAX_FOLD:
        return None
    try:
        return fmt % args if pct else fmt.format(*args)
    except Exception:
        return None


# --- the format scanner --------------------------------------------------------------------


@format_scanner("chat-template", filenames=("*.jinja", "*.jinja2", "*.j2"))
def scan_chat_template(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan a standalone chat template (``chat_template.jinja`` or a GGUF-embedded one)."""
    text = f.read_text(ctx.limits.max_text_bytes)
    if text is None:
        yield ctx.finding(MALFORMED, f, evidence="not UTF-8 text")
        return
    yield from analyze_template(text, f.path, ctx)

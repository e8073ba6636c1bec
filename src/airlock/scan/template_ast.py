"""The Jinja side of the chat-template audit: parse (never render) and walk the AST.

Kept apart from :mod:`airlock.scan.templates` so that Jinja is imported only when a
scan meets a template. Nothing here renders, compiles or executes template source.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airlock.findings import Severity
from airlock.scan.templates import (
    DEFAULT_PROMPT,
    EXTERNAL,
    FIXED,
    GADGET,
    HIDDEN,
    SSTI,
    URL,
    _Analysis,
)

_URL_RE = re.compile(r"(?i)\b(?:https?|ftp)://[^\s'\"<>]+|\bwww\.[a-z0-9-]+\.[a-z]{2,}")
_DUNDER_RE = re.compile(r"__[A-Za-z_][A-Za-z0-9_]*__")
_FMT_WIDTH_RE = re.compile(r"\d{3,}")
_MAX_FOLD = 1024


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


def walk(a: _Analysis, tree: nodes.Node) -> None:
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
    """Classify literal text the template emits.

    Measured on 70 published chat templates (llama.cpp's collection): vendors routinely
    add default system prompts, tool-call formats and reasoning-mode instructions. Those
    are listed (``fixed-instructions``, low) for a reviewer to read; only concealment,
    override or exfiltration wording is a hidden instruction (high; medium inside a
    tool-calling branch, where vendors' boilerplate lives and which runs only with tools).
    """
    for u in _URL_RE.finditer(text):
        a.emit(URL, lineno, u.group())
    free = " ".join(a.t.markup.sub(" ", text).split())
    if len(re.findall(r"[A-Za-z]{2,}", free)) < 3:
        return
    strong = a.t.strong.search(free)
    if strong is not None:
        sev = Severity.MEDIUM if tool_branch else None
        why = strong.group()
        a.emit(HIDDEN, lineno, f"[{why}] {text.strip()}", severity=sev, extra={"marker": why})
        return
    if tool_branch:
        return
    weak = a.t.weak.search(free)
    if weak is not None or len(free) > a.t.long_text:
        why = weak.group() if weak is not None else f"{len(free)} chars of prose"
        a.emit(FIXED, lineno, f"[{why}] {text.strip()}", extra={"marker": why})
    else:
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

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
FIXED = rule(
    "template.fixed-instructions",
    Severity.LOW,
    "Chat template adds fixed instructions",
    "Read the text: vendors often add tool-call formats or reasoning instructions. Make "
    "sure it matches the original authors' template and suits your use.",
    "The template emits instruction-like text (must, always, do not …) or long prose in "
    "every conversation; normal for many vendors, worth one read.",
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
    # Jinja is imported only when a template is met: most scans never need it.
    from airlock.scan.template_ast import parse_template, walk

    try:
        tree = parse_template(text)
    except Exception as e:  # TemplateSyntaxError, RecursionError, lexer errors…
        a.emit(MALFORMED, getattr(e, "lineno", None), f"{type(e).__name__}: {e}")
        yield from a.out
        return
    walk(a, tree)
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


# --- the format scanner --------------------------------------------------------------------


@format_scanner("chat-template", filenames=("*.jinja", "*.jinja2", "*.j2"))
def scan_chat_template(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Scan a standalone chat template (``chat_template.jinja`` or a GGUF-embedded one)."""
    text = f.read_text(ctx.limits.max_text_bytes)
    if text is None:
        yield ctx.finding(MALFORMED, f, evidence="not UTF-8 text")
        return
    yield from analyze_template(text, f.path, ctx)

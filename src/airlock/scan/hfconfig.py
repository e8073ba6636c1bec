"""Hugging Face JSON configs: remote-code hooks (``auto_map``), chat templates, model facts.

``auto_map`` tells ``transformers`` which Python file of the repository implements a
class; with ``trust_remote_code=True`` that file is imported, i.e. executed. A
reference of the form ``other/repo--module.Class`` even pulls code from *another*
repository. Chat templates embedded in ``tokenizer_config.json`` or
``chat_template.json`` are audited by :mod:`airlock.scan.templates`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from airlock.findings import Finding, Severity, rule
from airlock.scan.base import FileInput, ScanContext, format_scanner
from airlock.scan.templates import analyze_template

MALFORMED = rule(
    "hfconfig.malformed",
    Severity.LOW,
    "Configuration file is not valid JSON",
    "Loaders will fail on this file. Download it again or get it from the original publisher.",
    "A Hugging Face configuration file could not be parsed as a JSON object.",
)
AUTO_MAP = rule(
    "remote-code.auto-map",
    Severity.HIGH,
    "Model needs trust_remote_code (auto_map)",
    "Loading this model with trust_remote_code=True imports the repository's Python files. "
    "Review those files (airlock scans them too), pin the revision, or use a model whose "
    "architecture is built into transformers.",
    "auto_map (or custom_pipelines) maps classes to Python modules shipped in the repository.",
)
EXTERNAL_AUTO_MAP = rule(
    "remote-code.external-auto-map",
    Severity.CRITICAL,
    "auto_map loads code from another repository",
    "The code that would run is not in the files you scanned and can change at any time. "
    "Do not use trust_remote_code with this model; vendor and review the code instead.",
    "An auto_map entry of the form 'owner/repo--module.Class' fetches Python from another repo.",
)

CONFIG_NAMES = (
    "config.json",
    "tokenizer_config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "chat_template.json",
    "adapter_config.json",
)


@format_scanner("hf-config", filenames=CONFIG_NAMES)
def scan_hf_config(f: FileInput, ctx: ScanContext) -> Iterator[Finding]:
    """Audit one Hugging Face JSON configuration file."""
    data = _load_json(f, ctx)
    if isinstance(data, Finding):
        yield data
        return
    yield from _auto_map(f, ctx, data)
    yield from _custom_pipelines(f, ctx, data)
    yield from _chat_templates(f, ctx, data)
    if f.name == "config.json":
        _model_fact(f, ctx, data)


def _load_json(f: FileInput, ctx: ScanContext) -> dict[str, Any] | Finding:
    limit = ctx.limits.max_text_bytes
    if f.size > limit:
        return ctx.finding(MALFORMED, f, evidence=f"{f.size} bytes, more than the {limit} read")
    text = f.read_text(limit)
    if text is None:
        return ctx.finding(MALFORMED, f, evidence="not UTF-8 text")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        return ctx.finding(MALFORMED, f, evidence=f"{type(e).__name__}: {e}")
    if not isinstance(data, dict):
        return ctx.finding(MALFORMED, f, evidence=f"top level is {type(data).__name__}")
    return data


def _class_refs(value: Any) -> list[str]:
    """``"mod.Cls"``, ``["mod.Slow", "mod.Fast"]`` (None allowed) → flat list of refs."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_external(ref: str) -> bool:
    # transformers syntax: "owner/repo--module.Class" (or "repo--module.Class").
    return "--" in ref


def _auto_map(f: FileInput, ctx: ScanContext, data: dict[str, Any]) -> Iterator[Finding]:
    amap = data.get("auto_map")
    if not isinstance(amap, dict) or not amap:
        return
    refs = {str(k): _class_refs(v) for k, v in amap.items()}
    summary = ", ".join(f"{k}: {' | '.join(v)}" for k, v in refs.items())
    yield ctx.finding(
        AUTO_MAP, f, location="key auto_map", evidence=summary, extra={"auto_map": refs}
    )
    for key, values in refs.items():
        for ref in values:
            if _is_external(ref):
                repo = ref.split("--", 1)[0]
                yield ctx.finding(
                    EXTERNAL_AUTO_MAP,
                    f,
                    location=f"key auto_map.{key}",
                    evidence=ref,
                    extra={"repository": repo},
                )


def _custom_pipelines(f: FileInput, ctx: ScanContext, data: dict[str, Any]) -> Iterator[Finding]:
    pipes = data.get("custom_pipelines")
    if not isinstance(pipes, dict):
        return
    for task, spec in pipes.items():
        impl = spec.get("impl") if isinstance(spec, dict) else None
        if isinstance(impl, str):
            rule_ = EXTERNAL_AUTO_MAP if _is_external(impl) else AUTO_MAP
            yield ctx.finding(rule_, f, location=f"key custom_pipelines.{task}.impl", evidence=impl)


def _chat_templates(f: FileInput, ctx: ScanContext, data: dict[str, Any]) -> Iterator[Finding]:
    tmpl = data.get("chat_template")
    if isinstance(tmpl, str):
        yield from analyze_template(tmpl, f.path, ctx, location="key chat_template")
    elif isinstance(tmpl, list):
        for i, item in enumerate(tmpl):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                name = item.get("name", i)
                loc = f"key chat_template[{name}]"
                yield from analyze_template(item["template"], f.path, ctx, location=loc)
    elif isinstance(tmpl, dict):  # {"default": "...", "tool_use": "..."}
        for name, text in tmpl.items():
            if isinstance(text, str):
                loc = f"key chat_template[{name}]"
                yield from analyze_template(text, f.path, ctx, location=loc)


def _model_fact(f: FileInput, ctx: ScanContext, data: dict[str, Any]) -> None:
    arch = data.get("architectures")
    archs = [a for a in arch if isinstance(a, str)] if isinstance(arch, list) else []
    model_type = data.get("model_type")
    fact: dict[str, Any] = {
        "path": f.path,
        "architectures": archs,
        "architecture": archs[0] if archs else None,
        "model_type": model_type if isinstance(model_type, str) else None,
        "format": "hf-config",
    }
    name = data.get("_name_or_path")
    if isinstance(name, str) and name:
        fact["name"] = name
    ctx.add_fact("model", fact)

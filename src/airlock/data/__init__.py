"""Data shipped with airlock (rules tables, licence facts, report templates).

``load_yaml`` reads a packaged YAML file with libyaml's C loader when PyYAML has it
(several times faster than the pure-Python one: start-up matters when CI scans in a
loop). Only airlock's own files come through here; untrusted YAML (model cards) is
parsed by the licence scanner with its own bounds.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any


def load_yaml(name: str) -> Any:
    """Parse ``airlock/data/<name>`` (safe constructors only)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = files("airlock.data").joinpath(name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, airlock's own file

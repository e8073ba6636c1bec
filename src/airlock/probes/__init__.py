"""Red-team campaigns against live model endpoints (``airlock probe``).

The library entry is :func:`run_campaign` (or :func:`arun_campaign` inside a loop)::

    from airlock.probes import TargetConfig, Selection, run_campaign
    result = run_campaign([TargetConfig("http://127.0.0.1:8000/v1", "qwen2.5-7b")],
                          selection=Selection(families=("injection",), quick=True))
    print(result.verdict, [p.probe for p in result.probes if p.failed])

Names are imported on first use, so ``import airlock.probes.model`` (the CLI does, for
option help) does not load the HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airlock.probes.campaign import (
        CampaignError,
        JudgeConfig,
        Selection,
        TargetConfig,
        arun_campaign,
        run_campaign,
    )
    from airlock.probes.result import CampaignResult
    from airlock.probes.runner import Progress, RunOptions, SamplingOptions

_WHERE = {
    "CampaignError": "campaign",
    "JudgeConfig": "campaign",
    "Selection": "campaign",
    "TargetConfig": "campaign",
    "arun_campaign": "campaign",
    "run_campaign": "campaign",
    "CampaignResult": "result",
    "Progress": "runner",
    "RunOptions": "runner",
    "SamplingOptions": "runner",
}

__all__ = [
    "CampaignError",
    "CampaignResult",
    "JudgeConfig",
    "Progress",
    "RunOptions",
    "SamplingOptions",
    "Selection",
    "TargetConfig",
    "arun_campaign",
    "run_campaign",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'airlock.probes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"airlock.probes.{module}"), name)

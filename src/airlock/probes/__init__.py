"""Red-team campaigns against live model endpoints (``airlock probe``).

The library entry is :func:`run_campaign` (or :func:`arun_campaign` inside a loop)::

    from airlock.probes import TargetConfig, Selection, run_campaign
    result = run_campaign([TargetConfig("http://127.0.0.1:8000/v1", "qwen2.5-7b")],
                          selection=Selection(families=("injection",), quick=True))
    print(result.verdict, [p.probe for p in result.probes if p.failed])
"""

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

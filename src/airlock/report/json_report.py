"""JSON report: the result model as it is (schema ``airlock.scan/1``)."""

from __future__ import annotations

import json

from airlock.scan.result import ScanResult


def render(result: ScanResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"

"""Static audit of model files. Nothing here executes what it reads.

Library entry::

    from airlock.scan import scan_path
    result = scan_path("models/Qwen2.5-7B-Instruct")
    print(result.verdict, result.counts())
"""

from airlock.scan.api import Progress, ScanInputError, scan_path, scan_paths
from airlock.scan.result import FileRecord, ScanResult

__all__ = ["FileRecord", "Progress", "ScanInputError", "ScanResult", "scan_path", "scan_paths"]

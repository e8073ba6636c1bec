"""airlock: adopt open-weight language models without importing their risks.

The public library surface is re-exported here; the CLI (:mod:`airlock.cli`)
is a thin shell over it.
"""

from airlock.findings import Finding, Severity

__version__ = "0.1.0"

__all__ = ["Finding", "Severity", "__version__"]

"""Imports every built-in detector module so each registers itself.

| detector | module | scope |
| --- | --- | --- |
| ``canary``, ``exfil-link``, ``echo`` | :mod:`.leaks` | both, both, answer |
| ``refusal``, ``compliance`` | :mod:`.refusal` | answer |
| ``insecure-code`` | :mod:`.code` | answer |
| ``package-hallucination`` | :mod:`.packages` | answer |
| ``deflection``, ``narrative``, ``facts`` | :mod:`.topics` | answer |
"""

from airlock.probes.detectors import code, leaks, packages, refusal, topics

__all__ = ["code", "leaks", "packages", "refusal", "topics"]

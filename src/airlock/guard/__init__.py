"""Guard scanners shared by the gateway (``airlock gate``) and the library.

A scanner checks one text and reports :class:`Hit` s; a :class:`Pipeline` runs the
configured scanners over a request's messages and its answer, applies each one's action
(block, redact, flag), keeps reversible redactions in a :class:`Vault` and guards
streamed answers with a :class:`StreamGuard`::

    from airlock.guard import Pipeline
    guard = Pipeline.default()
    checked = guard.check_input([{"role": "user", "content": "mail bob@example.com"}])
    checked.messages      # [{'role': 'user', 'content': 'mail [EMAIL_1]'}]
    answer = guard.check_output("I wrote to [EMAIL_1].", checked.vault, checked.context)
    answer.text           # 'I wrote to bob@example.com.'

Built-in scanners: ``injection``, ``secrets``, ``pii``, ``unicode``, ``terms`` (input);
``leaks``, ``secrets``, ``pii``, ``exfil``, ``code``, ``think`` (output). Everything is
pure Python (regexes with literal prefilters), fast enough to leave on.
"""

from airlock.guard.base import (
    ACTIONS,
    STAGES,
    GuardConfigError,
    GuardContext,
    Hit,
    Scanner,
    Verdict,
)
from airlock.guard.pipeline import DEFAULT_CONFIG, InputResult, OutputResult, Pipeline
from airlock.guard.registry import create, names, register
from airlock.guard.stream import StreamGuard
from airlock.guard.vault import Vault

__all__ = [
    "ACTIONS",
    "DEFAULT_CONFIG",
    "STAGES",
    "GuardConfigError",
    "GuardContext",
    "Hit",
    "InputResult",
    "OutputResult",
    "Pipeline",
    "Scanner",
    "StreamGuard",
    "Vault",
    "Verdict",
    "create",
    "names",
    "register",
]

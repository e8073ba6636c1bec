"""Building the gateway's parts from its configuration: guard pipeline, databases, audit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airlock.gate.audit import AuditRecord, AuditWriter
from airlock.gate.config import GateConfig
from airlock.store import default_db_path

if TYPE_CHECKING:
    from airlock.gate.app import Exchange


def database(config: GateConfig) -> str:
    """Where keys and the audit log live: the configured database, else the results DB."""
    return config.database or default_db_path()


def pipeline(config: GateConfig) -> Any:
    """The guard pipeline the configuration asks for (None when the guard is off)."""
    if config.guard == "off":
        return None
    from airlock.guard.pipeline import Pipeline

    if config.guard == "default":
        return Pipeline.default()
    return Pipeline.from_config(config.guard)


def audit_writer(config: GateConfig) -> Any:
    writer = AuditWriter(database(config))
    writer.start()
    return writer


def audit_record(ex: Exchange, seconds: float, policy: str) -> Any:
    """The audit row for one finished request; content kept as ``policy`` says."""
    rec = AuditRecord(
        request_id=ex.request_id,
        key_id=ex.key_id,
        client=ex.client,
        path=ex.path,
        model=ex.model,
        upstream=ex.upstream,
        status=ex.status,
        decision=ex.decision,
        latency_ms=round(seconds * 1000, 3),
        prompt_tokens=ex.prompt_tokens,
        completion_tokens=ex.completion_tokens,
        stream=ex.stream,
        verdicts=ex.verdicts,
        blocked_by=ex.blocked_by,
        error=ex.error,
    )
    rec.set_content(
        policy,
        prompt=ex.prompt,
        response=ex.response,
        redacted_prompt=ex.prompt_redacted,
        redacted_response=ex.response_redacted or ex.response,
    )
    return rec

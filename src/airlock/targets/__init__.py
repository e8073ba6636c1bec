"""How airlock talks to models: OpenAI-compatible endpoints and the reference target."""

from airlock.targets.base import (
    ChatRequest,
    Completion,
    Message,
    Target,
    TargetError,
    split_reasoning,
)

__all__ = ["ChatRequest", "Completion", "Message", "Target", "TargetError", "split_reasoning"]

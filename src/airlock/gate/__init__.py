"""The gateway: an OpenAI-compatible ASGI app that guards a live model, its policy and
its tamper-evident audit log (:mod:`airlock.gate.audit`)."""

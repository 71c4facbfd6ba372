"""The audit log: tamper-evident records of every tool call, with a technical view (raw
payloads, encrypted at rest and erasable) and a compliance view (plain language, redacted).

Import the submodules directly (``handrail.audit.redact``, ``handrail.audit.payloads``, ...);
nothing is imported eagerly here so that ``import handrail`` stays light.
"""

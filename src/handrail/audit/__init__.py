"""The audit log: tamper-evident records of every tool call, with a technical view (raw
payloads, encrypted at rest and erasable) and a compliance view (plain language, redacted).

Import the submodules directly; nothing is imported eagerly here so that ``import
handrail`` stays light:

- records and their views: :mod:`~handrail.audit.record` (built with
  :mod:`~handrail.audit.redact` and :mod:`~handrail.audit.payloads`);
- the log: the :mod:`~handrail.audit.log` protocol, :mod:`~handrail.audit.memory` (and
  ``handrail.store.sqlite.audit``, ``handrail.store.postgres.audit``), the
  :mod:`~handrail.audit.sequencer` that signs it, its :mod:`~handrail.audit.keys`;
- the Merkle machinery: :mod:`~handrail.audit.merkle`, :mod:`~handrail.audit.tree`,
  :mod:`~handrail.audit.compact`, :mod:`~handrail.audit.nodes`,
  :mod:`~handrail.audit.leaf`, :mod:`~handrail.audit.checkpoint`;
- leaving the log: :mod:`~handrail.audit.bundle` and :mod:`~handrail.audit.verify`
  (offline verification), :mod:`~handrail.audit.sinks` and
  :mod:`~handrail.audit.delivery` (the outbox), :mod:`~handrail.audit.retention`
  (retention and erasure).
"""

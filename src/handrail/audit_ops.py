"""Audit operations: what the faces (the CLI now, the HTTP API later) may do with the audit
log, and who may do it.

Every function takes the caller (an authenticated :class:`~handrail.auth.Principal`, or a
set of role names for code that has checked identity itself) and refuses with
:class:`AccessDenied` when a role is missing:

==========================================  ===========================================
operation                                   roles
==========================================  ===========================================
:func:`list_records`, :func:`show_record`    auditor or engineer (compliance view)
:func:`show_record` with ``technical=True``  engineer (raw payloads)
:func:`verify_log`, :func:`export_log`       auditor or engineer
:func:`erase_payloads`, :func:`apply_retention`  operator
:func:`verify_bundle_file`                   none: it reads a file, not the store
==========================================  ===========================================

Erasing is an operator's action because it changes what the system holds (like cancelling
a task) and is carried out on someone's request: auditors and engineers only read. The
records an erasure or a retention run leaves name the operator.

Offline verification of an exported bundle needs no role: whoever holds the file can
check it (the file holds only compliance fields and salted commitments), and an external
auditor usually has no principal in the deployment.

The signing key's public half is what a verification trusts. It is found like the
sequencer finds the private key (:func:`signing_key_path`): the App's ``audit_key``,
``$HANDRAIL_AUDIT_KEY``, or ``<db>.audit-key`` next to a SQLite store, and read from
``<key>.pub`` (or derived from the private key). Auditors should pass the public key they
obtained independently instead (:func:`load_public_key`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

from handrail.audit.checkpoint import VerifyingKey
from handrail.audit.keys import KEY_ENV, SUFFIX, load_signing_key
from handrail.audit.log import SignedCheckpoint
from handrail.audit.payloads import subject_key_id, task_key_id
from handrail.audit.record import StoredRecord, compliance_view, technical_document
from handrail.audit.retention import (
    ErasureResult,
    RetentionPolicy,
    RetentionReport,
    erase,
    run_retention,
)
from handrail.audit.verify import VerifyCode, VerifyResult, verify_bundle_stream
from handrail.auth import AuthenticationError, Principal
from handrail.clock import Clock, SystemClock
from handrail.errors import (
    ConfigurationError,
    HandrailError,
    InvalidOperationError,
    NotFoundError,
)
from handrail.journal import TaskStatus
from handrail.store.base import Store

__all__ = [
    "LOG_ORIGIN",
    "READERS",
    "RETENTION_ACTOR",
    "AccessDenied",
    "AuditRecordNotFound",
    "Caller",
    "ExportSummary",
    "LogVerification",
    "apply_retention",
    "erase_payloads",
    "export_log",
    "list_records",
    "load_public_key",
    "public_key_for",
    "show_record",
    "signing_key_path",
    "tasks_finished_before",
    "verify_bundle_file",
    "verify_log",
]

_log = logging.getLogger("handrail.audit")

LOG_ORIGIN = "handrail/audit"
"""The audit log's origin (the first line of its checkpoints) and its key's signer name."""

READERS = frozenset({"auditor", "engineer"})
"""The roles that may read the compliance view, verify and export."""
RETENTION_ACTOR = "system:retention"
"""Who a retention run started by the worker is recorded as."""
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
SCAN_LIMIT = 1_000_000
"""The most finished tasks one retention run looks at (the store lists newest first)."""

Caller = Principal | Collection[str]
"""Who calls: an authenticated principal, or the role names of one checked elsewhere."""


class AccessDenied(AuthenticationError):
    """The caller lacks the role an audit operation needs; ``needed`` names the roles
    that would do (any one of them)."""

    def __init__(self, message: str, *, needed: Collection[str]):
        super().__init__(message)
        self.needed = tuple(sorted(needed))


class AuditRecordNotFound(NotFoundError):
    """No audit record has this call id."""

    def __init__(self, call_id: str):
        HandrailError.__init__(
            self,
            f"no audit record with call id {call_id!r}; list them with `handrail audit list` "
            "(or check --app / HANDRAIL_DB points at the right store)",
        )
        self.kind = "audit record"
        self.ident = call_id


def _roles(caller: Caller) -> frozenset[str]:
    return caller.roles if isinstance(caller, Principal) else frozenset(caller)


def _require(caller: Caller, needed: Collection[str], action: str) -> None:
    roles = _roles(caller)
    if roles & set(needed):
        return
    who = caller.name if isinstance(caller, Principal) else "the caller"
    wanted = " or ".join(repr(r) for r in sorted(needed))
    raise AccessDenied(
        f"{who} may not {action}: it needs the {wanted} role "
        f"(has: {', '.join(sorted(roles)) or 'none'})",
        needed=needed,
    )


def _name(caller: Principal) -> str:
    if not isinstance(caller, Principal):
        raise TypeError("this operation is recorded under a name: pass a Principal")
    return caller.name


# --- reading ----------------------------------------------------------------------------


def list_records(
    store: Store,
    caller: Caller,
    *,
    task_id: str | None = None,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Records in the order they were logged, as their compliance views (redacted; no raw
    payloads). Page with ``after_id`` (the last ``record_id`` seen). Auditor or engineer."""
    _require(caller, READERS, "read the audit log")
    if limit < 1:
        raise InvalidOperationError("limit must be at least 1")
    rows = store.audit_log().records(
        task_id=task_id, kind=kind, since=since, until=until, after_id=after_id, limit=limit
    )
    return [compliance_view(row) for row in rows]


def _record(store: Store, call_id: str) -> StoredRecord:
    row = store.audit_log().record(call_id)
    if row is None:
        raise AuditRecordNotFound(call_id)
    return row


def show_record(
    store: Store, caller: Caller, call_id: str, *, technical: bool = False
) -> dict[str, Any]:
    """One record's compliance view (auditor or engineer); with ``technical`` also its raw
    payloads under ``"technical"``, opened (engineer only). An erased payload shows as
    ``{"erased": true, ...}`` with who destroyed its key, when and why."""
    if technical:
        _require(caller, {"engineer"}, "see raw payloads (the technical view)")
    else:
        _require(caller, READERS, "read the audit log")
    row = _record(store, call_id)
    view = compliance_view(row)
    if technical:
        view["technical"] = technical_document(row, store.audit_log().vault)
    return view


# --- keys -------------------------------------------------------------------------------


def signing_key_path(store: Store, configured: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the log's signing key is: ``configured`` (the App's ``audit_key``), else
    ``$HANDRAIL_AUDIT_KEY``, else ``<db>.audit-key`` next to a SQLite store; ``None`` for
    another store without either (a PostgreSQL server has no file to put it next to)."""
    if configured is not None:
        return Path(configured)
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env)
    from handrail.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return Path(f"{store.path}{SUFFIX}")
    return None


def load_public_key(value: str | os.PathLike[str]) -> VerifyingKey:
    """A public key given as a vkey (``handrail/audit+<id>+<base64>``), or as a file
    holding one (the ``<key>.pub`` the sequencer writes) or holding a PEM public key."""
    text = os.fspath(value)
    path = Path(text)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the public key file {path}: {exc}") from exc
        if text.startswith("-----BEGIN"):
            try:
                return VerifyingKey.from_pem(LOG_ORIGIN, text.encode())
            except ValueError as exc:
                raise ConfigurationError(f"{path} is not an Ed25519 public key: {exc}") from exc
    try:
        return VerifyingKey.from_vkey(text)
    except ValueError as exc:
        raise ConfigurationError(
            f"{text[:60]!r} is neither a public key file nor a vkey ({exc}); pass the "
            "<key>.pub file the log's signing key came with"
        ) from exc


def public_key_for(
    store: Store, configured: str | os.PathLike[str] | None = None
) -> tuple[VerifyingKey, Path]:
    """The public half of the log's signing key and the file it was read from: the
    ``<key>.pub`` beside the key, or the key itself."""
    path = signing_key_path(store, configured)
    if path is None:
        raise ConfigurationError(
            "no audit signing key is configured for this store: pass --public-key (or set "
            f"{KEY_ENV} to the key file the workers sign with)"
        )
    public = Path(f"{path}.pub")
    if public.is_file():
        return load_public_key(public), public
    if path.is_file():
        return load_signing_key(path, LOG_ORIGIN).public_key, path
    raise ConfigurationError(
        f"there is no audit signing key at {path}: the log has not been sealed yet (a "
        "running worker seals it), or the key lives elsewhere (pass --public-key)"
    )


# --- verify and export ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogVerification:
    """Verifying the log in the store: ``pending`` records are not sequenced yet (no
    checkpoint covers them, so nothing vouches for them yet); ``checkpoint`` is the latest
    signed one (``None`` before the first); ``result`` the verdict on every record up to
    it (``None`` when there is no checkpoint: nothing to verify yet); ``key_source`` where
    the public key came from (``None``: the caller gave it)."""

    pending: int
    checkpoint: SignedCheckpoint | None
    result: VerifyResult | None
    public_key: VerifyingKey | None
    key_source: Path | None = None

    @property
    def code(self) -> VerifyCode:
        """The exit code: the verdict's, or OK when no checkpoint exists yet."""
        return VerifyCode.OK if self.result is None else self.result.code

    @property
    def ok(self) -> bool:
        return self.code is VerifyCode.OK


def verify_log(
    store: Store,
    caller: Caller,
    *,
    public_key: VerifyingKey | None = None,
    key_path: str | os.PathLike[str] | None = None,
) -> LogVerification:
    """Verify the log in ``store`` as of its latest checkpoint: export it to a temporary
    bundle and check every record against every signed checkpoint with ``public_key``
    (default: the log's own key, see :func:`public_key_for`). Auditor or engineer."""
    _require(caller, READERS, "verify the audit log")
    log = store.audit_log()
    pending = log.pending()
    latest = log.latest_checkpoint()
    if latest is None:
        return LogVerification(pending, None, None, public_key)
    source = None
    if public_key is None:
        public_key, source = public_key_for(store, key_path)
    key = public_key
    with tempfile.TemporaryFile() as bundle:
        log.export_bundle(bundle, key, size=latest.size)
        bundle.seek(0)
        result = verify_bundle_stream(bundle, trusted_key=key)
    return LogVerification(pending, latest, result, key, source)


def verify_bundle_file(
    path: str | os.PathLike[str], *, public_key: VerifyingKey | None = None
) -> VerifyResult:
    """Verify an exported bundle offline. With ``public_key`` (obtained independently of
    the bundle) the checkpoints must be signed by it; without, by the key the bundle names,
    which shows only that the bundle is self-consistent (``result.key_trusted`` is
    false). Needs no role: it reads a file, not the store."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigurationError(f"cannot read the bundle {os.fspath(path)}: {exc}") from exc
    with stream:
        return verify_bundle_stream(stream, trusted_key=public_key)


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    """An export: the records written (leaves ``[0, size)``), the checkpoints in the
    bundle, and the public key its header names."""

    records: int
    checkpoints: int
    public_key: VerifyingKey


def export_log(
    store: Store,
    caller: Caller,
    stream: BinaryIO,
    *,
    size: int | None = None,
    public_key: VerifyingKey | None = None,
    key_path: str | os.PathLike[str] | None = None,
) -> ExportSummary:
    """Write the bundle of the log as of its latest checkpoint (or the checkpointed
    ``size``) to ``stream``: the signed checkpoints, the public key and every record's
    leaf (compliance fields and salted commitments, never raw payloads). Auditor or
    engineer."""
    _require(caller, READERS, "export the audit log")
    log = store.audit_log()
    key = public_key or public_key_for(store, key_path)[0]
    records = log.export_bundle(stream, key, size=size)
    return ExportSummary(records, len(log.checkpoints(up_to=records)), key)


# --- erasure and retention --------------------------------------------------------------


def erase_payloads(
    store: Store,
    caller: Principal,
    *,
    task_id: str | None = None,
    subject_id: str | None = None,
    reason: str,
    clock: Clock | None = None,
) -> ErasureResult:
    """Erase the raw payloads of one task or one data subject now, by destroying their
    key, and append an ``erasure`` record naming the operator and the reason. Compliance
    records, the journal and the log's proofs are untouched. Operator."""
    _require(caller, {"operator"}, "erase raw payloads")
    by = _name(caller)
    if (task_id is None) == (subject_id is None):
        raise InvalidOperationError("erase the payloads of one task or one subject")
    if not reason or not reason.strip():
        raise InvalidOperationError("an erasure needs a reason; it is recorded in the log")
    if task_id is not None:
        if store.get_task(task_id) is None:
            raise NotFoundError("task", task_id)
        key_id = task_key_id(task_id)
    else:
        key_id = subject_key_id(str(subject_id))
    return erase(
        store.audit_log(), key_id, by=by, reason=reason.strip(), task_id=task_id, clock=clock
    )


def tasks_finished_before(store: Store, cutoff: float, *, limit: int = SCAN_LIMIT) -> list[str]:
    """The ids of tasks that finished (completed, failed or cancelled) before ``cutoff``,
    the longest finished first: their row was last written before it."""
    records = store.list_tasks(statuses=FINISHED, limit=limit)
    if len(records) >= limit:
        _log.warning(
            "retention looked at the %d newest finished tasks only; older ones wait for a "
            "later run",
            limit,
        )
    old = sorted((r for r in records if r.updated_at < cutoff), key=lambda r: r.updated_at)
    return [r.task_id for r in old]


def apply_retention(
    store: Store,
    caller: Principal | None,
    policy: RetentionPolicy,
    *,
    clock: Clock | None = None,
) -> RetentionReport:
    """Destroy the payload keys of tasks finished more than ``policy.raw_payload_days``
    ago and append a ``retention_run`` record (also when nothing expired). ``caller`` is
    an operator, or ``None`` for the worker's scheduled run (recorded as
    :data:`RETENTION_ACTOR`). Compliance records and the journal are kept."""
    if caller is None:
        by = RETENTION_ACTOR
    else:
        _require(caller, {"operator"}, "run retention")
        by = _name(caller)
    return run_retention(
        store.audit_log(),
        policy,
        lambda cutoff: tasks_finished_before(store, cutoff),
        by=by,
        clock=clock or SystemClock(),
    )

"""handrail's exceptions: one root, facts as attributes, messages that say what to do.

Hierarchy::

    HandrailError (Exception)
    ├── ConfigurationError          bad App/tool/workflow setup, bad store URL
    ├── SerializationError          a value that JSON cannot carry (names the step and type)
    ├── NotFoundError               unknown task or intervention id
    ├── InvalidOperationError       an operation the task's current state does not allow
    ├── StoreError                  the store failed (driver errors are translated to this)
    │   ├── TaskExistsError         a task id that is already taken
    │   └── StaleWriteError         an operator write raced a worker; re-read and retry
    ├── ToolCallFailed              a tool raised; the workflow may catch it (same on replay)
    │   └── TaskFailure             ... and the failure is final (fatal, or retries exhausted)
    ├── TaskFailedError             waiting on a handle whose task failed
    ├── TaskCancelledError          waiting on a handle whose task was cancelled
    ├── NonDeterminismError         workflow code no longer matches its journal
    └── AuditError                  the tamper-evident audit log (handrail.audit)
        ├── ProofError              a Merkle proof does not verify (``reason`` says why)
        │   ├── InclusionProofError     ... an inclusion proof (a record in a tree)
        │   └── ConsistencyProofError   ... a consistency proof (an old tree in a new one)
        ├── CheckpointMalformed     checkpoint / signed-note text that does not parse
        ├── SignatureInvalid        a checkpoint signature the key does not verify
        └── BundleMalformed         an exported audit bundle that cannot be read

    HandrailSignal (BaseException)  control flow a user's ``except Exception`` cannot swallow
    ├── Suspended                   the task waits (intervention, approval, timer)
    │   └── HumanInterventionRequired   ... for a human (permission, data error, in doubt)
    ├── LeaseLost                   another worker owns the task now; stop without writing
    ├── Halted                      an operator halted the task, its tool or everything
    └── CancelRequested             an operator cancelled the task; unwind at the step boundary
"""

from __future__ import annotations

from typing import Any


class HandrailError(Exception):
    """Root of every error handrail raises."""


class ConfigurationError(HandrailError):
    """The app, a tool or a workflow is set up wrongly; the message says how to fix it."""


class SerializationError(HandrailError):
    """A step's input or output cannot be stored as JSON."""

    def __init__(self, message: str, *, step: str | None = None, type_name: str | None = None):
        super().__init__(message)
        self.step = step
        self.type_name = type_name


class NotFoundError(HandrailError):
    """An id that names nothing in the store."""

    def __init__(self, kind: str, ident: str):
        super().__init__(
            f"no {kind} with id {ident!r}; list them with `handrail {kind}s list` "
            "(or check --app / HANDRAIL_DB points at the right store)"
        )
        self.kind = kind
        self.ident = ident


class InvalidOperationError(HandrailError):
    """The task's current state does not allow the operation."""

    def __init__(self, message: str, *, task_id: str | None = None):
        super().__init__(message)
        self.task_id = task_id


class StoreError(HandrailError):
    """The store could not carry out an operation."""


class TaskExistsError(StoreError):
    """A task with this id exists already."""

    def __init__(self, task_id: str):
        super().__init__(f"a task with id {task_id!r} exists already; choose another id")
        self.task_id = task_id


class StaleWriteError(StoreError):
    """The task changed between reading and writing (for example a worker claimed it)."""

    def __init__(self, task_id: str, detail: str):
        super().__init__(f"task {task_id}: {detail}; re-read the task and try again")
        self.task_id = task_id


class ToolCallFailed(HandrailError):
    """A tool raised. Raised the same way on first run and on replay, so workflows stay
    deterministic: catch this, not the tool's own exception type. The live exception, when
    there is one, is ``__cause__``."""

    def __init__(
        self,
        *,
        task_id: str,
        step_index: int,
        tool: str,
        error_type: str,
        message: str,
        failure_class: str | None = None,
    ):
        kind = f" ({failure_class})" if failure_class else ""
        super().__init__(f"tool {tool!r} (step {step_index}) failed{kind}: {error_type}: {message}")
        self.task_id = task_id
        self.step_index = step_index
        self.tool = tool
        self.error_type = error_type
        self.error_message = message
        self.failure_class = failure_class


class TaskFailure(ToolCallFailed):
    """A tool call failed for good: the failure is fatal, or its retries ran out. Unless the
    workflow catches it, the task fails naming the step, the class and the error."""


class ApprovalDenied(TaskFailure):
    """A gated call was denied: by an approver, or by its deadline
    (``timeout_no_response``). Raised the same way on replay; unless the workflow catches
    it, the task fails naming the request and who denied it."""

    def __init__(
        self,
        *,
        task_id: str,
        step_index: int,
        tool: str,
        request_id: str,
        denied_by: str,
        reason: str | None = None,
        comment: str | None = None,
    ):
        detail = f"denied by {denied_by}"
        if reason:
            detail += f" ({reason})"
        if comment:
            detail += f": {comment}"
        super().__init__(
            task_id=task_id,
            step_index=step_index,
            tool=tool,
            error_type="ApprovalDenied",
            message=f"approval {request_id} {detail}",
        )
        self.request_id = request_id
        self.denied_by = denied_by
        self.reason = reason
        self.comment = comment


class TaskFailedError(HandrailError):
    """The awaited task failed."""

    def __init__(self, task_id: str, error: dict[str, Any] | None):
        error = error or {}
        where = f" at step {error['step_index']}" if error.get("step_index") is not None else ""
        super().__init__(
            f"task {task_id} failed{where}: {error.get('type', 'Error')}: "
            f"{error.get('message', '')} (see `handrail tasks show {task_id}`)"
        )
        self.task_id = task_id
        self.error = error


class TaskCancelledError(HandrailError):
    """The awaited task was cancelled."""

    def __init__(self, task_id: str):
        super().__init__(f"task {task_id} was cancelled")
        self.task_id = task_id


class NonDeterminismError(HandrailError):
    """The workflow asked for another step than its journal recorded at this index."""

    def __init__(self, task_id: str, step_index: int, recorded: str, requested: str):
        super().__init__(
            f"task {task_id}: non-determinism at step {step_index}: the journal recorded "
            f"{recorded!r} but the workflow now calls {requested!r}. Workflow code between "
            "steps must be deterministic; deploy the old code to finish this task, or cancel it."
        )
        self.task_id = task_id
        self.step_index = step_index
        self.recorded = recorded
        self.requested = requested


class AuditError(HandrailError):
    """The audit log's proofs, checkpoints or exported bundles."""


class ProofError(AuditError):
    """A Merkle proof does not verify: the record is not in the tree, or the old tree is not
    a prefix of the new one (or the proof, sizes or roots given are wrong)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InclusionProofError(ProofError):
    """An inclusion proof does not show the leaf at ``index`` in the tree of ``size``."""

    def __init__(self, reason: str, *, index: int, size: int):
        super().__init__(f"inclusion proof for leaf {index} in a tree of {size}: {reason}")
        self.reason = reason
        self.index = index
        self.size = size


class ConsistencyProofError(ProofError):
    """A consistency proof does not show the tree of ``old_size`` as a prefix of ``new_size``."""

    def __init__(self, reason: str, *, old_size: int, new_size: int):
        super().__init__(f"consistency proof from size {old_size} to {new_size}: {reason}")
        self.reason = reason
        self.old_size = old_size
        self.new_size = new_size


class CheckpointMalformed(AuditError):
    """Checkpoint (signed note) text that does not parse; the message names the line."""


class SignatureInvalid(AuditError):
    """A checkpoint is not signed by the expected key, or its signature does not verify:
    the checkpoint (or the key you were given) is not the log's."""

    def __init__(self, message: str, *, key_name: str | None = None):
        super().__init__(message)
        self.key_name = key_name


class BundleMalformed(AuditError):
    """An exported audit bundle that cannot be read (not the format, bad header, bad key)."""


class HandrailSignal(BaseException):
    """Control flow through user code; derives from BaseException on purpose."""


class Suspended(HandrailSignal):
    """The task stops here and waits; the reason is already journaled."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HumanInterventionRequired(Suspended):
    """The task waits for a human. The engine raises it (and journals the intervention)
    for permission and data errors and in-doubt steps; a tool may raise it too, to ask for
    a human itself, optionally naming a ``failure_class`` (default ``permission``)."""

    def __init__(
        self,
        reason: str,
        *,
        task_id: str | None = None,
        step_index: int | None = None,
        tool: str | None = None,
        failure_class: str | None = None,
        needed: str | None = None,
    ):
        super().__init__(reason)
        self.task_id = task_id
        self.step_index = step_index
        self.tool = tool
        self.failure_class = failure_class
        self.needed = needed


class LeaseLost(HandrailSignal):
    """This worker no longer owns the task; nothing more may be written."""

    def __init__(self, task_id: str):
        super().__init__(f"task {task_id}: lease lost to another worker")
        self.task_id = task_id


class Halted(HandrailSignal):
    """An active halt covers the step about to start; the task stops at this boundary."""

    def __init__(self, task_id: str, halt_id: str, scope: str, target: str | None, by: str):
        what = "everything" if scope == "all" else f"{scope} {target}"
        super().__init__(f"task {task_id}: halted by {by} ({what}, halt {halt_id})")
        self.task_id = task_id
        self.halt_id = halt_id
        self.scope = scope
        self.target = target
        self.halted_by = by


class CancelRequested(HandrailSignal):
    """An operator asked to cancel the task; it stops at the step boundary."""

    def __init__(self, task_id: str):
        super().__init__(f"task {task_id}: cancel requested")
        self.task_id = task_id

"""handrail: a durable, gated, audited runtime for AI agents that take real actions.

Every step of a workflow is journaled before it runs; a task resumes after a crash without
silently repeating a side effect. See README.md and docs/.
"""

from handrail.app import App
from handrail.approvals import Approval, ApprovalPolicy, ApprovalRequest, Decision, ProposedAction
from handrail.audit.record import ToolCallRecord
from handrail.clock import Clock, SystemClock
from handrail.context import TaskContext, current_task
from handrail.controls import CircuitBreaker, RateLimit
from handrail.errors import (
    ApprovalDenied,
    CancelRequested,
    ConfigurationError,
    Halted,
    HandrailError,
    HandrailSignal,
    HumanInterventionRequired,
    InvalidOperationError,
    LeaseLost,
    NonDeterminismError,
    NotFoundError,
    SerializationError,
    StaleWriteError,
    StoreError,
    Suspended,
    TaskCancelledError,
    TaskExistsError,
    TaskFailedError,
    TaskFailure,
    ToolCallFailed,
)
from handrail.failures import FailureClass, RetryDecision, RetryPolicy, classify
from handrail.handle import TaskHandle
from handrail.journal import Event, EventKind, Intervention, StepStatus, TaskState, TaskStatus
from handrail.tools import NOT_DONE, UNKNOWN, Reversibility, Tool, ToolCall
from handrail.worker import Worker
from handrail.workflow import Workflow

__version__ = "0.1.0"

__all__ = [
    "NOT_DONE",
    "UNKNOWN",
    "App",
    "Approval",
    "ApprovalDenied",
    "ApprovalPolicy",
    "ApprovalRequest",
    "CancelRequested",
    "CircuitBreaker",
    "Clock",
    "ConfigurationError",
    "Decision",
    "Event",
    "EventKind",
    "FailureClass",
    "Halted",
    "HandrailError",
    "HandrailSignal",
    "HumanInterventionRequired",
    "Intervention",
    "InvalidOperationError",
    "LeaseLost",
    "NonDeterminismError",
    "NotFoundError",
    "ProposedAction",
    "RateLimit",
    "RetryDecision",
    "RetryPolicy",
    "Reversibility",
    "SerializationError",
    "StaleWriteError",
    "StepStatus",
    "StoreError",
    "Suspended",
    "SystemClock",
    "TaskCancelledError",
    "TaskContext",
    "TaskExistsError",
    "TaskFailedError",
    "TaskFailure",
    "TaskHandle",
    "TaskState",
    "TaskStatus",
    "Tool",
    "ToolCall",
    "ToolCallFailed",
    "ToolCallRecord",
    "Worker",
    "Workflow",
    "classify",
    "current_task",
]

"""handrail: a durable, gated, audited runtime for AI agents that take real actions.

Every step of a workflow is journaled before it runs; a task resumes after a crash without
silently repeating a side effect. See README.md and docs/.
"""

from handrail.app import App
from handrail.clock import Clock, SystemClock
from handrail.context import TaskContext, current_task
from handrail.errors import (
    CancelRequested,
    ConfigurationError,
    HandrailError,
    HandrailSignal,
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
    ToolCallFailed,
)
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
    "CancelRequested",
    "Clock",
    "ConfigurationError",
    "Event",
    "EventKind",
    "HandrailError",
    "HandrailSignal",
    "Intervention",
    "InvalidOperationError",
    "LeaseLost",
    "NonDeterminismError",
    "NotFoundError",
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
    "TaskHandle",
    "TaskState",
    "TaskStatus",
    "Tool",
    "ToolCall",
    "ToolCallFailed",
    "Worker",
    "Workflow",
    "current_task",
]

"""Stores: the protocol and how a URL picks a backend."""

from __future__ import annotations

from handrail.store.base import UNSET, Claim, Lease, NewTask, Store, TaskRecord
from handrail.store.url import open_store

__all__ = ["UNSET", "Claim", "Lease", "NewTask", "Store", "TaskRecord", "open_store"]

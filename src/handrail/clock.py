"""Time as handrail sees it: seconds since the epoch, from a clock the app owns.

Every due time (lease expiry, timers, deadlines) is computed from the app's clock, so tests
can move time with :class:`handrail.testing.ManualClock` instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where now comes from."""

    def now(self) -> float:
        """Seconds since the epoch."""


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        return time.time()

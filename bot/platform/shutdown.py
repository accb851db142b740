"""One time budget for the whole shutdown, counted from the stop signal.

Every stage takes its share from the same deadline, so the stages cannot add up past the platform's SIGKILL:
HTTP requests being served finish first (bounded separately, since uvicorn needs a fixed number), then
Partoo calls in flight may finish until the deadline less a reserve, then the reserve closes everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ShutdownBudget:
    """A deadline set when the stop signal arrives (or when the shutdown starts, if no signal came)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._deadline: float | None = None

    def start(self) -> None:
        """Start counting (the first call wins: a second SIGTERM does not extend the budget)."""
        if self._deadline is None:
            self._deadline = self.clock() + self.seconds

    def remaining(self, *, keep: float = 0.0) -> float:
        """Seconds left before the deadline, less `keep` for what must still run after; never negative."""
        self.start()
        assert self._deadline is not None
        return max(0.0, self._deadline - keep - self.clock())

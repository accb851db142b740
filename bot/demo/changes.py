"""A version number bumped by every change in the demo's world, so the page knows when to read it again."""

from __future__ import annotations

import asyncio
import contextlib


class Changes:
    """Counts changes; `wait` returns as soon as there is one the caller has not seen (or on close)."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        # Waiters hold the old event; a fresh one makes the next wait block until the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """Wake every waiter for good: the demo is stopping."""
        self.closed = True
        self._changed.set()

    async def wait(self, seen: int, timeout: float) -> int:  # noqa: ASYNC109 - a heartbeat, not a deadline
        """The current version, once it differs from `seen`, the world closes, or `timeout` passes."""
        if self.version == seen and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

"""The background loop shared by the worker, the notifier and the alerter.

Each does one round of work from what is stored, then sleeps until woken in-process (new work here) or until
`poll_interval` passes (work another replica stored, leases that expired, Slack that came back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class PollingLoop:
    """Runs `tick()` until stopped; a tick that returns True (more work at hand) runs again at once."""

    name = "loop"

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self.running = False

    def wake(self) -> None:
        """Look for work now (called in-process when there is some)."""
        self._wake.set()

    async def tick(self) -> bool:
        raise NotImplementedError

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping:
                try:
                    more = await self.tick()
                except Exception:
                    log.exception("%s round failed; trying again", self.name)
                    more = False
                if more:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                self._wake.clear()
        finally:
            self.running = False

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

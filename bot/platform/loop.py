"""The background loop shared by the worker, the notifier and the alerter.

Each does one round of work from what is stored, then sleeps until woken in-process (new work here) or until
`poll_interval` passes (work another replica stored, leases that expired, Slack that came back).

A wake-up waits `settle` before its round: the requests of a burst each wake the loops, and one round a
moment later serves them all, after their answers, instead of rounds that compete with the burst for the
event loop and the database connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.defaults import WAKE_SETTLE

log = logging.getLogger(__name__)


class PollingLoop:
    """Runs `tick()` until stopped; a tick that returns True (more work at hand) runs again at once."""

    name = "loop"

    def __init__(self, poll_interval: float, *, settle: float = WAKE_SETTLE) -> None:
        self.poll_interval = poll_interval
        self.settle = settle
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
                woken = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    woken = True
                if woken and self.settle and not self._stopping:
                    await asyncio.sleep(self.settle)  # wakes meanwhile are served by the round that follows
                self._wake.clear()
        finally:
            self.running = False

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

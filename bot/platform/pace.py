"""Shared paces, kept in the database so that every replica shares one: Partoo's call budget, and one per
Slack channel for every post the bot makes there.

Each call reserves the next free slot with one atomic UPDATE: the slot moves forward by one interval
(60 s / limit) from whichever is latest of now (less the burst's allowance), the end of a 429 pause, and the
last reserved slot. A 429 pushes both the pause and the next slot past Retry-After, so every replica waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import ColumnElement, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.platform.models import Pace

# Partoo counts requests per minute; spacing calls a little wider than 60/limit keeps network
# jitter from ever putting limit+1 calls into one of Partoo's windows.
SAFETY_MARGIN = 1.02
# That margin makes `limit` slots span 60 s x 1.02, so calls made up to 1.2 s after their slots still never put
# limit + 1 of them into one minute. A caller held up for longer between its slot and its call (a slow commit
# on a loaded machine) takes a new slot instead; this is half the tolerance, for the time the call itself takes.
LATE_ALLOWANCE = (SAFETY_MARGIN - 1) * 60.0 / 2
PACE_NAME = "partoo"
SLACK_ALERTS_PACE = "slack-alerts"
_NAME_CHARS = 32  # partoo_pace.name is String(32); Slack channel IDs are about 11 characters


class SharedPace:
    """Hands out Partoo call slots at `per_minute`, shared through the database."""

    def __init__(
        self,
        engine: AsyncEngine,
        per_minute: int,
        *,
        name: str = PACE_NAME,
        burst: int = 1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.name = name
        self.interval = 60.0 / per_minute * SAFETY_MARGIN
        # After an idle spell the next slot may lie this far in the past, so that `burst` calls go at once
        # (a token bucket of `burst` tokens, kept as one timestamp); after a 429 pause there is no burst.
        self.allowance = (burst - 1) * self.interval
        self.clock = clock
        self.sleep = sleep

    def _slot(self, now: float) -> ColumnElement[float]:
        """The slot the next reservation gets: the latest of the last slot, the pause's end, now less the burst."""
        floor = case((Pace.paused_until > now, Pace.paused_until), else_=now - self.allowance)
        return case((Pace.next_slot_at < floor, floor), else_=Pace.next_slot_at)

    async def reserve(self) -> float:
        """Reserve the next call slot and return its time (UNIX seconds)."""
        slot = self._slot(self.clock())
        async with self.engine.begin() as connection:
            next_slot = (
                await connection.execute(
                    update(Pace)
                    .where(Pace.name == self.name)
                    .values(next_slot_at=slot + self.interval)
                    .returning(Pace.next_slot_at)
                )
            ).scalar_one()
        return float(next_slot) - self.interval

    async def reserve_within(self, seconds: float) -> float | None:
        """Reserve the next slot only if it comes within `seconds`; None (nothing reserved) if it does not."""
        now = self.clock()
        slot = self._slot(now)
        async with self.engine.begin() as connection:
            next_slot = (
                await connection.execute(
                    update(Pace)
                    .where(Pace.name == self.name, slot <= now + seconds)
                    .values(next_slot_at=slot + self.interval)
                    .returning(Pace.next_slot_at)
                )
            ).scalar_one_or_none()
        return None if next_slot is None else float(next_slot) - self.interval

    async def wait_for_slot_within(self, seconds: float) -> bool:
        """Sleep until a slot no more than `seconds` away; False at once (nothing taken) when none is that near.

        A caller holding a claim or serving a person cannot wait behind a queue of unknown length: it keeps its
        work for later instead. No transaction is open while it sleeps.
        """
        deadline = self.clock() + seconds
        while (slot := await self.reserve_within(max(0.0, deadline - self.clock()))) is not None:
            delay = slot - self.clock()
            if delay > 0:
                await self.sleep(delay)
            if await self.paused_until() <= self.clock():
                return True
        return False

    async def reserve_if_idle(self) -> bool:
        """Take the slot due now, but only when nothing is queued ahead and no 429 pause runs.

        This is how low-priority calls (conversation checks for new alerts) give way to retries without
        knowing about them: every retry reserves its slot ahead of time, so while retries are waiting the
        next slot lies in the future and this UPDATE matches no row. Checks then take only the slots that
        retries leave free, from the same budget, across replicas, in one atomic statement.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Pace)
                .where(Pace.name == self.name, Pace.next_slot_at <= now, Pace.paused_until <= now)
                .values(next_slot_at=now + self.interval)
            )
        return result.rowcount == 1

    async def wait_for_idle_slot(self, poll_interval: float) -> None:
        """Sleep until a slot is free with nothing of higher priority waiting for it (see reserve_if_idle)."""
        while not await self.reserve_if_idle():
            await self.sleep(poll_interval)

    async def paused_until(self) -> float:
        async with self.engine.connect() as connection:
            value = (await connection.execute(select(Pace.paused_until).where(Pace.name == self.name))).scalar_one()
        return float(value)

    async def wait_for_slot(self) -> float:
        """Sleep until this caller's slot, taking a new one if a 429 pause began meanwhile; the slot's time."""
        while True:
            slot = await self.reserve()
            delay = slot - self.clock()
            if delay > 0:
                await self.sleep(delay)
            if await self.paused_until() <= self.clock():
                return slot

    def is_late(self, slot: float) -> bool:
        """Whether a call made now would be too late for `slot` (see LATE_ALLOWANCE): it takes a new one."""
        return self.clock() - slot > LATE_ALLOWANCE

    async def pause(self, seconds: float) -> None:
        """Stop every replica's calls for `seconds` (Partoo's Retry-After)."""
        until = self.clock() + seconds
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Pace)
                .where(Pace.name == self.name)
                .values(
                    paused_until=case((Pace.paused_until < until, until), else_=Pace.paused_until),
                    next_slot_at=case((Pace.next_slot_at < until, until), else_=Pace.next_slot_at),
                )
            )


class ChannelPaces:
    """One shared pace per Slack channel: Slack allows about one post a second *per channel*, counting every
    post there (alerts, digests, command roots, thread replies, log lines), so every post takes its slot.

    The default alert channel keeps the `slack-alerts` row the first migration created; every other channel
    gets its own row, created the first time a post goes there. The rows keep their old `slack-alerts` names
    (from when only alerts were paced): renaming them would need a migration and would reset their pace.
    """

    def __init__(self, engine: AsyncEngine, per_minute: int, *, default_channel: str | None, burst: int = 1) -> None:
        self.engine = engine
        self.per_minute = per_minute
        self.default_channel = default_channel
        self.burst = burst
        self._paces: dict[str, SharedPace] = {}

    def name_for(self, channel_id: str) -> str:
        if channel_id == self.default_channel:
            return SLACK_ALERTS_PACE
        return f"{SLACK_ALERTS_PACE}:{channel_id}"[:_NAME_CHARS]

    async def for_channel(self, channel_id: str) -> SharedPace:
        pace = self._paces.get(channel_id)
        if pace is None:
            name = self.name_for(channel_id)
            await self._ensure_row(name)
            pace = self._paces[channel_id] = SharedPace(self.engine, self.per_minute, name=name, burst=self.burst)
        return pace

    async def _ensure_row(self, name: str) -> None:
        async with self.engine.connect() as connection:
            exists = (await connection.execute(select(Pace.name).where(Pace.name == name))).first() is not None
        if exists:
            return
        try:
            async with self.engine.begin() as connection:
                await connection.execute(insert(Pace).values(name=name, next_slot_at=0.0, paused_until=0.0))
        except IntegrityError:
            pass  # another replica created it first: the row is there, which is all that matters

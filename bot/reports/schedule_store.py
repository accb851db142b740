"""Which weekly reports were posted: one row an occurrence, claimed with a fenced lease, posted once.

Two replicas that find the same report due both insert its row (one insert wins, the other is a no-op),
then race for its claim: a conditional UPDATE that bumps the claim token. Only the holder of the latest
token may mark it posted, so a replica whose lease ran out mid-post (Slack's Retry-After, a stalled loop)
cannot mark it over the one that took it over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.platform.leases import lease_free
from bot.platform.models import WeeklyReport


def _insert(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


class ReportSchedule:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def claim(self, due_at: float, channel_id: str, lease_seconds: float) -> int | None:
        """The claim token for posting the report due at `due_at`, or None (posted, skipped, or held)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            # The first occurrence the bot ever sees was due before it ran: recorded as skipped, never posted.
            first = (await connection.execute(select(func.count()).select_from(WeeklyReport))).scalar_one() == 0
            await connection.execute(
                _insert(connection)(WeeklyReport)
                .values(due_at=due_at, channel_id=channel_id, claim=0, skipped=first, posted_at=now if first else None)
                .on_conflict_do_nothing(index_elements=[WeeklyReport.due_at])
            )
            claim = (
                await connection.execute(
                    update(WeeklyReport)
                    .where(
                        WeeklyReport.due_at == due_at,
                        WeeklyReport.posted_at.is_(None),
                        lease_free(WeeklyReport.lease_until, now),
                    )
                    .values(lease_until=now + lease_seconds, claim=WeeklyReport.claim + 1)
                    .returning(WeeklyReport.claim)
                )
            ).scalar_one_or_none()
        return int(claim) if claim is not None else None

    async def renew(self, due_at: float, claim: int, lease_seconds: float) -> bool:
        return await self._fenced(due_at, claim, lease_until=self.clock() + lease_seconds)

    async def mark_posted(self, due_at: float, claim: int, ts: str | None) -> bool:
        return await self._fenced(due_at, claim, posted_at=self.clock(), ts=ts, lease_until=None)

    async def release(self, due_at: float, claim: int, *, retry_in: float) -> None:
        await self._fenced(due_at, claim, lease_until=self.clock() + retry_in)

    async def posted(self) -> list[tuple[float, str | None]]:
        """Every occurrence posted (due time, message ts), oldest first; skipped ones are left out."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(WeeklyReport.due_at, WeeklyReport.ts)
                .where(WeeklyReport.posted_at.is_not(None), WeeklyReport.skipped.is_(False))
                .order_by(WeeklyReport.due_at)
            )
            return [(row.due_at, row.ts) for row in rows]

    async def _fenced(self, due_at: float, claim: int, **values: Any) -> bool:
        """Write `values` only while `claim` is still the occurrence's latest claim."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(WeeklyReport).where(WeeklyReport.due_at == due_at, WeeklyReport.claim == claim).values(**values)
            )
        return result.rowcount == 1

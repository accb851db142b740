"""Which weekly reports were posted: one row an occurrence, claimed with the fenced lease, posted once.

Two replicas that find the same report due both insert its row (one insert wins, the other is a no-op),
then race for its lease (bot.platform.leases): only the holder of the latest token may mark it posted, so a
replica whose lease ran out mid-post (Slack's Retry-After, a stalled loop) cannot mark it over the one that
took it over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.platform.leases import Held, Leases
from bot.platform.models import WeeklyReport, core_table


def _insert(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


class ReportSchedule:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.leases = Leases(
            engine, core_table(WeeklyReport), until="lease_until", fence="claim", key="due_at", clock=clock
        )

    async def claim(self, due_at: int, channel_id: str, lease_seconds: float) -> Held | None:
        """The lease for posting the report due at `due_at`, or None (posted, skipped, or held elsewhere)."""
        async with self.engine.begin() as connection:
            # The first occurrence the bot ever sees was due before it ran: recorded as skipped, never posted.
            first = (await connection.execute(select(func.count()).select_from(WeeklyReport))).scalar_one() == 0
            await connection.execute(
                _insert(connection)(WeeklyReport)
                .values(
                    due_at=due_at,
                    channel_id=channel_id,
                    claim=0,
                    skipped=first,
                    posted_at=self.clock() if first else None,
                )
                .on_conflict_do_nothing(index_elements=[WeeklyReport.due_at])
            )
        return await self.leases.claim(due_at, lease_seconds, WeeklyReport.posted_at.is_(None))

    async def mark_posted(self, held: Held, ts: str | None) -> bool:
        """Posted: only while still held (a replica taken over marks nothing)."""
        return await self.leases.write(held, {"posted_at": self.clock(), "ts": ts, "lease_until": None}) == 1

    async def posted(self) -> list[tuple[int, str | None]]:
        """Every occurrence posted (due time, message ts), oldest first; skipped ones are left out."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(WeeklyReport.due_at, WeeklyReport.ts)
                .where(WeeklyReport.posted_at.is_not(None), WeeklyReport.skipped.is_(False))
                .order_by(WeeklyReport.due_at)
            )
            return [(row.due_at, row.ts) for row in rows]

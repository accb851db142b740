"""The silences' rows, read by the alerter (what to hold back), the Slack listeners and the weekly report.

A silence ends by itself (`until`) or early (`end_now`); either way the alerter then sums up the alerts it
held back in one digest per channel (`summarize`), exactly once across replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.silences import Scope, Silence
from bot.failures.state import bump_alerts
from bot.platform.models import Alert, Digest
from bot.platform.models import Silence as SilenceRow

Clock = Callable[[], float]

_COLUMNS = list(SilenceRow.__table__.columns)


def silence_of(row: Row[Any]) -> Silence:
    return Silence(
        id=row.id,
        scope=Scope(row.scope),
        value=row.value,
        until=row.until,
        created_by=row.created_by,
        created_at=row.created_at,
        note=row.note,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
    )


class SilenceStore:
    """Starts, lists, ends and sums up silences."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def start(
        self,
        scope: Scope,
        value: str,
        until: float,
        created_by: str,
        *,
        note: str | None = None,
        origin_message_id: int | None = None,
    ) -> Silence:
        """A new silence; the alert it was started from is re-rendered to say so."""
        now = self.clock()
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    insert(SilenceRow)
                    .values(
                        scope=scope.value,
                        value=value,
                        until=until,
                        created_by=created_by,
                        created_at=now,
                        note=note,
                        origin_message_id=origin_message_id,
                    )
                    .returning(*_COLUMNS)
                )
            ).one()
            if origin_message_id is not None:
                await bump_alerts(connection, [origin_message_id])
        return silence_of(row)

    async def get(self, silence_id: int) -> Silence | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*_COLUMNS).where(SilenceRow.id == silence_id))).one_or_none()
        return silence_of(row) if row else None

    async def active(self) -> list[Silence]:
        """The silences holding failures back now, oldest first."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_COLUMNS).where(SilenceRow.ended_at.is_(None), SilenceRow.until > now).order_by(SilenceRow.id)
            )
            return [silence_of(row) for row in rows]

    async def started_from(self, message_id: int) -> list[Silence]:
        """The active silences someone started from the alert of this message (shown on that alert)."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_COLUMNS)
                .where(
                    SilenceRow.origin_message_id == message_id,
                    SilenceRow.ended_at.is_(None),
                    SilenceRow.until > now,
                )
                .order_by(SilenceRow.id)
            )
            return [silence_of(row) for row in rows]

    async def end_now(self, silence_id: int, ended_by: str) -> bool:
        """End an active silence early; False when it had already ended (by time or by someone)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            ended = await connection.execute(
                update(SilenceRow)
                .where(SilenceRow.id == silence_id, SilenceRow.ended_at.is_(None), SilenceRow.until > now)
                .values(ended_at=now, ended_by=ended_by)
                .returning(SilenceRow.origin_message_id)
            )
            origin = ended.one_or_none()
            if origin is None:
                return False
            if origin.origin_message_id is not None:
                await bump_alerts(connection, [origin.origin_message_id])
        return True

    async def due_summaries(self) -> list[Silence]:
        """Silences that ended and whose held alerts have not been summed up yet."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_COLUMNS)
                .where(
                    SilenceRow.summarized_at.is_(None),
                    or_(SilenceRow.ended_at.is_not(None), SilenceRow.until <= now),
                )
                .order_by(SilenceRow.id)
            )
            return [silence_of(row) for row in rows]

    async def summarize(self, silence: Silence) -> list[int]:
        """Group the alerts this silence held that are still failed into one digest per channel; their ids.

        The alert it was started from is then re-rendered, so it no longer says it is silenced.

        Exactly once across replicas: the transaction starts with a conditional UPDATE of the silence
        (`summarized_at IS NULL`). On PostgreSQL a second replica's UPDATE waits on the first one's row
        lock, then re-reads the row, finds it summarized and changes nothing, so it groups nothing and
        creates no digest; SQLite serializes the two transactions outright. A crash before the commit
        rolls back both the mark and the digests, and the next poll sums the silence up again.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            marked = await connection.execute(
                update(SilenceRow)
                .where(SilenceRow.id == silence.id, SilenceRow.summarized_at.is_(None))
                .values(summarized_at=now)
            )
            if marked.rowcount != 1:
                return []
            held = list(
                await connection.execute(
                    select(Alert.id, Alert.channel_id)
                    .where(
                        Alert.silence_id == silence.id,
                        Alert.ts.is_(None),
                        Alert.digest_id.is_(None),
                        Alert.delivered_at.is_(None),
                    )
                    .order_by(Alert.id)
                    .with_for_update()
                )
            )
            by_channel: dict[str, list[int]] = {}
            for alert_id, channel_id in held:
                by_channel.setdefault(channel_id, []).append(alert_id)
            digest_ids: list[int] = []
            origin = (
                await connection.execute(select(SilenceRow.origin_message_id).where(SilenceRow.id == silence.id))
            ).scalar_one_or_none()
            for channel_id, alert_ids in by_channel.items():
                digest_id = (
                    await connection.execute(
                        insert(Digest)
                        .values(
                            channel_id=channel_id, created_at=now, version=1, posted_version=0, silence_id=silence.id
                        )
                        .returning(Digest.id)
                    )
                ).scalar_one()
                await connection.execute(update(Alert).where(Alert.id.in_(alert_ids)).values(digest_id=digest_id))
                digest_ids.append(digest_id)
        if origin is not None:
            # Its own transaction: the held alerts are locked above, and alerts are only ever locked by id.
            # Lost in a crash, the alert keeps saying "until <time>", which has passed: nothing is wrong.
            async with self.engine.begin() as connection:
                await bump_alerts(connection, [origin])
        return digest_ids

    async def held_count(self, silence_ids: Sequence[int]) -> dict[int, int]:
        """How many alerts each silence holds back so far."""
        if not silence_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Alert.silence_id, func.count())
                .where(Alert.silence_id.in_(list(silence_ids)))
                .group_by(Alert.silence_id)
            )
            return {int(silence_id): int(count) for silence_id, count in rows if silence_id is not None}

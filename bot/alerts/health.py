"""Webhook health: a bot that silently stops receiving webhooks must not look like a quiet day.

Every signed Partoo delivery (whatever became of it: stored, duplicate, ignored, a test) is counted in
memory; the counts are written once every few seconds into per-minute rows shared by every replica, so
the App Home and `/readyz` show when the last delivery arrived and how many arrived in the last hour.

With WEBHOOK_SILENCE_ALERT_MINUTES set, the watch posts one warning in the alert channel when no delivery
arrived for that long, and one "back to normal" when deliveries return. The state lives in one row that
changes with conditional UPDATEs, and each notice is claimed with a lease before it is posted, so two
replicas never post it twice and a Slack outage delays it rather than losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts import messages as alert_messages
from bot.defaults import ALERT_CLAIM_SECONDS, HEALTH_FLUSH_SECONDS, HEALTH_WINDOW_SECONDS
from bot.domain.webhook_activity import BACK, SILENT, WebhookActivity
from bot.platform.leases import ClaimLost, Held, Leases, lease_free, while_claimed
from bot.platform.loop import PollingLoop
from bot.platform.models import WebhookIntake, WebhookWatch, core_table
from bot.platform.slack import SlackPoster, SlackPostError, SlackUnavailable

log = logging.getLogger(__name__)

WATCH = "partoo"
MINUTE = 60


def _upsert(connection: AsyncConnection) -> Any:
    """INSERT … ON CONFLICT for the connection's database (both speak it, through their own dialect)."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


class WebhookHealth:
    """Counts deliveries and answers "when was the last one, how many in the last hour"."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # The notice's post claim: a replica whose post outlived it cannot clear or give back the next one's.
        self.notices = Leases(
            engine,
            core_table(WebhookWatch),
            until="notice_lease_until",
            fence="notice_token",
            clock=lambda: self.clock(),
            key="name",
        )
        self._pending: dict[int, int] = {}  # minute -> deliveries not written yet
        self._pending_last: float | None = None

    def note_delivery(self) -> None:
        """Count one signed delivery (called by the webhook route; no I/O)."""
        now = self.clock()
        minute = int(now // MINUTE)
        self._pending[minute] = self._pending.get(minute, 0) + 1
        self._pending_last = now

    async def flush(self) -> None:
        """Write the counts kept in memory, and forget minutes older than the window."""
        # Counts leave memory only once written: a failed write is retried at the next flush, and a reader
        # in between never sees a delivery vanish.
        pending, last = dict(self._pending), self._pending_last
        async with self.engine.begin() as connection:
            await self._ensure_watch(connection)
            if pending and last is not None:
                insert = _upsert(connection)
                for minute, count in sorted(pending.items()):
                    statement = insert(WebhookIntake).values(minute=minute, deliveries=count, last_at=last)
                    await connection.execute(
                        statement.on_conflict_do_update(
                            index_elements=[WebhookIntake.minute],
                            set_={
                                "deliveries": WebhookIntake.deliveries + statement.excluded.deliveries,
                                "last_at": _later(WebhookIntake.last_at, statement.excluded.last_at),
                            },
                        )
                    )
                await connection.execute(
                    update(WebhookWatch)
                    .where(WebhookWatch.name == WATCH)
                    .values(last_delivery_at=_later(WebhookWatch.last_delivery_at, last))
                )
            oldest = int((self.clock() - HEALTH_WINDOW_SECONDS) // MINUTE) - 1
            await connection.execute(delete(WebhookIntake).where(WebhookIntake.minute < oldest))
        for minute, count in pending.items():
            left = self._pending.get(minute, 0) - count
            if left > 0:
                self._pending[minute] = left
            else:
                self._pending.pop(minute, None)

    async def _ensure_watch(self, connection: AsyncConnection) -> None:
        statement = _upsert(connection)(WebhookWatch).values(name=WATCH, watch_started_at=self.clock())
        await connection.execute(statement.on_conflict_do_nothing(index_elements=[WebhookWatch.name]))

    async def activity(self) -> WebhookActivity:
        """The last delivery and the count of the last hour, this process's unwritten ones included."""
        since = int((self.clock() - HEALTH_WINDOW_SECONDS) // MINUTE) + 1
        async with self.engine.connect() as connection:
            last_hour = (
                await connection.execute(
                    select(func.coalesce(func.sum(WebhookIntake.deliveries), 0)).where(WebhookIntake.minute >= since)
                )
            ).scalar_one()
            last_at = (
                await connection.execute(select(WebhookWatch.last_delivery_at).where(WebhookWatch.name == WATCH))
            ).scalar_one_or_none()
        pending = sum(count for minute, count in self._pending.items() if minute >= since)
        latest = max((at for at in (last_at, self._pending_last) if at is not None), default=None)
        return WebhookActivity(last_at=latest, last_hour=int(last_hour) + pending)

    # -- the silence watch ----------------------------------------------------------------------

    async def watch_silence(self, silence_seconds: float) -> None:
        """Move the watch between normal and silent; a move leaves the notice to post (or withdraws one)."""
        now = self.clock()
        # A notice not yet posted (nor being posted) is withdrawn by the opposite move: nothing to say. One being
        # posted right now is followed by the opposite one.
        unposted = lease_free(WebhookWatch.notice_lease_until, now)
        async with self.engine.begin() as connection:
            await self._ensure_watch(connection)
            await connection.execute(
                update(WebhookWatch)
                .where(
                    WebhookWatch.name == WATCH,
                    WebhookWatch.silent_since.is_not(None),
                    WebhookWatch.last_delivery_at >= WebhookWatch.silent_since,
                )
                .values(
                    silent_since=None,
                    notice_due=case((and_(WebhookWatch.notice_due == SILENT, unposted), None), else_=BACK),
                )
            )
            await connection.execute(
                update(WebhookWatch)
                .where(
                    WebhookWatch.name == WATCH,
                    WebhookWatch.silent_since.is_(None),
                    func.coalesce(WebhookWatch.last_delivery_at, WebhookWatch.watch_started_at) < now - silence_seconds,
                )
                .values(
                    silent_since=now,
                    notice_due=case((and_(WebhookWatch.notice_due == BACK, unposted), None), else_=SILENT),
                )
            )

    async def claim_notice(self, lease_seconds: float) -> tuple[str, float | None, Held] | None:
        """Take the notice to post, if any: (SILENT or BACK, the last delivery's time, the claim)."""
        held = await self.notices.claim(WATCH, lease_seconds, WebhookWatch.notice_due.is_not(None))
        if held is None:
            return None
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(WebhookWatch.notice_due, WebhookWatch.last_delivery_at).where(WebhookWatch.name == WATCH)
                )
            ).one()
        return str(row.notice_due), row.last_delivery_at, held

    async def notice_done(self, held: Held, notice: str) -> bool:
        """The notice was posted (or cannot be): clear it, unless the opposite one replaced it meanwhile.

        False when another replica took the notice over (it posts it; this one clears nothing).
        """
        due = case((WebhookWatch.notice_due == notice, None), else_=WebhookWatch.notice_due)
        return await self.notices.write(held, {"notice_due": due, "notice_lease_until": None}) == 1

    async def release_notice(self, held: Held) -> bool:
        return await self.notices.release(held) == 1


def _later(column: Any, value: Any) -> Any:
    """The later of a nullable column and a value, on both databases (SQLite has no GREATEST)."""
    return case((column.is_(None), value), (column < value, value), else_=column)


class WebhookWatcher(PollingLoop):
    """Writes the delivery counts every few seconds and, when configured, watches for silence."""

    name = "webhook-watch"

    def __init__(
        self,
        health: WebhookHealth,
        poster: SlackPoster,
        *,
        alert_channel: str | None,
        silence_minutes: int | None,
        poll_interval: float = HEALTH_FLUSH_SECONDS,
    ) -> None:
        super().__init__(poll_interval)
        self.health = health
        self.poster = poster
        self.alert_channel = alert_channel
        self.silence_minutes = silence_minutes

    async def run(self) -> None:
        # Nothing to write at start: the first round comes one interval later, not among the start's queries.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        self._wake.clear()
        if not self._stopping:
            await super().run()

    async def tick(self) -> bool:
        await self.health.flush()
        if self.silence_minutes and self.alert_channel:
            await self.health.watch_silence(self.silence_minutes * 60.0)
            await self._post_notice(self.alert_channel, self.silence_minutes)
        return False

    async def _post_notice(self, channel: str, minutes: int) -> None:
        claimed = await self.health.claim_notice(ALERT_CLAIM_SECONDS)
        if claimed is None:
            return
        notice, last_at, held = claimed
        message = (
            alert_messages.webhook_silence(minutes, last_at)
            if notice == SILENT
            else alert_messages.webhook_back(last_at)
        )
        try:
            renew = self.health.notices.renewer(held, ALERT_CLAIM_SECONDS)
            await while_claimed(
                self.poster.post(channel, message),
                renew,
                ALERT_CLAIM_SECONDS / 3,
                give_back=lambda: self.health.release_notice(held),
            )
        except ClaimLost:
            log.warning("webhook %s notice: another replica took it over", notice)
            return
        except SlackUnavailable as error:
            log.warning("webhook %s notice not posted yet (%s); will retry", notice, error.error)
            await self.health.release_notice(held)
            return
        except SlackPostError as error:
            log.error("webhook %s notice cannot be posted: %s", notice, error.error)
        else:
            log.warning("webhook %s notice posted in %s", notice, channel)
        if not await self.health.notice_done(held, notice):
            log.warning("webhook %s notice: another replica took it over while it was posted", notice)

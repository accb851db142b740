"""Stored webhook events, the alerts they raise, and the digests that group alerts in a flood.

Events are written before Partoo gets its 200, then turned into alert state by the alerter; the alert
rows carry a `version` that every change bumps, so the Slack message can be re-rendered from the row
whenever it falls behind, by whichever replica gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.event_store import EventIntake
from bot.alerts.post_claims import PostClaims
from bot.defaults import PREVIEW_CHARS
from bot.failures.state import ALERT_COLUMNS
from bot.failures.store import DIGEST_COLUMNS, AlertView, DigestView, FailureStore, alert_view, digest_view
from bot.failures.webhook_events import WebhookEvent
from bot.platform.group_commit import GroupCommit, intake_writers
from bot.platform.leases import lease_free
from bot.platform.models import Alert, Digest

Clock = Callable[[], float]


class AlertStore(FailureStore, EventIntake, PostClaims):
    """The alerter's reads and writes of webhook events, alerts and digests (posts' claims: PostClaims)."""

    def __init__(
        self, engine: AsyncEngine, *, preview_chars: int | None = PREVIEW_CHARS, clock: Clock = time.time
    ) -> None:
        super().__init__(engine, clock=clock)
        # Only a preview of what the business wrote is kept (or nothing, with STORE_MESSAGE_PREVIEW=false).
        self.preview_chars = preview_chars
        self._intake: GroupCommit[WebhookEvent, bool] = GroupCommit(
            engine, self.insert_events, name="webhook-intake", writers=intake_writers(engine)
        )

    # -- alerts ---------------------------------------------------------------------------------

    # -- message shortcut: which alert or digest a Slack message is ----------------------------------

    # -- alerts, continued ----------------------------------------------------------------------

    async def new_alerts(self, limit: int = 500) -> list[AlertView]:
        """Alerts neither posted nor grouped into a digest yet, oldest first."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*ALERT_COLUMNS)
                .where(
                    Alert.ts.is_(None),
                    Alert.digest_id.is_(None),
                    # An alert Slack refused for good waits until it changes, rather than failing every poll.
                    Alert.posted_version < Alert.version,
                    lease_free(Alert.post_lease_until, now),
                )
                .order_by(Alert.id)
                .limit(limit)
            )
            return [alert_view(row) for row in rows]

    async def hold(self, alert: AlertView, silence_id: int) -> bool:
        """Hold a new alert back for a silence: its version counts as handled, so it is not picked again
        until it changes (a repeated failure is then held again; a retry someone asks for is posted)."""
        async with self.engine.begin() as connection:
            held = await connection.execute(
                update(Alert)
                .where(
                    Alert.id == alert.id,
                    Alert.version == alert.version,
                    Alert.ts.is_(None),
                    Alert.digest_id.is_(None),
                    lease_free(Alert.post_lease_until, self.clock()),
                )
                .values(silence_id=silence_id, posted_version=alert.version)
            )
            return held.rowcount == 1

    async def stale_alerts(self, limit: int = 50) -> list[AlertView]:
        """Posted alerts whose message shows an older version than the row."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*ALERT_COLUMNS)
                .where(
                    Alert.ts.is_not(None),
                    Alert.version > Alert.posted_version,
                    lease_free(Alert.post_lease_until, now),
                )
                .order_by(Alert.id)
                .limit(limit)
            )
            return [alert_view(row) for row in rows]

    # -- digests --------------------------------------------------------------------------------

    async def open_digest(self, channel_id: str, window_seconds: float) -> DigestView | None:
        """The digest that new failures in this channel join, if one was opened recently."""
        since = self.clock() - window_seconds
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*DIGEST_COLUMNS)
                    .where(
                        Digest.channel_id == channel_id,
                        Digest.created_at >= since,
                        Digest.retry_requested_by.is_(None),
                        # A silence's summary is about that silence only: a flood starts its own digest.
                        Digest.silence_id.is_(None),
                    )
                    .order_by(Digest.id.desc())
                    .limit(1)
                )
            ).one_or_none()
        return digest_view(row) if row else None

    async def group(self, alert_ids: Sequence[int], channel_id: str, digest_id: int | None) -> int | None:
        """Put ungrouped, unposted alerts into a digest (a new one when digest_id is None)."""
        try:
            return await self._group(alert_ids, channel_id, digest_id)
        except _NothingToGroupError:
            return None

    async def _group(self, alert_ids: Sequence[int], channel_id: str, digest_id: int | None) -> int:
        now = self.clock()
        async with self.engine.begin() as connection:
            if digest_id is None:
                digest_id = (
                    await connection.execute(
                        insert(Digest)
                        .values(channel_id=channel_id, created_at=now, version=1, posted_version=0)
                        .returning(Digest.id)
                    )
                ).scalar_one()
            grouped = await connection.execute(
                update(Alert)
                .where(
                    Alert.id.in_(list(alert_ids)),
                    Alert.ts.is_(None),
                    Alert.digest_id.is_(None),
                    lease_free(Alert.post_lease_until, now),
                )
                .values(digest_id=digest_id)
            )
            if grouped.rowcount == 0:
                # Another replica grouped or posted them first: roll back, so no empty digest is posted.
                raise _NothingToGroupError
            await connection.execute(update(Digest).where(Digest.id == digest_id).values(version=Digest.version + 1))
        return digest_id

    async def stale_digests(self) -> list[DigestView]:
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*DIGEST_COLUMNS)
                .where(
                    Digest.version > Digest.posted_version,
                    lease_free(Digest.post_lease_until, now),
                )
                .order_by(Digest.id)
            )
            return [digest_view(row) for row in rows]

    # -- counts ---------------------------------------------------------------------------------


class _NothingToGroupError(Exception):
    """Rolls back a digest that would have been empty."""

"""Stored webhook events, the alerts they raise, and the digests that group alerts in a flood.

Events are written before Partoo gets its 200, then turned into alert state by the alerter; the alert
rows carry a `version` that every change bumps, so the Slack message can be re-rendered from the row
whenever it falls behind, by whichever replica gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.changes import ALERT_COLUMNS, alert_state
from bot.alerts.event_store import EventIntake
from bot.alerts.events import WebhookEvent
from bot.alerts.posts import PostClaims
from bot.defaults import PREVIEW_CHARS
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN, AlertState, DigestState
from bot.domain.outcomes import OutcomeKind
from bot.platform.group_commit import GroupCommit, intake_writers
from bot.platform.leases import lease_free
from bot.platform.models import Alert, Batch, Digest, Request, RequestState

Clock = Callable[[], float]


@dataclass(frozen=True)
class AlertView:
    id: int
    message_id: int
    channel_id: str
    ts: str | None
    digest_id: int | None
    version: int
    posted_version: int
    state: AlertState
    # Slack's error when the alert cannot be posted in its channel (shown by `status`).
    post_error: str | None = None


@dataclass(frozen=True)
class DigestView:
    id: int
    channel_id: str
    ts: str | None
    created_at: float
    version: int
    posted_version: int
    posted_at: float | None
    retry_requested_by: str | None
    post_error: str | None = None


def _alert_view(row: Row[Any]) -> AlertView:
    return AlertView(
        id=row.id,
        message_id=row.message_id,
        channel_id=row.channel_id,
        ts=row.ts,
        digest_id=row.digest_id,
        version=row.version,
        posted_version=row.posted_version,
        state=alert_state(row),
        post_error=row.post_error,
    )


def _digest_view(row: Row[Any]) -> DigestView:
    return DigestView(
        id=row.id,
        channel_id=row.channel_id,
        ts=row.ts,
        created_at=row.created_at,
        version=row.version,
        posted_version=row.posted_version,
        posted_at=row.posted_at,
        retry_requested_by=row.retry_requested_by,
        post_error=row.post_error,
    )


_ALERT_COLUMNS = ALERT_COLUMNS
# Built once: SQLAlchemy then reuses the compiled statement instead of rebuilding it for every delivery.
_DIGEST_COLUMNS = list(Digest.__table__.columns)


class AlertStore(EventIntake, PostClaims):
    """All reads and writes of webhook events, alerts and digests (their posts' claims: PostClaims)."""

    def __init__(
        self, engine: AsyncEngine, *, preview_chars: int | None = PREVIEW_CHARS, clock: Clock = time.time
    ) -> None:
        self.engine = engine
        # Only a preview of what the business wrote is kept (or nothing, with STORE_MESSAGE_PREVIEW=false).
        self.preview_chars = preview_chars
        self.clock = clock
        self._intake: GroupCommit[WebhookEvent, bool] = GroupCommit(
            engine, self.insert_events, name="webhook-intake", writers=intake_writers(engine)
        )

    # -- alerts ---------------------------------------------------------------------------------

    async def alert_for(self, message_id: int) -> AlertView | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(*_ALERT_COLUMNS).where(Alert.message_id == message_id))
            ).one_or_none()
        return _alert_view(row) if row else None

    async def alerts_for(self, message_ids: Sequence[int]) -> dict[int, AlertView]:
        if not message_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(*_ALERT_COLUMNS).where(Alert.message_id.in_(list(message_ids))))
            return {row.message_id: _alert_view(row) for row in rows}

    # -- message shortcut: which alert or digest a Slack message is ----------------------------------

    async def alert_posted_at(self, channel_id: str, ts: str) -> AlertView | None:
        """The alert the bot posted as this Slack message, if it is one."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(*_ALERT_COLUMNS).where(Alert.channel_id == channel_id, Alert.ts == ts))
            ).first()
        return _alert_view(row) if row else None

    async def digest_posted_at(self, channel_id: str, ts: str) -> DigestView | None:
        """The digest the bot posted as this Slack message, if it is one."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*_DIGEST_COLUMNS).where(Digest.channel_id == channel_id, Digest.ts == ts)
                )
            ).first()
        return _digest_view(row) if row else None

    # -- alerts, continued ----------------------------------------------------------------------

    async def new_alerts(self, limit: int = 500) -> list[AlertView]:
        """Alerts neither posted nor grouped into a digest yet, oldest first."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_ALERT_COLUMNS)
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
            return [_alert_view(row) for row in rows]

    async def stale_alerts(self, limit: int = 50) -> list[AlertView]:
        """Posted alerts whose message shows an older version than the row."""
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_ALERT_COLUMNS)
                .where(
                    Alert.ts.is_not(None),
                    Alert.version > Alert.posted_version,
                    lease_free(Alert.post_lease_until, now),
                )
                .order_by(Alert.id)
                .limit(limit)
            )
            return [_alert_view(row) for row in rows]

    # -- digests --------------------------------------------------------------------------------

    async def open_digest(self, channel_id: str, window_seconds: float) -> DigestView | None:
        """The digest that new failures in this channel join, if one was opened recently."""
        since = self.clock() - window_seconds
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*_DIGEST_COLUMNS)
                    .where(
                        Digest.channel_id == channel_id,
                        Digest.created_at >= since,
                        Digest.retry_requested_by.is_(None),
                    )
                    .order_by(Digest.id.desc())
                    .limit(1)
                )
            ).one_or_none()
        return _digest_view(row) if row else None

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
                select(*_DIGEST_COLUMNS)
                .where(
                    Digest.version > Digest.posted_version,
                    lease_free(Digest.post_lease_until, now),
                )
                .order_by(Digest.id)
            )
            return [_digest_view(row) for row in rows]

    async def digest(self, digest_id: int) -> DigestView | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*_DIGEST_COLUMNS).where(Digest.id == digest_id))).one_or_none()
        return _digest_view(row) if row else None

    async def digest_alerts(self, digest_id: int) -> list[AlertView]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_ALERT_COLUMNS).where(Alert.digest_id == digest_id).order_by(Alert.id)
            )
            return [_alert_view(row) for row in rows]

    async def request_retry_all(self, digest_id: int, user_id: str) -> bool:
        """Mark a digest as retried by someone; False when someone already did."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Digest)
                .where(Digest.id == digest_id, Digest.retry_requested_by.is_(None))
                .values(retry_requested_by=user_id, version=Digest.version + 1)
            )
        return result.rowcount == 1

    async def digest_state(self, digest: DigestView) -> DigestState:
        """Everything the digest message shows, from its alerts and the retries of its Retry all."""
        alerts = await self.digest_alerts(digest.id)
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(Request.outcome, Request.state, Request.delivery, func.count())
                    .join(Batch, Batch.id == Request.batch_id)
                    .where(Batch.digest_id == digest.id)
                    .group_by(Request.outcome, Request.state, Request.delivery)
                )
            )
        requested = sum(count for *_rest, count in rows)
        accepted = sum(count for outcome, _s, _d, count in rows if outcome == OutcomeKind.ACCEPTED.value)
        skipped = sum(count for outcome, _s, _d, count in rows if outcome == OutcomeKind.SKIPPED.value)
        refused = sum(
            count
            for outcome, state, _d, count in rows
            if state == RequestState.DONE and outcome != OutcomeKind.ACCEPTED.value
        )
        refused -= skipped
        return DigestState(
            digest_id=digest.id,
            failures=[alert.state.failure for alert in alerts],
            first_at=min((alert.state.failed_at for alert in alerts), default=digest.created_at),
            retry_requested_by=digest.retry_requested_by,
            requested=requested,
            accepted=accepted,
            refused=refused,
            delivered=sum(count for _o, _s, delivery, count in rows if delivery == DELIVERED),
            failed_again=sum(count for _o, _s, delivery, count in rows if delivery == FAILED_AGAIN),
            skipped=skipped,
            verdicts={alert.message_id: alert.state.verdict for alert in alerts if alert.state.verdict is not None},
        )

    # -- counts ---------------------------------------------------------------------------------

    async def delivery_counts(self, since: float) -> dict[str, int]:
        """How many retries made since a time were reported delivered, or failed again."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Request.delivery, func.count())
                .where(Request.requested_at >= since, Request.delivery.is_not(None))
                .group_by(Request.delivery)
            )
            return {str(delivery): int(count) for delivery, count in rows}


class _NothingToGroupError(Exception):
    """Rolls back a digest that would have been empty."""

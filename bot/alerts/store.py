"""Stored webhook events, the alerts they raise, and the digests that group alerts in a flood.

Events are written before Partoo gets its 200, then turned into alert state by the alerter; the alert
rows carry a `version` that every change bumps, so the Slack message can be re-rendered from the row
whenever it falls behind, by whichever replica gets there first.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.changes import ALERT_COLUMNS, alert_state, apply_to_alerts, state_columns
from bot.alerts.events import WebhookEvent, for_storage, parse_event
from bot.alerts.posts import PostClaims
from bot.defaults import PREVIEW_CHARS
from bot.domain import lifecycle
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN, AlertState, DigestState
from bot.domain.message import SUCCESS, MessageUpdate, is_failure_alert
from bot.domain.outcomes import OutcomeKind
from bot.platform.leases import lease_free
from bot.platform.models import Alert, Batch, Digest, Request, RequestState
from bot.platform.models import WebhookEvent as EventRow

Clock = Callable[[], float]


@dataclass(frozen=True)
class StoredEvent:
    id: int
    received_at: float
    event: WebhookEvent


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
_DIGEST_COLUMNS = list(Digest.__table__.columns)


class AlertStore(PostClaims):
    """All reads and writes of webhook events, alerts and digests (their posts' claims: PostClaims)."""

    def __init__(
        self, engine: AsyncEngine, *, preview_chars: int | None = PREVIEW_CHARS, clock: Clock = time.time
    ) -> None:
        self.engine = engine
        # Only a preview of what the business wrote is kept (or nothing, with STORE_MESSAGE_PREVIEW=false).
        self.preview_chars = preview_chars
        self.clock = clock

    # -- intake -------------------------------------------------------------------------------

    async def store_event(self, event: WebhookEvent, body: bytes) -> bool:
        """Store a verified delivery; False when the same event was already stored (a redelivery).

        Partoo's bodies carry no event id: a failure after a retry can be byte for byte the first one. So
        the key is the body's hash *and* how many retries of the message had been asked for when it
        arrived (read in the same transaction): redeliveries between two retries collapse, while a
        failure reported after a retry is news.
        """
        message = event.message
        try:
            async with self.engine.begin() as connection:
                generation = await _retry_generation(connection, message.message_id) if message else 0
                await connection.execute(
                    insert(EventRow).values(
                        dedupe_key=dedupe_key(event.dedupe_key, generation),
                        retry_generation=generation,
                        received_at=self.clock(),
                        type=event.type,
                        message_id=message.message_id if message else None,
                        status=message.status[:32] if message else None,
                        payload=for_storage(body, self.preview_chars).decode("utf-8"),
                    )
                )
        except IntegrityError:
            return False
        return True

    async def claim_events(self, lease_seconds: float, limit: int = 200) -> list[StoredEvent]:
        """Take unprocessed events, oldest first, for `lease_seconds`."""
        now = self.clock()
        claimable = and_(
            EventRow.processed_at.is_(None),
            lease_free(EventRow.lease_until, now),
        )
        async with self.engine.begin() as connection:
            rows = list(
                await connection.execute(
                    select(EventRow.id, EventRow.received_at, EventRow.payload)
                    .where(claimable)
                    .order_by(EventRow.id)
                    .limit(limit)
                )
            )
            if not rows:
                return []
            await connection.execute(
                update(EventRow)
                .where(EventRow.id.in_([row.id for row in rows]), claimable)
                .values(lease_until=now + lease_seconds)
            )
        return [StoredEvent(row.id, row.received_at, parse_event(row.payload.encode())) for row in rows]

    async def apply(self, stored: StoredEvent, alert_channel: str | None) -> None:
        """Turn one event into alert and delivery state, and mark it processed, in one transaction."""
        update_ = stored.event.message
        async with self.engine.begin() as connection:
            already = (
                await connection.execute(select(EventRow.processed_at).where(EventRow.id == stored.id))
            ).scalar_one()
            if already is not None:
                return
            if update_ is not None and stored.event.type == "message_updated":
                await self._apply_update(connection, update_, stored.received_at, alert_channel)
            await connection.execute(update(EventRow).where(EventRow.id == stored.id).values(processed_at=self.clock()))

    async def _apply_update(
        self, connection: AsyncConnection, message: MessageUpdate, at: float, alert_channel: str | None
    ) -> None:
        if is_failure_alert(message):
            await self._mark_delivery(connection, message.message_id, FAILED_AGAIN, at)
            failed = lifecycle.Failed(message, at)
            if await apply_to_alerts(connection, [message.message_id], failed) == 0 and alert_channel:
                exists = (
                    await connection.execute(select(Alert.id).where(Alert.message_id == message.message_id))
                ).scalar_one_or_none()
                if exists is None:
                    await connection.execute(
                        insert(Alert).values(
                            message_id=message.message_id,
                            channel_id=alert_channel,
                            version=1,
                            posted_version=0,
                            **state_columns(lifecycle.open_alert(failed)),
                        )
                    )
        elif message.status == SUCCESS:
            await self._mark_delivery(connection, message.message_id, DELIVERED, at)
            await apply_to_alerts(connection, [message.message_id], lifecycle.Delivered(at))

    async def _mark_delivery(self, connection: AsyncConnection, message_id: int, delivery: str, at: float) -> None:
        """Record on the latest accepted retry of the message what became of it."""
        latest = (
            await connection.execute(
                select(Request.id)
                .where(
                    Request.message_id == message_id,
                    Request.outcome == OutcomeKind.ACCEPTED.value,
                    Request.delivery.is_(None),
                )
                .order_by(Request.finished_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if latest is not None:
            await connection.execute(
                update(Request).where(Request.id == latest).values(delivery=delivery, delivery_at=at)
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
        refused = sum(
            count
            for outcome, state, _d, count in rows
            if state == RequestState.DONE and outcome != OutcomeKind.ACCEPTED.value
        )
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


def dedupe_key(body_key: str, generation: int) -> str:
    """The stored dedupe key: the body's own key before any retry (as it always was), then one per retry."""
    if generation == 0:
        return body_key
    return hashlib.sha256(f"{body_key}:{generation}".encode("ascii")).hexdigest()


async def _retry_generation(connection: AsyncConnection, message_id: int) -> int:
    return int(
        (
            await connection.execute(select(func.count()).select_from(Request).where(Request.message_id == message_id))
        ).scalar_one()
    )


class _NothingToGroupError(Exception):
    """Rolls back a digest that would have been empty."""

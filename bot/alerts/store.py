"""Stored webhook events, the alerts they raise, and the digests that group alerts in a flood.

Events are written before Partoo gets its 200, then turned into alert state by the alerter; the alert
rows carry a `version` that every change bumps, so the Slack message can be re-rendered from the row
whenever it falls behind, by whichever replica gets there first.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.changes import bump_alerts
from bot.alerts.events import WebhookEvent, for_storage, parse_event
from bot.defaults import PREVIEW_CHARS
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN, AlertState, DigestState
from bot.domain.message import SUCCESS, MessageUpdate, is_failure_alert
from bot.domain.outcomes import OutcomeKind
from bot.platform.group_commit import GroupCommit, together_on
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


def failure_json(update: MessageUpdate) -> str:
    values = dataclasses.asdict(update)
    values["date"] = update.date.isoformat() if update.date else None
    return json.dumps(values)


def failure_from_json(text: str) -> MessageUpdate:
    values: dict[str, Any] = json.loads(text)
    values["date"] = datetime.fromisoformat(values["date"]) if values.get("date") else None
    return MessageUpdate(**values)


def _alert_view(row: Row[Any]) -> AlertView:
    return AlertView(
        id=row.id,
        message_id=row.message_id,
        channel_id=row.channel_id,
        ts=row.ts,
        digest_id=row.digest_id,
        version=row.version,
        posted_version=row.posted_version,
        state=AlertState(
            failure=failure_from_json(row.failure),
            failed_at=row.failed_at,
            failures=row.failures,
            retry_requested_by=row.retry_requested_by,
            retry_requested_at=row.retry_requested_at,
            retries=row.retries,
            last_outcome=OutcomeKind(row.last_outcome) if row.last_outcome else None,
            last_detail=row.last_detail,
            delivered_at=row.delivered_at,
            failed_again_at=row.failed_again_at,
        ),
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
    )


_ALERT_COLUMNS = list(Alert.__table__.columns)
# Built once: SQLAlchemy then reuses the compiled statement instead of rebuilding it for every delivery.
_INSERT_EVENTS = {
    "sqlite": sqlite_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
    "postgresql": postgresql_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
}
_DIGEST_COLUMNS = list(Digest.__table__.columns)


class AlertStore:
    """All reads and writes of webhook events, alerts and digests."""

    def __init__(
        self, engine: AsyncEngine, *, preview_chars: int | None = PREVIEW_CHARS, clock: Clock = time.time
    ) -> None:
        self.engine = engine
        # Only a preview of what the business wrote is kept (or nothing, with STORE_MESSAGE_PREVIEW=false).
        self.preview_chars = preview_chars
        self.clock = clock
        self._intake: GroupCommit[tuple[WebhookEvent, bytes], bool] = GroupCommit(
            engine, self.insert_events, name="webhook-intake", together=together_on(engine)
        )

    # -- intake -------------------------------------------------------------------------------

    async def store_event(self, event: WebhookEvent, body: bytes) -> bool:
        """Store a verified delivery; False when the same event was already stored (a redelivery).

        Returns once the row is committed, together with the deliveries that arrived meanwhile (group commit).
        """
        return await self._intake.submit((event, body))

    def event_row(self, event: WebhookEvent, body: bytes) -> dict[str, Any]:
        """What is kept of one verified delivery: the row `store_event` inserts."""
        message = event.message
        return {
            "dedupe_key": event.dedupe_key,
            "received_at": self.clock(),
            "type": event.type,
            "message_id": message.message_id if message else None,
            "status": message.status[:32] if message else None,
            "payload": for_storage(body, self.preview_chars).decode("utf-8"),
        }

    async def insert_events(
        self, connection: AsyncConnection, deliveries: list[tuple[WebhookEvent, bytes]]
    ) -> list[bool]:
        """Insert a batch of deliveries in the intake's shared transaction; False for each redelivery.

        One INSERT for the whole batch. A redelivery is skipped by ON CONFLICT rather than caught as an
        IntegrityError: on PostgreSQL an error would abort the shared transaction, and the batch with it.
        """
        rows = [self.event_row(event, body) for event, body in deliveries]
        inserted = {row.dedupe_key for row in await connection.execute(_INSERT_EVENTS[connection.dialect.name], rows)}
        stored = []
        for row in rows:
            # The same delivery twice in one batch: only its first copy counts as stored.
            fresh = row["dedupe_key"] in inserted
            inserted.discard(row["dedupe_key"])
            stored.append(fresh)
        return stored

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
            existing = (
                await connection.execute(select(Alert.id).where(Alert.message_id == message.message_id))
            ).scalar_one_or_none()
            if existing is not None:
                await bump_alerts(
                    connection,
                    [message.message_id],
                    failures=Alert.failures + 1,
                    failed_again_at=at,
                    failure=failure_json(message),
                    delivered_at=None,
                )
            elif alert_channel:
                await connection.execute(
                    insert(Alert).values(
                        message_id=message.message_id,
                        channel_id=alert_channel,
                        failure=failure_json(message),
                        failed_at=at,
                        failures=1,
                        retries=0,
                        version=1,
                        posted_version=0,
                    )
                )
        elif message.status == SUCCESS:
            await self._mark_delivery(connection, message.message_id, DELIVERED, at)
            await bump_alerts(connection, [message.message_id], delivered_at=at)

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

    async def claim_alert(self, alert: AlertView, lease_seconds: float) -> bool:
        """Take the job of posting or updating this alert's message (one replica at a time)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            conditions = [
                Alert.id == alert.id,
                lease_free(Alert.post_lease_until, now),
            ]
            if alert.ts is None:
                conditions.append(Alert.digest_id.is_(None))  # not grouped into a digest meanwhile
            result = await connection.execute(
                update(Alert).where(*conditions).values(post_lease_until=now + lease_seconds)
            )
        return result.rowcount == 1

    async def mark_alert_posted(self, alert_id: int, version: int, ts: str | None) -> None:
        values: dict[str, Any] = {"posted_version": version, "post_lease_until": None}
        if ts is not None:
            values["ts"] = ts
        async with self.engine.begin() as connection:
            await connection.execute(update(Alert).where(Alert.id == alert_id).values(**values))

    async def release_alert(self, alert_id: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(Alert).where(Alert.id == alert_id).values(post_lease_until=None))

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

    async def claim_digest(self, digest_id: int, lease_seconds: float) -> bool:
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Digest)
                .where(
                    Digest.id == digest_id,
                    lease_free(Digest.post_lease_until, now),
                )
                .values(post_lease_until=now + lease_seconds)
            )
        return result.rowcount == 1

    async def mark_digest_posted(self, digest_id: int, version: int, ts: str | None) -> None:
        values: dict[str, Any] = {
            "posted_version": version,
            "post_lease_until": None,
            "posted_at": self.clock(),
        }
        if ts is not None:
            values["ts"] = ts
        async with self.engine.begin() as connection:
            await connection.execute(update(Digest).where(Digest.id == digest_id).values(**values))

    async def release_digest(self, digest_id: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(Digest).where(Digest.id == digest_id).values(post_lease_until=None))

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


class _NothingToGroupError(Exception):
    """Rolls back a digest that would have been empty."""

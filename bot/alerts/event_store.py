"""Partoo's webhook events, from the signed delivery to the alert state they change.

A delivery is stored (group-committed, deduplicated) before Partoo gets its 200; the alerter then claims
events and applies each in arrival order, through the lifecycle (bot.alerts.changes). Events that concern
no alert and no retry are dropped once applied. A base of AlertStore (bot.alerts.store).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.changes import apply_to_alerts, state_columns
from bot.alerts.events import WebhookEvent, for_storage, parse_event
from bot.domain import lifecycle
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN
from bot.domain.message import SUCCESS, MessageUpdate, is_failure_alert
from bot.domain.outcomes import OutcomeKind
from bot.platform.group_commit import GroupCommit
from bot.platform.leases import lease_free
from bot.platform.models import Alert, Request
from bot.platform.models import WebhookEvent as EventRow

Clock = Callable[[], float]


@dataclass(frozen=True)
class StoredEvent:
    id: int
    received_at: float
    event: WebhookEvent


_INSERT_EVENTS = {
    "sqlite": sqlite_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
    "postgresql": postgresql_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
}


class EventIntake:
    """Storing, claiming and applying webhook events."""

    engine: AsyncEngine
    clock: Callable[[], float]
    preview_chars: int | None
    _intake: GroupCommit[tuple[WebhookEvent, bytes], bool]

    # -- intake -------------------------------------------------------------------------------

    async def store_event(self, event: WebhookEvent, body: bytes) -> bool:
        """Store a verified delivery; False when the same event was already stored (a redelivery).

        Partoo's bodies carry no event id: a failure after a retry can be byte for byte the first one. So
        the key is the body's hash *and* how many retries of the message had been asked for when it
        arrived (read in the writer's transaction): redeliveries between two retries collapse, while a
        failure reported after a retry is news.

        Returns once the row is committed, together with the deliveries that arrived meanwhile (group commit).
        """
        return await self._intake.submit((event, body))

    def event_row(self, event: WebhookEvent, body: bytes, generation: int) -> dict[str, Any]:
        """What is kept of one verified delivery: the row `store_event` inserts."""
        message = event.message
        return {
            "dedupe_key": dedupe_key(event.dedupe_key, generation),
            "retry_generation": generation,
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
        message_ids = {event.message.message_id for event, _body in deliveries if event.message}
        generations = await _retry_generations(connection, message_ids)
        rows = [
            self.event_row(event, body, generations.get(event.message.message_id, 0) if event.message else 0)
            for event, body in deliveries
        ]
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
            if await self._waits_for_earlier_event(connection, stored):
                return
            if update_ is not None and stored.event.type == "message_updated":
                await self._apply_update(connection, update_, stored.received_at, alert_channel)
            if await self._dropped_as_unrelated(connection, stored):
                return
            await connection.execute(update(EventRow).where(EventRow.id == stored.id).values(processed_at=self.clock()))

    # -- retention: what is worth keeping (issue #12) -------------------------------------------

    async def _waits_for_earlier_event(self, connection: AsyncConnection, stored: StoredEvent) -> bool:
        """Whether an earlier event about the same message is still unprocessed (another replica holds it).

        Partoo's events carry no update time: arrival order is the only order. A `Success` applied before the
        `Failed` that came first would find no alert to close, then the `Failed` would open one for a message
        that was delivered. So the later event is given back (lease cleared) and applied after the earlier one.
        """
        message = stored.event.message
        if message is None:
            return False
        earlier = await connection.execute(
            select(EventRow.id)
            .where(EventRow.processed_at.is_(None), EventRow.id < stored.id, EventRow.message_id == message.message_id)
            .limit(1)
        )
        if earlier.first() is None:
            return False
        await connection.execute(update(EventRow).where(EventRow.id == stored.id).values(lease_until=None))
        return True

    async def _dropped_as_unrelated(self, connection: AsyncConnection, stored: StoredEvent) -> bool:
        """Delete an applied event that concerns no alert and no retry; True when it was deleted.

        Partoo reports every message of the organisation, so nearly every event is the `Success` of a message
        that never failed. Once applied (in order, after any earlier event of its message) it has changed
        nothing and nothing will read it: keeping it would only grow the database. A redelivery of it is
        stored and applied again, which changes nothing either.
        """
        message = stored.event.message
        if message is not None:
            alert = exists().where(Alert.message_id == message.message_id)
            retry = exists().where(Request.message_id == message.message_id)
            if (await connection.execute(select(alert | retry))).scalar_one():
                return False
        await connection.execute(delete(EventRow).where(EventRow.id == stored.id))
        return True

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


def dedupe_key(body_key: str, generation: int) -> str:
    """The stored dedupe key: the body's own key before any retry (as it always was), then one per retry."""
    if generation == 0:
        return body_key
    return hashlib.sha256(f"{body_key}:{generation}".encode("ascii")).hexdigest()


async def _retry_generations(connection: AsyncConnection, message_ids: set[int]) -> dict[int, int]:
    """How many retries were asked for each of these messages (absent: none), in one query."""
    if not message_ids:
        return {}
    rows = await connection.execute(
        select(Request.message_id, func.count())
        .where(Request.message_id.in_(sorted(message_ids)))
        .group_by(Request.message_id)
    )
    return {message_id: int(count) for message_id, count in rows}

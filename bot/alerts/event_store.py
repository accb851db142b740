"""Partoo's webhook events, from the signed delivery to the alert state they change.

A delivery is stored (group-committed, deduplicated) before Partoo gets its 200; the alerter then claims
events and applies them in arrival order (bot.alerts.event_apply), through the lifecycle (bot.failures.state).
Events that concern no alert and no retry are dropped once applied. A base of AlertStore (bot.alerts.store).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.event_apply import StoredEvent, apply_chunk
from bot.defaults import APPLY_CHUNK
from bot.failures.state import StaleAlertError
from bot.failures.webhook_events import WebhookEvent, for_storage, parse_event
from bot.platform.group_commit import GroupCommit, together_on
from bot.platform.leases import lease_free
from bot.platform.models import Request
from bot.platform.models import WebhookEvent as EventRow

Clock = Callable[[], float]


_INSERT_EVENTS = {
    "sqlite": sqlite_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
    "postgresql": postgresql_insert(EventRow).on_conflict_do_nothing().returning(EventRow.dedupe_key),
}


class EventIntake:
    """Storing, claiming and applying webhook events."""

    engine: AsyncEngine
    clock: Callable[[], float]
    preview_chars: int | None
    _intake: GroupCommit[WebhookEvent, bool]

    # -- intake -------------------------------------------------------------------------------

    async def store_event(self, event: WebhookEvent) -> bool:
        """Store a verified delivery; False when the same event was already stored (a redelivery).

        Partoo's bodies carry no event id (and Partoo redelivers on 5xx): a failure after a retry can be
        byte for byte the first one. So the key is the body's hash *and* how many retry calls had been made
        for the message when it arrived (requests whose attempt was opened, read in the writer's
        transaction). Only a call can make the message fail again: the same body before the next call is a
        redelivery, even after a click queued a retry (counting requests took that redelivery for news,
        re-armed the Retry button, and a second call followed); after a call it is news.

        Returns once the row is committed, together with the deliveries that arrived meanwhile (group commit).
        """
        return await self._intake.submit(event)

    def event_row(self, event: WebhookEvent, generation: int) -> dict[str, Any]:
        """What is kept of one verified delivery: the row `store_event` inserts."""
        message = event.message
        return {
            "dedupe_key": dedupe_key(event.dedupe_key, generation),
            "retry_generation": generation,
            "received_at": self.clock(),
            "type": event.type,
            "message_id": message.message_id if message else None,
            "status": message.status[:32] if message else None,
            "payload": for_storage(event, self.preview_chars),
        }

    async def insert_events(self, connection: AsyncConnection, deliveries: list[WebhookEvent]) -> list[bool]:
        """Insert a batch of deliveries in the intake's shared transaction; False for each redelivery.

        One INSERT for the whole batch. A redelivery is skipped by ON CONFLICT rather than caught as an
        IntegrityError: on PostgreSQL an error would abort the shared transaction, and the batch with it.
        """
        message_ids = {event.message.message_id for event in deliveries if event.message}
        generations = await _retry_generations(connection, message_ids)
        rows = [
            self.event_row(event, generations.get(event.message.message_id, 0) if event.message else 0)
            for event in deliveries
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
        """Apply one claimed event in a transaction of its own (bot.alerts.event_apply)."""
        async with self.engine.begin() as connection:
            await apply_chunk(connection, [stored], lambda _stored: alert_channel, self.clock())

    async def apply_claimed(
        self, claimed: Sequence[StoredEvent], destination: Callable[[StoredEvent], str | None]
    ) -> None:
        """Apply claimed events in arrival order: on SQLite a chunk per transaction, elsewhere one each.

        SQLite has one connection, so its transactions never overlap and a chunk only spares a BEGIN and a
        COMMIT per event; it stays small, because webhook deliveries wait for that connection meanwhile.
        On PostgreSQL a transaction locks the alerts it changes until it commits, and a chunk would lock
        them in arrival order while a Retry all locks them in id order: each event stays on its own.
        A chunk that fails (an alert changed under it) is rolled back and applied one event at a time.
        """
        size = APPLY_CHUNK if together_on(self.engine) else 1
        for start in range(0, len(claimed), size):
            chunk = claimed[start : start + size]
            try:
                async with self.engine.begin() as connection:
                    await apply_chunk(connection, chunk, destination, self.clock())
            except (StaleAlertError, SQLAlchemyError):
                if len(chunk) == 1:
                    raise
                for stored in chunk:
                    await self.apply(stored, destination(stored))


def dedupe_key(body_key: str, generation: int) -> str:
    """The stored dedupe key: the body's own key before any retry call (as it always was), then one per call."""
    if generation == 0:
        return body_key
    return hashlib.sha256(f"{body_key}:{generation}".encode("ascii")).hexdigest()


async def _retry_generations(connection: AsyncConnection, message_ids: set[int]) -> dict[int, int]:
    """How many retry calls were made for each of these messages (absent: none), in one query."""
    if not message_ids:
        return {}
    rows = await connection.execute(
        select(Request.message_id, func.count())
        .where(Request.message_id.in_(sorted(message_ids)), Request.first_attempt_at.is_not(None))
        .group_by(Request.message_id)
    )
    return {message_id: int(count) for message_id, count in rows}

"""Applying claimed webhook events to alerts and retries: a chunk of events per transaction, in arrival order.

The alerter applies every stored event, and in a flood that is thousands a minute on the same connection
the webhooks are stored through (SQLite has one). So this path is built for it: statements built once
(plain Core with bound parameters, no ORM, no statement rebuilt per event), three statements for a usual
event, and on SQLite one transaction for a chunk of events instead of one each.

Per chunk: which events are still unprocessed, and which messages have an earlier event outside the chunk
that is not applied yet (another replica holds it, or its lease ran out). Partoo's events carry no update
time, so arrival order is the only order: an event whose message has an earlier event pending is given
back and applied after it, as are the chunk's later events of that message.

Per event: the delivery recorded on the message's latest accepted retry, then the lifecycle applied to its
alert (or an alert opened). An event that concerns no alert and no retry is deleted once applied: nearly
every event is the `Success` of a message that never failed, and keeping them would only grow the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import lifecycle
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN
from bot.domain.message import SUCCESS, MessageUpdate, is_failure_alert
from bot.domain.outcomes import OutcomeKind
from bot.failures.state import apply_to_alert_of, lock_alerts, state_columns
from bot.failures.webhook_events import WebhookEvent
from bot.platform.models import Alert, Request, core_table
from bot.platform.models import WebhookEvent as EventRow

_events = core_table(EventRow)
_alerts = core_table(Alert)
_requests = core_table(Request)

_latest_unreported_retry = (
    select(_requests.c.id)
    .where(
        _requests.c.message_id == bindparam("of_message"),
        # A call that got no answer may have reached Partoo: its report is awaited like an accepted one's.
        _requests.c.outcome.in_([OutcomeKind.ACCEPTED.value, OutcomeKind.UNKNOWN.value]),
        _requests.c.delivery.is_(None),
        # Only a report that arrived after Partoo answered the call can say what became of it (bot.domain.lifecycle).
        _requests.c.finished_at <= bindparam("at"),
    )
    .order_by(_requests.c.finished_at.desc())
    .limit(1)
    .scalar_subquery()
)
# What became of a retry: recorded on the latest accepted retry of the message not reported on yet.
_MARK_DELIVERY = (
    update(_requests)
    .where(_requests.c.id == _latest_unreported_retry)
    .values(delivery=bindparam("what_became"), delivery_at=bindparam("at"))
)
# The message's latest retry request, and when Partoo's final answer to it came (NULL: queued, or in flight).
_LATEST_CALL = (
    select(_requests.c.finished_at)
    .where(_requests.c.message_id == bindparam("of_message"))
    .order_by(_requests.c.id.desc())
    .limit(1)
)
_INSERT_ALERT = insert(_alerts)
_IS_RELATED = select(
    or_(
        exists().where(_alerts.c.message_id == bindparam("message_id")),
        exists().where(_requests.c.message_id == bindparam("message_id")),
    )
)
_UNPROCESSED = select(_events.c.id).where(
    _events.c.id.in_(bindparam("ids", expanding=True)), _events.c.processed_at.is_(None)
)
_FIRST_PENDING_ELSEWHERE = (
    select(_events.c.message_id, func.min(_events.c.id))
    .where(
        _events.c.message_id.in_(bindparam("message_ids", expanding=True)),
        _events.c.processed_at.is_(None),
        _events.c.id.not_in(bindparam("ids", expanding=True)),
    )
    .group_by(_events.c.message_id)
)
_MARK_PROCESSED = (
    update(_events).where(_events.c.id.in_(bindparam("ids", expanding=True))).values(processed_at=bindparam("at"))
)
_GIVE_BACK = update(_events).where(_events.c.id.in_(bindparam("ids", expanding=True))).values(lease_until=None)
_DROP = delete(_events).where(_events.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class StoredEvent:
    id: int
    received_at: float
    event: WebhookEvent


@dataclass
class _ChunkResult:
    processed: list[int] = field(default_factory=list)
    given_back: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


async def apply_chunk(
    connection: AsyncConnection,
    chunk: Sequence[StoredEvent],
    destination: Callable[[StoredEvent], str | None],
    now: float,
) -> None:
    """Apply these claimed events (ordered by id) in the caller's transaction; see the module's docstring."""
    ids = [stored.id for stored in chunk]
    message_ids = sorted({stored.event.message.message_id for stored in chunk if stored.event.message})
    # Gone or already applied (another replica, after this one's lease ran out): nothing to do.
    unprocessed = set((await connection.execute(_UNPROCESSED, {"ids": ids})).scalars())
    pending_elsewhere: dict[int, int] = {}
    if message_ids:
        rows = await connection.execute(_FIRST_PENDING_ELSEWHERE, {"message_ids": message_ids, "ids": ids})
        pending_elsewhere = {message_id: first_id for message_id, first_id in rows}
    held_back: set[int] = set()
    result = _ChunkResult()
    for stored in chunk:
        if stored.id not in unprocessed:
            continue
        message = stored.event.message
        if message is not None:
            first_pending = pending_elsewhere.get(message.message_id)
            if message.message_id in held_back or (first_pending is not None and first_pending < stored.id):
                held_back.add(message.message_id)  # its later events in this chunk wait as well
                result.given_back.append(stored.id)
                continue
        related = await _apply_event(connection, stored, destination(stored))
        if not related and message is not None:
            related = bool((await connection.execute(_IS_RELATED, {"message_id": message.message_id})).scalar())
        (result.processed if related else result.dropped).append(stored.id)
    if result.processed:
        await connection.execute(_MARK_PROCESSED, {"ids": result.processed, "at": now})
    if result.given_back:
        await connection.execute(_GIVE_BACK, {"ids": result.given_back})
    if result.dropped:
        await connection.execute(_DROP, {"ids": result.dropped})


async def _apply_event(connection: AsyncConnection, stored: StoredEvent, alert_channel: str | None) -> bool:
    """Apply one event; True when it is known to concern an alert (False: not known either way)."""
    message = stored.event.message
    if message is None or stored.event.type != "message_updated":
        return False
    at = stored.received_at
    await lock_alerts(connection, [message.message_id])  # before the retry request's row: see lock_alerts
    if is_failure_alert(message):
        await _mark_delivery(connection, message.message_id, FAILED_AGAIN, at)
        failed = lifecycle.Failed(
            message, at, before_latest_answer=await _before_latest_answer(connection, message, at)
        )
        if await apply_to_alert_of(connection, message.message_id, failed):
            return True
        if alert_channel is None:
            return False
        await connection.execute(
            _INSERT_ALERT,
            {
                "message_id": message.message_id,
                "channel_id": alert_channel,
                "version": 1,
                "posted_version": 0,
                **state_columns(lifecycle.open_alert(failed)),
            },
        )
        return True
    if message.status == SUCCESS:
        await _mark_delivery(connection, message.message_id, DELIVERED, at)
        return await apply_to_alert_of(connection, message.message_id, lifecycle.Delivered(at))
    return False


async def _before_latest_answer(connection: AsyncConnection, message: MessageUpdate, at: float) -> bool:
    """Whether a report that arrived at `at` came before Partoo answered the message's latest retry call."""
    latest = (await connection.execute(_LATEST_CALL, {"of_message": message.message_id})).first()
    if latest is None:
        return False  # never retried: a first failure, or one the bot had nothing to do with
    answered_at = latest.finished_at
    return answered_at is None or at < answered_at


async def _mark_delivery(connection: AsyncConnection, message_id: int, what_became: str, at: float) -> None:
    await connection.execute(_MARK_DELIVERY, {"of_message": message_id, "what_became": what_became, "at": at})

"""Queueing retry requests: one batch and its requests, written in the enqueue's shared transaction.

`RetryQueue.enqueue` hands each ask to a group commit (bot.platform.group_commit) that calls
`write_requests` inside a transaction it may share with other asks; nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.lifecycle import RetryRequested
from bot.domain.retry_requests import ActiveRequest, EnqueueResult, NewBatch
from bot.failures.state import apply_to_alerts
from bot.platform.models import Alert, Batch, Request, RequestState

# Built once: SQLAlchemy reuses their compiled form instead of rebuilding them for every command.
_INSERT_BATCH = insert(Batch).returning(Batch.id)
_DELETE_BATCH = delete(Batch).where(Batch.id == bindparam("batch_id"))
_POSTED_ALERT = select(Alert.channel_id, Alert.ts).where(
    Alert.message_id == bindparam("message_id"), Alert.ts.is_not(None)
)
_ACTIVE_ONLY = text("state IN ('queued', 'running')")  # the predicate of uq_retry_requests_active_message
_INSERT_REQUESTS = {
    "sqlite": sqlite_insert(Request)
    .on_conflict_do_nothing(index_elements=[Request.message_id], index_where=_ACTIVE_ONLY)
    .returning(Request.message_id),
    "postgresql": postgresql_insert(Request)
    .on_conflict_do_nothing(index_elements=[Request.message_id], index_where=_ACTIVE_ONLY)
    .returning(Request.message_id),
}


async def write_requests(
    connection: AsyncConnection, batch: NewBatch, message_ids: tuple[int, ...], *, now: float
) -> EnqueueResult:
    """One enqueue inside the group's shared transaction: insert first, let the unique index say which were active.

    The requests are inserted with ON CONFLICT DO NOTHING against the one-active-request index, so the
    common case (nothing active yet) is three statements, and a concurrent enqueue of the same id by
    another replica is settled by the index instead of an IntegrityError (which on PostgreSQL would
    abort the whole group's transaction).
    """
    if batch.report_into_alert and len(message_ids) == 1:
        alert = (await connection.execute(_POSTED_ALERT, {"message_id": message_ids[0]})).first()
        if alert is not None:
            batch = batch.in_alert_thread(alert.channel_id, alert.ts, message_ids[0])
    if batch.expected_alert_retries is not None:
        # FOR UPDATE (PostgreSQL) waits for a concurrent click's transaction and reads its result;
        # SQLite's immediate transactions are serialized already.
        retries = (
            await connection.execute(
                select(Alert.retries).where(Alert.message_id == batch.alert_message_id).with_for_update()
            )
        ).scalar_one_or_none()
        if retries != batch.expected_alert_retries:
            return EnqueueResult(batch_id=None, queued=(), already_active=(), alert_changed=True)
    if not message_ids:
        return EnqueueResult(batch_id=None, queued=(), already_active=())
    batch_id = (
        await connection.execute(
            _INSERT_BATCH,
            {
                "source": batch.source,
                "requested_by": batch.requested_by,
                "channel_id": batch.channel_id,
                "response_url": batch.response_url,
                "total": len(message_ids),
                "skipped": "[]",
                "created_at": now,
                "correlation_id": batch.correlation_id,
                "root_channel": batch.root_channel,
                "root_ts": batch.root_ts,
                "announced_at": now if batch.root_ts else None,
                "uses_response_url": False,
                "alert_message_id": batch.alert_message_id,
                "digest_id": batch.digest_id,
                "progress_shown": 0,
                "thread_ts": batch.thread_ts,
                "retry_anyway": batch.retry_anyway,
            },
        )
    ).scalar_one()
    inserted = await connection.execute(
        _INSERT_REQUESTS[connection.dialect.name],
        [
            {
                "batch_id": batch_id,
                "message_id": message_id,
                "requested_by": batch.requested_by,
                "requested_at": now,
                "state": RequestState.QUEUED,
                "next_attempt_at": now,
                "attempts": 0,
            }
            for message_id in message_ids
        ],
    )
    queued_ids = set(inserted.scalars())
    fresh = [message_id for message_id in message_ids if message_id in queued_ids]
    skipped = [message_id for message_id in message_ids if message_id not in queued_ids]
    active = await _active_for(connection, skipped)
    if not fresh:
        await connection.execute(_DELETE_BATCH, {"batch_id": batch_id})
        return EnqueueResult(batch_id=None, queued=(), already_active=tuple(active))
    if skipped:
        await connection.execute(
            update(Batch).where(Batch.id == batch_id).values(total=len(fresh), skipped=json.dumps(sorted(skipped)))
        )
    # Alerts about these messages now show who asked for the retry, in the same transaction.
    source = "retry_all" if batch.digest_id is not None else batch.source
    await apply_to_alerts(connection, fresh, RetryRequested(batch.requested_by, source, now))
    return EnqueueResult(batch_id=batch_id, queued=tuple(fresh), already_active=tuple(active))


async def _active_for(connection: AsyncConnection, message_ids: Sequence[int]) -> list[ActiveRequest]:
    if not message_ids:
        return []
    rows = await connection.execute(
        select(
            Request.message_id,
            Request.requested_by,
            Request.requested_at,
            Request.batch_id,
            Batch.root_channel,
            Batch.root_ts,
        )
        .join(Batch, Batch.id == Request.batch_id)
        .where(Request.message_id.in_(list(message_ids)), Request.state.in_(RequestState.ACTIVE))
    )
    return [ActiveRequest(*row) for row in rows]

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

from bot.domain.admission import Asked, Reason, Refused, admit
from bot.domain.lifecycle import RetryRequested
from bot.domain.retry_requests import EnqueueResult, MessageRefusal, NewBatch
from bot.failures.state import apply_to_alerts
from bot.platform.models import Alert, Batch, Digest, Request, RequestState
from bot.retries.admission_state import stored_states
from bot.retries.plan_store import plan_queued, take_plan

# Built once: SQLAlchemy reuses their compiled form instead of rebuilding them for every command.
_INSERT_BATCH = insert(Batch).returning(Batch.id)
_DELETE_BATCH = delete(Batch).where(Batch.id == bindparam("batch_id"))
_POSTED_ALERT = select(Alert.channel_id, Alert.ts).where(
    Alert.message_id == bindparam("message_id"), Alert.ts.is_not(None)
)
# A digest's Retry all is taken once, whoever clicks: the mark and the requests commit together.
_TAKE_DIGEST = (
    update(Digest)
    .where(Digest.id == bindparam("digest_id"), Digest.retry_requested_by.is_(None))
    .values(retry_requested_by=bindparam("user_id"), version=Digest.version + 1)
)
_DIGEST_RETRIED_BY = select(Digest.retry_requested_by).where(Digest.id == bindparam("digest_id"))
# Locked before the digest is marked: every transaction that writes both locks alerts (by id) first, then their
# digest (bot.failures.state). The other order deadlocks with the diagnosis loop or the alerter on PostgreSQL,
# which then aborts the click's transaction and the person is told the log is unavailable.
_DIGEST_MESSAGES = (
    select(Alert.message_id).where(Alert.digest_id == bindparam("digest_id")).order_by(Alert.id).with_for_update()
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
    connection: AsyncConnection,
    batch: NewBatch,
    message_ids: tuple[int, ...],
    *,
    now: float,
    awaiting_seconds: float,
) -> EnqueueResult:
    """One enqueue inside the group's shared transaction: admit each message against its stored state, then
    insert the admitted ones and let the unique index settle a race with another replica.

    Admission (bot.domain.admission) runs here, on rows this transaction has locked, for every way in: the
    state the person saw when they clicked does not matter, only the state the request is written against.
    A digest's Retry all marks the digest and queues its messages in this same transaction, so a failure
    between the two can no longer leave a digest marked "retried" with nothing queued.

    The requests are inserted with ON CONFLICT DO NOTHING against the one-active-request index, so a
    concurrent enqueue of the same id by another replica is settled by the index instead of an
    IntegrityError (which on PostgreSQL would abort the whole group's transaction).
    """
    if batch.digest_id is not None and not message_ids:
        message_ids = tuple((await connection.execute(_DIGEST_MESSAGES, {"digest_id": batch.digest_id})).scalars())
        taken = await connection.execute(_TAKE_DIGEST, {"digest_id": batch.digest_id, "user_id": batch.requested_by})
        if taken.rowcount != 1:
            by = (await connection.execute(_DIGEST_RETRIED_BY, {"digest_id": batch.digest_id})).scalar()
            return EnqueueResult(batch_id=None, queued=(), refused=(), digest_retried_by=by or "someone")
    plan_filter: str | None = None
    if batch.plan_id is not None:
        plan = await take_plan(connection, batch.plan_id, batch.requested_by, anyway=batch.retry_anyway, now=now)
        if plan is None:
            return EnqueueResult(batch_id=None, queued=(), refused=(), plan_gone=True)
        message_ids, plan_filter = plan.message_ids, plan.filter_text
    if batch.report_into_alert and len(message_ids) == 1:
        alert = (await connection.execute(_POSTED_ALERT, {"message_id": message_ids[0]})).first()
        if alert is not None:
            batch = batch.in_alert_thread(alert.channel_id, alert.ts, message_ids[0])
    asked = Asked(batch.surface, now=now, anyway=batch.retry_anyway, awaiting_seconds=awaiting_seconds)
    states = await stored_states(connection, message_ids)
    refused: list[MessageRefusal] = []
    admitted: list[int] = []
    for message_id in message_ids:
        verdict = admit(states[message_id], asked)
        if isinstance(verdict, Refused):
            refused.append(MessageRefusal(message_id, verdict))
        else:
            admitted.append(message_id)
    if not admitted:
        return EnqueueResult(batch_id=None, queued=(), refused=tuple(refused))
    message_ids = tuple(admitted)
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
                # A plan's batch: what admission refused just now is what changed since the plan.
                "plan_filter": plan_filter,
                "plan_changed": len(refused) if plan_filter is not None else None,
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
    refused.extend(await _active_for(connection, skipped))
    if not fresh:
        await connection.execute(_DELETE_BATCH, {"batch_id": batch_id})
        return EnqueueResult(batch_id=None, queued=(), refused=tuple(refused))
    if skipped:
        values: dict[str, object] = {"total": len(fresh), "skipped": json.dumps(sorted(skipped))}
        if plan_filter is not None:
            values["plan_changed"] = len(refused)  # another replica queued some in between: changed too
        await connection.execute(update(Batch).where(Batch.id == batch_id).values(values))
    # Alerts about these messages now show who asked for the retry, in the same transaction.
    source = "retry_all" if batch.digest_id is not None else batch.source
    if batch.plan_id is not None:
        await plan_queued(connection, batch.plan_id, batch_id, anyway=batch.retry_anyway)
    event = RetryRequested(batch.requested_by, source, now)
    await apply_to_alerts(connection, fresh, event)
    return EnqueueResult(batch_id=batch_id, queued=tuple(fresh), refused=tuple(refused))


async def _active_for(connection: AsyncConnection, message_ids: Sequence[int]) -> list[MessageRefusal]:
    """Refusals for ids another replica queued between admission and the insert (the index said so)."""
    if not message_ids:
        return []
    rows = await connection.execute(
        select(Request.message_id, Request.requested_by, Request.requested_at).where(
            Request.message_id.in_(list(message_ids)), Request.state.in_(RequestState.ACTIVE)
        )
    )
    return [
        MessageRefusal(row.message_id, Refused(Reason.UNDER_WAY, row.requested_by, row.requested_at)) for row in rows
    ]

"""Stop on a bulk's progress message, or on a digest whose Retry all runs: remove the requests not yet sent.

One UPDATE, in one transaction, closes every request of the batch still `queued` with no attempt in flight,
with the outcome STOPPED. The worker's claim is the same kind of conditional UPDATE (`queued` → `running`,
bot.retries.queue_statements), so each request is either claimed or stopped, never both: a request a worker
holds (running, or with an attempt in flight) is never touched here, and a stopped one is never claimed.
The messages' alerts are locked first, then the requests (bot.failures.state.lock_alerts: one order everywhere,
or PostgreSQL deadlocks this with the worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.lifecycle import Answered
from bot.domain.outcomes import OutcomeKind
from bot.failures.state import apply_to_alerts, lock_alerts
from bot.platform.models import Batch, Request, RequestState

_STOP = (
    update(Request)
    .where(
        Request.batch_id == bindparam("stopped_batch"),
        Request.state == RequestState.QUEUED,
        Request.in_flight_since.is_(None),
    )
    .values(
        state=RequestState.DONE,
        outcome=OutcomeKind.STOPPED.value,
        detail=bindparam("why"),
        finished_at=bindparam("now"),
        lease_owner=None,
        lease_until=None,
    )
    .returning(Request.message_id)
)
# A digest's Retry all: its batch, answering in the digest's thread (bot.slack.clicks.retry_all).
_DIGEST_BATCH = select(Batch.id).where(
    Batch.digest_id == bindparam("digest_id"),
    Batch.root_channel == bindparam("channel"),
    Batch.root_ts == bindparam("ts"),
)
_QUEUED_MESSAGES = select(Request.message_id).where(
    Request.batch_id == bindparam("batch_id"), Request.state == RequestState.QUEUED
)
_STILL_GOING = select(func.count()).where(
    Request.batch_id == bindparam("batch_id"), Request.state.in_(RequestState.ACTIVE)
)


@dataclass(frozen=True)
class Stopped:
    stopped: tuple[int, ...]  # message ids removed before they were sent
    still_going: int  # requests a worker holds: they finish as they would have


async def stop_batch(
    engine: AsyncEngine, batch_id: int, user_id: str, channel_id: str, ts: str, now: float
) -> Stopped | None:
    """Stop the batch whose root message is (channel_id, ts); None when that message is no batch's root.

    `batch_id` is the Stop button's value: a batch's id on its progress message, a digest's id on a digest
    (whose Retry all's batch has the digest's message as its root). Either way only a batch whose root is the
    clicked message is stopped.
    """
    async with engine.begin() as connection:
        root = (await connection.execute(select(Batch.root_channel, Batch.root_ts).where(Batch.id == batch_id))).first()
        if root is None or (root.root_channel, root.root_ts) != (channel_id, ts):
            digests = await connection.execute(_DIGEST_BATCH, {"digest_id": batch_id, "channel": channel_id, "ts": ts})
            found = digests.scalar()
            if found is None:
                return None
            batch_id = found
        detail = f"stopped by {user_id}"  # plain text: details are escaped where shown
        await lock_alerts(
            connection, list((await connection.execute(_QUEUED_MESSAGES, {"batch_id": batch_id})).scalars())
        )
        stopped = tuple(
            (await connection.execute(_STOP, {"stopped_batch": batch_id, "why": detail, "now": now})).scalars()
        )
        await apply_to_alerts(connection, list(stopped), Answered(OutcomeKind.STOPPED, detail, now))
        going = (await connection.execute(_STILL_GOING, {"batch_id": batch_id})).scalar_one()
    return Stopped(stopped, going)

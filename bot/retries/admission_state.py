"""The stored state admission decides on, read (and locked) in the transaction that queues the requests.

FOR UPDATE on PostgreSQL: a concurrent enqueue, click or webhook of the same message waits for this
transaction and then reads its result, so two ways in can never both be admitted on the same old state.
SQLite has one writer (its transactions are immediate), which serializes them already.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.admission import LatestRetry, StoredState
from bot.domain.outcomes import OutcomeKind
from bot.failures.state import alert_states
from bot.platform.models import Request, RequestState, core_table

_requests = core_table(Request)
# Built once: every command, click and submission reads it.
_LATEST_REQUESTS = (
    select(
        _requests.c.message_id,
        _requests.c.requested_by,
        _requests.c.requested_at,
        _requests.c.state,
        _requests.c.outcome,
        _requests.c.finished_at,
        _requests.c.delivery,
        _requests.c.not_confirmed_at,
    )
    .where(
        _requests.c.id.in_(
            select(func.max(_requests.c.id))
            .where(_requests.c.message_id.in_(bindparam("message_ids", expanding=True)))
            .group_by(_requests.c.message_id)
            .scalar_subquery()
        )
    )
    .with_for_update()
)


async def stored_states(connection: AsyncConnection, message_ids: Sequence[int]) -> dict[int, StoredState]:
    """Each message's alert state and latest retry request, locked until the caller's transaction ends."""
    if not message_ids:
        return {}
    alerts = await alert_states(connection, message_ids)
    latest = {
        row.message_id: LatestRetry(
            requested_by=row.requested_by,
            requested_at=row.requested_at,
            active=row.state in RequestState.ACTIVE,
            outcome=OutcomeKind(row.outcome) if row.outcome else None,
            finished_at=row.finished_at,
            delivery=row.delivery,
            not_confirmed_at=row.not_confirmed_at,
        )
        for row in await connection.execute(_LATEST_REQUESTS, {"message_ids": list(message_ids)})
    }
    return {
        message_id: StoredState(message_id, alerts.get(message_id), latest.get(message_id))
        for message_id in message_ids
    }

"""Reading the retry log without changing it: `status`, `log`, App Home, exports, metrics and the notifier.

Each read costs a fixed number of queries whatever it returns (a join or an IN, never one query per row):
a message retried fifty times is as cheap to show as one retried once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.defaults import PROGRESS_INTERVAL
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import AttemptView, BatchView, RequestView
from bot.platform.leases import lease_free
from bot.platform.models import Attempt, Batch, Request, RequestState
from bot.retries.request_rows import BATCH_COLUMNS, REQUEST_COLUMNS, batch_view, request_view

# Attempt columns ride along with their request in one outer join; the prefix keeps the names apart.
_ATTEMPT_COLUMNS = [
    column.label(f"attempt_{column.name}")
    for column in (
        Attempt.id,
        Attempt.started_at,
        Attempt.finished_at,
        Attempt.outcome,
        Attempt.http_status,
        Attempt.detail,
        Attempt.latency_ms,
    )
]
# Batches are read in chunks so that an export of a long period stays under every driver's parameter limit.
_IN_CHUNK = 500

# How far back waiting_posts looks.
WAITING_HORIZON = 3600.0

History = list[tuple[RequestView, BatchView, list[AttemptView]]]


class RetryLog:
    """Read-only queries over retry batches, requests and attempts."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def history(self, message_id: int) -> History:
        """Every request for one Partoo message, oldest first, with its batch and attempts: two queries."""
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(*REQUEST_COLUMNS, *_ATTEMPT_COLUMNS)
                    .outerjoin(Attempt, Attempt.request_id == Request.id)
                    .where(Request.message_id == message_id)
                    .order_by(Request.requested_at, Request.id, Attempt.id)
                )
            )
            of_message = select(Request.batch_id).where(Request.message_id == message_id)
            batches = {
                row.id: batch_view(row)
                for row in await connection.execute(select(*BATCH_COLUMNS).where(Batch.id.in_(of_message)))
            }
        history: History = []
        for row in rows:
            if not history or history[-1][0].id != row.id:
                history.append((request_view(row), batches[row.batch_id], []))
            if row.attempt_id is not None:
                history[-1][2].append(_attempt_view(row))
        return history

    async def recent(self, limit: int) -> list[RequestView]:
        """The latest requests, newest first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*REQUEST_COLUMNS).order_by(Request.requested_at.desc(), Request.id.desc()).limit(limit)
            )
            return [request_view(row) for row in rows]

    async def since(self, since: float) -> list[tuple[RequestView, BatchView]]:
        """Every request made since a time with its batch, oldest first (for exports)."""
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(*REQUEST_COLUMNS).where(Request.requested_at >= since).order_by(Request.id)
                )
            )
            batch_ids = sorted({row.batch_id for row in rows})
            batches: dict[int, BatchView] = {}
            for start in range(0, len(batch_ids), _IN_CHUNK):
                chunk = batch_ids[start : start + _IN_CHUNK]
                for batch_row in await connection.execute(select(*BATCH_COLUMNS).where(Batch.id.in_(chunk))):
                    batches[batch_row.id] = batch_view(batch_row)
        return [(request_view(row), batches[row.batch_id]) for row in rows]

    async def outcome_counts(self, since: float) -> dict[str, int]:
        """How many requests made since a time ended in each outcome ('queued' for unfinished ones)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(func.coalesce(Request.outcome, Request.state), func.count())
                .where(Request.requested_at >= since)
                .group_by(func.coalesce(Request.outcome, Request.state))
            )
            return {str(key): int(count) for key, count in rows}

    async def queue_depth(self) -> int:
        """Requests waiting or in progress."""
        async with self.engine.connect() as connection:
            count = await connection.execute(select(func.count()).where(Request.state.in_(RequestState.ACTIVE)))
            return int(count.scalar_one())

    async def waiting_posts(self, channel_id: str) -> int:
        """Posts waiting for a channel's pace: commands not announced there yet, outcomes not reported yet.

        Only batches of the last hour count: the note is about a queue minutes long, and the bound keeps this
        read a range of the created_at index however much history retention keeps.
        """
        recent = Batch.created_at >= self.clock() - WAITING_HORIZON
        unannounced = select(func.count()).where(recent, Batch.channel_id == channel_id, Batch.announced_at.is_(None))
        unreported = select(func.count()).where(
            recent,
            Request.batch_id == Batch.id,
            Batch.root_channel == channel_id,
            Request.finished_at.is_not(None),
            Request.reported_at.is_(None),
        )
        async with self.engine.connect() as connection:
            return int(
                (
                    await connection.execute(select(unannounced.scalar_subquery() + unreported.scalar_subquery()))
                ).scalar_one()
            )

    async def batches_with_news(self, *, limit: int = 50) -> list[BatchView]:
        """Open many-message batches whose Slack message is behind what their requests did.

        That is: every request finished (the summary is due, and nobody holds its claim), or more finished
        than the root message shows and it was updated at least PROGRESS_INTERVAL ago (a progress update is
        due; chat.update is rate limited). A batch where nothing is due is not returned, so the notifier's
        polling reads nothing else of it. The condition is on stored columns only, so it holds whichever
        replica finished the requests or showed the progress.
        """
        now = self.clock()
        done = (
            select(func.count())
            .where(Request.batch_id == Batch.id, Request.finished_at.is_not(None))
            .correlate(Batch)
            .scalar_subquery()
        )
        summary_due = and_(done == Batch.total, lease_free(Batch.summary_lease_until, now))
        progress_due = and_(
            done != Batch.progress_shown,
            Batch.root_ts.is_not(None),
            Batch.digest_id.is_(None),  # a digest's progress is rendered by the alerter
            or_(Batch.progress_shown_at.is_(None), Batch.progress_shown_at <= now - PROGRESS_INTERVAL),
        )
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*BATCH_COLUMNS)
                .where(
                    Batch.announced_at.is_not(None),
                    Batch.summarized_at.is_(None),
                    Batch.total > 1,
                    or_(summary_due, progress_due),
                )
                .order_by(Batch.id)
                .limit(limit)
            )
            return [batch_view(row) for row in rows]


def _attempt_view(row: Row[Any]) -> AttemptView:
    return AttemptView(
        request_id=row.id,
        started_at=row.attempt_started_at,
        finished_at=row.attempt_finished_at,
        outcome=OutcomeKind(row.attempt_outcome) if row.attempt_outcome else None,
        http_status=row.attempt_http_status,
        detail=row.attempt_detail,
        latency_ms=row.attempt_latency_ms,
    )

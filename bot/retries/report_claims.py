"""The notifier's side of the retry log: who announces a batch, reports an outcome, sums a batch up, mirrors it.

Each post is claimed first (a lease on the row), renewed while Slack answers, and marked done after, so two
replicas never post the same thing and a dead one's claims expire. A base of RetryQueue (bot.retries.store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.leases import lease_free
from bot.platform.models import Batch, Request, RequestState, core_table
from bot.retries.request_rows import BATCH_COLUMNS, REQUEST_COLUMNS, batch_view, request_view

# What every retry sets off, built once (see bot.retries.queue_statements for why).
_requests = core_table(Request)
_batches = core_table(Batch)
_ANNOUNCEABLE = (_batches.c.announced_at.is_(None), lease_free(_batches.c.announce_lease_until, bindparam("now")))
_NEXT_ANNOUNCEABLE = select(_batches.c.id).where(*_ANNOUNCEABLE).order_by(_batches.c.id).limit(1)
_CLAIM_ANNOUNCEMENT = (
    update(_batches)
    .where(_batches.c.id == bindparam("batch_id"), *_ANNOUNCEABLE)
    .values(announce_lease_until=bindparam("until"))
)
_BATCH = select(*BATCH_COLUMNS).where(_batches.c.id == bindparam("batch_id"))
_MARK_ANNOUNCED = (
    update(_batches)
    .where(_batches.c.id == bindparam("batch_id"))
    .values(
        announced_at=bindparam("now"),
        root_channel=bindparam("channel"),
        root_ts=bindparam("ts"),
        uses_response_url=bindparam("by_response_url"),
    )
)
_CLAIM_REPORT = (
    update(_requests)
    .where(
        _requests.c.id == bindparam("request_id"),
        _requests.c.state == RequestState.DONE,
        _requests.c.reported_at.is_(None),
        lease_free(_requests.c.report_lease_until, bindparam("now")),
    )
    .values(report_lease_until=bindparam("until"))
)
_MARK_REPORTED = (
    update(_requests)
    .where(_requests.c.id.in_(bindparam("request_ids", expanding=True)))
    .values(reported_at=bindparam("now"))
)
_UNREPORTED = (
    select(*REQUEST_COLUMNS)
    .join(_batches, _batches.c.id == _requests.c.batch_id)
    .where(
        _batches.c.total == 1,
        _requests.c.state == RequestState.DONE,
        _requests.c.reported_at.is_(None),
        _requests.c.finished_at < bindparam("finished_before"),
        lease_free(_requests.c.report_lease_until, bindparam("now")),
    )
    .order_by(_requests.c.id)
    .limit(bindparam("limit"))
)


class ReportClaims:
    """Claims and marks of the posts that tell a team what became of its retries."""

    engine: AsyncEngine
    clock: Callable[[], float]

    # -- announcing a batch (its root message) ------------------------------------------------

    async def claim_announcement(self, lease_seconds: float) -> BatchView | None:
        """Take one batch whose root message is not posted yet, for `lease_seconds`."""
        now = self.clock()
        async with self.engine.begin() as connection:
            candidate = (await connection.execute(_NEXT_ANNOUNCEABLE, {"now": now})).scalar_one_or_none()
            if candidate is None:
                return None
            claimed = await connection.execute(
                _CLAIM_ANNOUNCEMENT, {"batch_id": candidate, "now": now, "until": now + lease_seconds}
            )
            if claimed.rowcount != 1:
                return None
            row = (await connection.execute(_BATCH, {"batch_id": candidate})).one()
        return batch_view(row)

    async def mark_announced(
        self, batch_id: int, *, root_channel: str | None, root_ts: str | None, uses_response_url: bool
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                _MARK_ANNOUNCED,
                {
                    "batch_id": batch_id,
                    "now": self.clock(),
                    "channel": root_channel,
                    "ts": root_ts,
                    "by_response_url": uses_response_url,
                },
            )

    # -- telling people -----------------------------------------------------------------------

    async def claim_report(self, request_id: int, lease_seconds: float) -> bool:
        """Take the job of posting a finished request's outcome (one replica, one post)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                _CLAIM_REPORT, {"request_id": request_id, "now": now, "until": now + lease_seconds}
            )
        return result.rowcount == 1

    async def renew_report_claim(self, request_id: int, lease_seconds: float) -> bool:
        """Extend a report claim while its Slack call runs; False when it expired (another may hold it)."""
        return await self._renew(Request, Request.report_lease_until, request_id, lease_seconds)

    async def renew_summary_claim(self, batch_id: int, lease_seconds: float) -> bool:
        return await self._renew(Batch, Batch.summary_lease_until, batch_id, lease_seconds)

    async def renew_announcement_claim(self, batch_id: int, lease_seconds: float) -> bool:
        return await self._renew(Batch, Batch.announce_lease_until, batch_id, lease_seconds)

    async def _renew(
        self, table: type[Request] | type[Batch], lease_until: Any, row_id: int, lease_seconds: float
    ) -> bool:
        # Only the holder can find its claim unexpired: nobody else may have claimed it in the meantime.
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(table).where(table.id == row_id, lease_until >= now).values({lease_until: now + lease_seconds})
            )
        return result.rowcount == 1

    async def retry_report_in(self, request_id: int, seconds: float) -> None:
        """Slack was unavailable: let any replica try to post this outcome again after `seconds`."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Request).where(Request.id == request_id).values(report_lease_until=self.clock() + seconds)
            )

    async def retry_summary_in(self, batch_id: int, seconds: float) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(summary_lease_until=self.clock() + seconds)
            )

    async def mark_reported(self, request_ids: Sequence[int]) -> None:
        if not request_ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(_MARK_REPORTED, {"request_ids": list(request_ids), "now": self.clock()})

    async def unreported(self, *, older_than: float = 0.0, limit: int = 50) -> list[RequestView]:
        """Finished one-message requests whose outcome is not posted yet (just done, or Slack was down).

        Requests of many-message batches are reported together by the batch summary instead.
        """
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                _UNREPORTED, {"now": now, "finished_before": now - older_than, "limit": limit}
            )
            return [request_view(row) for row in rows]

    async def batch(self, batch_id: int) -> BatchView:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*BATCH_COLUMNS).where(Batch.id == batch_id))).one()
        return batch_view(row)

    async def batch_requests(self, batch_id: int) -> list[RequestView]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*REQUEST_COLUMNS).where(Request.batch_id == batch_id).order_by(Request.id)
            )
            return [request_view(row) for row in rows]

    async def note_progress(self, batch_id: int, done: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(progress_shown=done, progress_shown_at=self.clock())
            )

    async def claim_summary(self, batch_id: int, lease_seconds: float) -> bool:
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Batch)
                .where(
                    Batch.id == batch_id,
                    Batch.summarized_at.is_(None),
                    lease_free(Batch.summary_lease_until, now),
                )
                .values(summary_lease_until=now + lease_seconds)
            )
        return result.rowcount == 1

    async def mark_summarized(self, batch_id: int) -> None:
        now = self.clock()
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(summarized_at=now, finished_at=now)
            )

    async def claim_log_lines(self, *, limit: int = 40) -> list[RequestView]:
        """Take finished requests not yet mirrored to the log channel (marked as taken at once)."""
        now = self.clock()
        try:
            return await self._claim_log_lines_once(now, limit)
        except _ContendedError:
            return []

    async def _claim_log_lines_once(self, now: float, limit: int) -> list[RequestView]:
        async with self.engine.begin() as connection:
            rows = list(
                await connection.execute(
                    select(*REQUEST_COLUMNS)
                    .where(Request.state == RequestState.DONE, Request.logged_at.is_(None))
                    .order_by(Request.finished_at, Request.id)
                    .limit(limit)
                )
            )
            ids = [row.id for row in rows]
            if not ids:
                return []
            result = await connection.execute(
                update(Request).where(Request.id.in_(ids), Request.logged_at.is_(None)).values(logged_at=now)
            )
            if result.rowcount != len(ids):
                # Another replica took some of them in between; let it post this round.
                raise _ContendedError
        return [request_view(row) for row in rows]

    async def release_log_lines(self, request_ids: Sequence[int]) -> None:
        """Give back claimed log lines that could not be posted, so that a later round mirrors them."""
        if not request_ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(update(Request).where(Request.id.in_(list(request_ids))).values(logged_at=None))


class _ContendedError(Exception):
    """Rolls back a claim that another replica partly won."""

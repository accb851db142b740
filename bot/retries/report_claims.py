"""The notifier's side of the retry log: who announces a batch, reports an outcome, sums a batch up, mirrors it.

Each post is claimed first (a lease on the row), renewed while Slack answers, and marked done after, so two
replicas never post the same thing and a dead one's claims expire. A base of RetryQueue (bot.retries.store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.records import BatchView, RequestView
from bot.platform.leases import lease_free
from bot.platform.models import Batch, Request, RequestState
from bot.retries.rows import BATCH_COLUMNS, REQUEST_COLUMNS, batch_view, request_view


class ReportClaims:
    """Claims and marks of the posts that tell a team what became of its retries."""

    engine: AsyncEngine
    clock: Callable[[], float]

    # -- announcing a batch (its root message) ------------------------------------------------

    async def claim_announcement(self, lease_seconds: float) -> BatchView | None:
        """Take one batch whose root message is not posted yet, for `lease_seconds`."""
        now = self.clock()
        async with self.engine.begin() as connection:
            candidate = (
                await connection.execute(
                    select(Batch.id)
                    .where(
                        Batch.announced_at.is_(None),
                        lease_free(Batch.announce_lease_until, now),
                    )
                    .order_by(Batch.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if candidate is None:
                return None
            claimed = await connection.execute(
                update(Batch)
                .where(
                    Batch.id == candidate,
                    Batch.announced_at.is_(None),
                    lease_free(Batch.announce_lease_until, now),
                )
                .values(announce_lease_until=now + lease_seconds)
            )
            if claimed.rowcount != 1:
                return None
            row = (await connection.execute(select(*BATCH_COLUMNS).where(Batch.id == candidate))).one()
        return batch_view(row)

    async def mark_announced(
        self, batch_id: int, *, root_channel: str | None, root_ts: str | None, uses_response_url: bool
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    announced_at=self.clock(),
                    root_channel=root_channel,
                    root_ts=root_ts,
                    uses_response_url=uses_response_url,
                )
            )

    # -- telling people -----------------------------------------------------------------------

    async def claim_report(self, request_id: int, lease_seconds: float) -> bool:
        """Take the job of posting a finished request's outcome (one replica, one post)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Request)
                .where(
                    Request.id == request_id,
                    Request.state == RequestState.DONE,
                    Request.reported_at.is_(None),
                    lease_free(Request.report_lease_until, now),
                )
                .values(report_lease_until=now + lease_seconds)
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
            await connection.execute(
                update(Request).where(Request.id.in_(list(request_ids))).values(reported_at=self.clock())
            )

    async def unreported(self, *, older_than: float = 0.0, limit: int = 50) -> list[RequestView]:
        """Finished one-message requests whose outcome is not posted yet (just done, or Slack was down).

        Requests of many-message batches are reported together by the batch summary instead.
        """
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*REQUEST_COLUMNS)
                .join(Batch, Batch.id == Request.batch_id)
                .where(
                    Batch.total == 1,
                    Request.state == RequestState.DONE,
                    Request.reported_at.is_(None),
                    Request.finished_at < now - older_than,
                    lease_free(Request.report_lease_until, now),
                )
                .order_by(Request.id)
                .limit(limit)
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

"""The notifier's side of the retry log: who announces a batch, reports an outcome, sums a batch up, mirrors it.

Each post is claimed first with a fenced lease (bot.platform.leases), renewed while Slack answers, and
marked done after with the claim's token, so two replicas never post the same thing and a dead one's
claims expire. The token matters after a takeover: a replica whose Slack call outlived its lease (renewals
failing, or slack_sdk waiting out a long Retry-After) finds its "posted" or "give back" write refused, and
cannot undo or repeat what the new holder does. A base of RetryQueue (bot.retries.store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.leases import Held, Leases, lease_free
from bot.platform.models import Batch, Request, RequestState, core_table
from bot.retries.request_rows import BATCH_COLUMNS, REQUEST_COLUMNS, batch_view, request_view

# What every retry sets off, built once (see bot.retries.queue_statements for why).
_requests = core_table(Request)
_batches = core_table(Batch)
_BATCH = select(*BATCH_COLUMNS).where(_batches.c.id == bindparam("batch_id"))
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
_UNLOGGED = (
    select(_requests.c.id)
    .where(
        _requests.c.state == RequestState.DONE,
        _requests.c.logged_at.is_(None),
        lease_free(_requests.c.log_lease_until, bindparam("now")),
    )
    .order_by(_requests.c.finished_at, _requests.c.id)
    .limit(bindparam("limit"))
)


class ReportClaims:
    """Claims and marks of the posts that tell a team what became of its retries."""

    engine: AsyncEngine
    clock: Callable[[], float]

    def _now(self) -> float:
        # Read at each call: tests move a store's clock after its leases were made.
        return self.clock()

    @cached_property
    def announcements(self) -> Leases:
        return Leases(self.engine, _batches, until="announce_lease_until", fence="announce_token", clock=self._now)

    @cached_property
    def reports(self) -> Leases:
        return Leases(self.engine, _requests, until="report_lease_until", fence="report_token", clock=self._now)

    @cached_property
    def summaries(self) -> Leases:
        return Leases(self.engine, _batches, until="summary_lease_until", fence="summary_token", clock=self._now)

    @cached_property
    def log_lines(self) -> Leases:
        return Leases(self.engine, _requests, until="log_lease_until", fence="log_token", clock=self._now)

    # -- announcing a batch (its root message) ------------------------------------------------

    async def claim_announcement(self, lease_seconds: float) -> tuple[BatchView, Held] | None:
        """Take one batch whose root message is not posted yet, for `lease_seconds`."""
        held = await self.announcements.claim_first(lease_seconds, _batches.c.announced_at.is_(None))
        if held is None:
            return None
        async with self.engine.connect() as connection:
            row = (await connection.execute(_BATCH, {"batch_id": held.row_id})).one()
        return batch_view(row), held

    async def retry_announcement_in(self, held: Held, seconds: float) -> bool:
        """The root could not be posted yet: let any replica try again after `seconds` (the batch waits)."""
        return await self.announcements.release(held, retry_in=seconds) == 1

    async def mark_announced(
        self, held: Held, *, root_channel: str | None, root_ts: str | None, uses_response_url: bool
    ) -> bool:
        """Record the root message; False (nothing written) when another replica took the batch over."""
        values = {
            "announced_at": self.clock(),
            "announce_lease_until": None,
            "root_channel": root_channel,
            "root_ts": root_ts,
            "uses_response_url": uses_response_url,
        }
        return await self.announcements.write(held, values) == 1

    # -- telling people -----------------------------------------------------------------------

    async def claim_report(self, request_id: int, lease_seconds: float) -> Held | None:
        """Take the job of posting a finished request's outcome (one replica, one post)."""
        return await self.reports.claim(
            request_id, lease_seconds, _requests.c.state == RequestState.DONE, _requests.c.reported_at.is_(None)
        )

    async def claim_reports(self, request_ids: Sequence[int], lease_seconds: float) -> list[Held]:
        """Take the posting of several outcomes at once, for one grouped post (those another replica has stay)."""
        return await self.reports.claim_many(
            request_ids, lease_seconds, _requests.c.state == RequestState.DONE, _requests.c.reported_at.is_(None)
        )

    async def mark_reported_many(self, held: Sequence[Held]) -> int:
        """The grouped post is sent (or cannot be); how many of the outcomes were still ours."""
        return await self.reports.write(held, {"reported_at": self.clock(), "report_lease_until": None})

    async def retry_report_in(self, held: Held, seconds: float) -> bool:
        """Slack was unavailable: let any replica try to post this outcome again after `seconds`."""
        return await self.reports.release(held, retry_in=seconds) == 1

    async def mark_reported(self, held: Held) -> bool:
        """The outcome is posted (or cannot be); False when another replica took the post over."""
        return await self.reports.write(held, {"reported_at": self.clock(), "report_lease_until": None}) == 1

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

    async def claim_summary(self, batch_id: int, lease_seconds: float) -> Held | None:
        return await self.summaries.claim(batch_id, lease_seconds, _batches.c.summarized_at.is_(None))

    async def retry_summary_in(self, held: Held, seconds: float) -> bool:
        return await self.summaries.release(held, retry_in=seconds) == 1

    async def mark_summarized(self, held: Held, request_ids: Sequence[int]) -> bool:
        """The summary is posted: the batch and its requests are reported, unless the batch was taken over."""
        now = self.clock()
        async with self.engine.begin() as connection:
            values = {"summarized_at": now, "finished_at": now, "summary_lease_until": None}
            if await self.summaries.write(held, values, connection) != 1:
                return False
            if request_ids:
                await connection.execute(
                    update(_requests).where(_requests.c.id.in_(list(request_ids))).values(reported_at=now)
                )
        return True

    # -- the log channel ----------------------------------------------------------------------

    async def claim_log_lines(self, lease_seconds: float, *, limit: int = 40) -> list[tuple[RequestView, Held]]:
        """Lease finished requests not yet mirrored to the log channel; they are marked only once posted.

        Leased, not marked: a replica stopped or killed mid-post leaves them to be claimed again once the
        lease runs out, instead of taking them out of the log channel for good.
        """
        now = self.clock()
        async with self.engine.connect() as connection:
            ids = list((await connection.execute(_UNLOGGED, {"now": now, "limit": limit})).scalars())
        held = await self.log_lines.claim_many(
            ids, lease_seconds, _requests.c.state == RequestState.DONE, _requests.c.logged_at.is_(None)
        )
        by_id = {h.row_id: h for h in held}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*REQUEST_COLUMNS)
                .where(_requests.c.id.in_(list(by_id)))
                .order_by(_requests.c.finished_at, _requests.c.id)
            )
            return [(request_view(row), by_id[row.id]) for row in rows]

    async def mark_logged(self, held: Sequence[Held]) -> int:
        """Slack accepted the post of these lines: how many were still ours to mark."""
        return await self.log_lines.write(held, {"logged_at": self.clock(), "log_lease_until": None})

    async def release_log_lines(self, held: Sequence[Held], *, retry_in: float = 0.0) -> int:
        """Give back leased log lines that could not be posted, so that a later round mirrors them."""
        return await self.log_lines.release(held, retry_in=retry_in)

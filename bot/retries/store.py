"""The durable retry queue: enqueue, claim with a lease, record Partoo's answers, release.

Every state change is one short transaction guarded by a condition on the row (state, lease token), so any
number of workers in any number of replicas can share one database without double work. What the notifier
claims to tell people lives in bot.retries.report_claims (a base of RetryQueue); the log's reads in
bot.retries.retry_log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.defaults import DEFAULT_NOT_CONFIRMED_MINUTES as NOT_CONFIRMED_MINUTES
from bot.domain.lifecycle import Answered, SendingStarted, SendingWithdrawn, TakenOver
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.retry_requests import EnqueueResult, NewBatch, RequestView
from bot.failures.state import apply_to_alerts, lock_alerts_of_requests
from bot.platform.group_commit import GroupCommit, each, together_on
from bot.platform.models import Attempt, Request
from bot.retries import queue_statements as sql
from bot.retries.enqueue import write_requests
from bot.retries.report_claims import ReportClaims
from bot.retries.request_rows import REQUEST_COLUMNS, request_view

Clock = Callable[[], float]

# How the history marks an answer that arrived after the request was taken over and closed.
LATE_ANSWER = "answered after the request was taken over"


class RetryQueue(ReportClaims):
    """All reads and writes of retry batches, requests and attempts."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock = time.time, awaiting_seconds: float = NOT_CONFIRMED_MINUTES * 60.0
    ) -> None:
        self.engine = engine
        self.clock = clock
        # How long an accepted retry waits for Partoo's report before admission lets another be asked.
        self.awaiting_seconds = awaiting_seconds
        self._enqueues: GroupCommit[tuple[NewBatch, tuple[int, ...]], EnqueueResult] = GroupCommit(
            engine, each(self._enqueue_in), name="enqueue", writers=1 if together_on(engine) else 0
        )

    # -- asking -------------------------------------------------------------------------------

    async def enqueue(self, batch: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Durably queue a retry of each message admission admits (bot.domain.admission); report the others.

        Committed together with the commands and clicks that arrive meanwhile (group commit): returns once
        this batch's requests are durable.
        """
        return await self._enqueues.submit((batch, tuple(dict.fromkeys(message_ids))))

    async def _enqueue_in(self, connection: AsyncConnection, asked: tuple[NewBatch, tuple[int, ...]]) -> EnqueueResult:
        return await write_requests(connection, *asked, now=self.clock(), awaiting_seconds=self.awaiting_seconds)

    # -- working ------------------------------------------------------------------------------

    async def claim_next(self, owner: str, lease_seconds: float) -> RequestView | None:
        """Lease the most overdue request of an announced batch, or one whose holder died.

        Each claim adds one to the request's `lease_token` and hands it out with the view: it fences every
        later write about the request (see `_LEASED` in bot.retries.queue_statements), so a worker whose lease
        expired and was taken over cannot change the request any more, whatever its clock or its network did
        meanwhile.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            candidate = (await connection.execute(sql.NEXT_CLAIMABLE, {"now": now})).scalar_one_or_none()
            if candidate is None:
                return None
            claimed = await connection.execute(
                sql.CLAIM, {"request_id": candidate, "now": now, "owner": owner, "until": now + lease_seconds}
            )
            if claimed.rowcount != 1:
                return None
            row = (await connection.execute(sql.CLAIMED, {"request_id": candidate})).one()
        return request_view(row)

    async def renew_lease(self, request_id: int, token: int, lease_seconds: float) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                sql.RENEW, {"request_id": request_id, "token": token, "until": self.clock() + lease_seconds}
            )
        return result.rowcount == 1

    async def begin_attempt(self, request_id: int, token: int, worker: str) -> int | None:
        """Open an attempt, or None if the lease was lost. After this, the request is never sent again."""
        now = self.clock()
        async with self.engine.begin() as connection:
            await lock_alerts_of_requests(connection, [request_id])  # alerts first: see lock_alerts
            message_id = (
                await connection.execute(sql.BEGIN_ATTEMPT, {"request_id": request_id, "token": token, "now": now})
            ).scalar_one_or_none()
            if message_id is None:
                return None
            attempt_id: int = (
                await connection.execute(
                    sql.OPEN_ATTEMPT, {"request_id": request_id, "worker": worker, "started_at": now}
                )
            ).scalar_one()
            await apply_to_alerts(connection, [message_id], SendingStarted(now))
        return attempt_id

    async def withdraw_attempt(self, request_id: int, attempt_id: int, token: int) -> bool:
        """Undo begin_attempt before calling Partoo: the request is as if the attempt had never been opened.

        For a worker whose slot passed while the attempt was being opened: it takes a new slot without holding
        an attempt in flight meanwhile (a crash then would close the request as unknown, unsent). False, and
        nothing changed, when the lease was lost.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            await lock_alerts_of_requests(connection, [request_id])  # alerts first: see lock_alerts
            message_id = (
                await connection.execute(sql.WITHDRAW_ATTEMPT, {"request_id": request_id, "token": token})
            ).scalar_one_or_none()
            if message_id is None:
                return False
            await connection.execute(sql.DROP_UNCALLED_ATTEMPT, {"attempt_id": attempt_id})
            await apply_to_alerts(connection, [message_id], SendingWithdrawn(now))
        return True

    async def record_answer(
        self, request_id: int, attempt_id: int, token: int, answer: PartooAnswer, *, retry_at: float | None
    ) -> bool:
        """Store Partoo's answer; `retry_at` None makes it the request's final outcome.

        False when the lease was taken over meanwhile (the call outlived it): the answer is then kept in
        the attempt's history only. The request was closed by whoever took it over, and a late answer
        must neither reopen it nor put it back in the queue, or the message could be sent twice.
        """
        now = self.clock()
        said = {"answer": answer.kind.value, "status": answer.http_status, "now": now}
        async with self.engine.begin() as connection:
            await lock_alerts_of_requests(connection, [request_id])  # alerts first: see lock_alerts
            message_id = (
                await connection.execute(
                    sql.RECORD_FINAL_ANSWER if retry_at is None else sql.RECORD_ANSWER_AND_REQUEUE,
                    {**said, "request_id": request_id, "token": token, "said": answer.detail, "retry_at": retry_at},
                )
            ).scalar_one_or_none()
            ours = message_id is not None
            detail = answer.detail if ours else f"{LATE_ANSWER}{': ' if answer.detail else ''}{answer.detail}"
            await connection.execute(
                sql.CLOSE_ATTEMPT, {**said, "attempt_id": attempt_id, "said": detail, "latency": answer.latency_ms}
            )
            if message_id is not None:
                event = Answered(answer.kind, answer.detail, now, final=retry_at is None)
                await apply_to_alerts(connection, [message_id], event)
        return ours

    async def finish_without_call(self, request_id: int, token: int, outcome: OutcomeKind, detail: str) -> bool:
        """Close a request taken over with an attempt in flight, without calling Partoo again.

        Only when this claim really holds the request (its token) and the attempt is still open are the
        request and its open attempts closed; otherwise nothing changes.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            await lock_alerts_of_requests(connection, [request_id])  # alerts first: see lock_alerts
            if not await _close_leased(connection, request_id, token, outcome, detail, now, in_flight=True):
                return False
            await connection.execute(
                update(Attempt)
                .where(Attempt.request_id == request_id, Attempt.finished_at.is_(None))
                .values(finished_at=now, outcome=outcome.value, detail=detail)
            )
            await apply_to_alerts(connection, [await _message_of(connection, request_id)], TakenOver(detail, now))
        return True

    async def close_unsent(self, request_id: int, token: int, outcome: OutcomeKind, detail: str) -> bool:
        """Close a leased request without calling Partoo (the conversation check rules it out).

        Fenced like every worker write, and only before any attempt started: a request already sent is
        closed by its answer, never by this.
        """
        now = self.clock()
        async with self.engine.begin() as connection:
            await lock_alerts_of_requests(connection, [request_id])  # alerts first: see lock_alerts
            if not await _close_leased(connection, request_id, token, outcome, detail, now, in_flight=False):
                return False
            event = Answered(outcome, detail, now)
            await apply_to_alerts(connection, [await _message_of(connection, request_id)], event)
        return True

    async def release(self, request_id: int, token: int) -> bool:
        """Give back a leased request that was not sent, so any worker can take it at once."""
        async with self.engine.begin() as connection:
            result = await connection.execute(sql.RELEASE, {"request_id": request_id, "token": token})
        return result.rowcount == 1

    async def latest_requests(self, message_ids: Sequence[int]) -> dict[int, RequestView]:
        """The latest request for each of these messages that has one (for the message shortcut's modal)."""
        if not message_ids:
            return {}
        latest = (
            select(func.max(Request.id)).where(Request.message_id.in_(list(message_ids))).group_by(Request.message_id)
        )
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(*REQUEST_COLUMNS).where(Request.id.in_(latest)))
            return {row.message_id: request_view(row) for row in rows}


async def _close_leased(
    connection: AsyncConnection,
    request_id: int,
    token: int,
    outcome: OutcomeKind,
    detail: str,
    now: float,
    *,
    in_flight: bool,
) -> bool:
    """End a request this claim holds, with an attempt in flight or none started; False if it holds it no more."""
    result = await connection.execute(
        sql.CLOSE_SENT if in_flight else sql.CLOSE_UNSENT,
        {"request_id": request_id, "token": token, "answer": outcome.value, "said": detail, "now": now},
    )
    return bool(result.rowcount == 1)


async def _message_of(connection: AsyncConnection, request_id: int) -> int:
    message_id: int = (
        await connection.execute(select(Request.message_id).where(Request.id == request_id))
    ).scalar_one()
    return message_id

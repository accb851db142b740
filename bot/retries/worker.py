"""The worker: claims due retry requests, waits for a shared Partoo slot, calls Partoo, records the answer.

Exactly-once rests on four rules, each enforced by a conditional UPDATE in bot.retries.store:
- a request is leased by one worker at a time (lease renewed while it waits for its slot);
- every write about the request names the lease's fencing token, so a worker whose lease was taken over
  (a call that outlived it) changes nothing: its late answer is kept as history and never re-queues;
- the attempt is opened in the database *before* the HTTP call, so a worker that dies mid-call leaves a
  mark, and whoever takes the request over closes it as UNKNOWN instead of sending it again;
- a request released on shutdown goes back to the queue only if no attempt is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from bot.defaults import POLL_INTERVAL
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.retry_requests import RequestView
from bot.domain.verdict import Verdict
from bot.failures.diagnosis import ConversationChecker
from bot.platform import correlation
from bot.platform.loop import PollingLoop
from bot.platform.metrics import Metrics
from bot.platform.pace import SharedPace
from bot.platform.partoo import PartooClient
from bot.retries.policy import RetryPolicy
from bot.retries.store import RetryQueue

log = logging.getLogger(__name__)

# About two minutes of database trouble before an answer is given up on (the request then ends as
# unknown when its lease is taken over, and is never sent twice).
RECORD_ATTEMPTS = 30

TAKEN_OVER_DETAIL = "the bot stopped while Partoo was being called; Partoo may have sent the message again"
STOPPED_DETAIL = "the bot stopped before Partoo answered; Partoo may have sent the message again"


class RetryWorker(PollingLoop):
    """Runs retry requests from the durable queue, at most `concurrency` at a time in this process."""

    name = "retry worker"

    def __init__(
        self,
        queue: RetryQueue,
        pace: SharedPace,
        partoo: PartooClient,
        *,
        worker_id: str,
        policy: RetryPolicy | None = None,
        lease_seconds: float = 30.0,
        concurrency: int = 32,
        poll_interval: float = POLL_INTERVAL,
        on_finished: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        checker: ConversationChecker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(poll_interval)
        self.queue = queue
        self.pace = pace
        self.partoo = partoo
        self.worker_id = worker_id
        self.policy = policy or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self.on_finished = on_finished
        self.metrics = metrics or Metrics()
        # Checks the conversation before each retry (None: CONVERSATION_CHECK=false).
        self.checker = checker
        self.clock = clock
        self._tasks: dict[asyncio.Task[None], RequestView] = {}
        self._sending: set[int] = set()
        self.last_error: str | None = None

    async def tick(self) -> bool:
        """Claim as much due work as fits; True when something was claimed (look again at once)."""
        return await self._claim_what_fits()

    async def _claim_what_fits(self) -> bool:
        claimed_any = False
        while len(self._tasks) < self.concurrency and not self._stopping:
            try:
                request = await self.queue.claim_next(self.worker_id, self.lease_seconds)
                self.last_error = None
            except Exception as error:
                self.last_error = f"cannot claim work: {type(error).__name__}"
                log.warning("retry worker %s: %s", self.worker_id, self.last_error)
                await asyncio.sleep(self.poll_interval)
                return False
            if request is None:
                return claimed_any
            claimed_any = True
            task = asyncio.create_task(self._run(request), name=f"retry-{request.message_id}")
            self._tasks[task] = request
            task.add_done_callback(self._tasks.pop)
        if len(self._tasks) >= self.concurrency:
            await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        return claimed_any

    async def _run(self, request: RequestView) -> None:
        # The id of the Slack request (or click) that asked, so every log line of this retry ties back to it.
        with correlation.bound(request.correlation_id):
            await self._run_bound(request)

    async def _run_bound(self, request: RequestView) -> None:
        if request.in_flight_since is not None:
            await self._close_taken_over(request)
            return
        keeper = asyncio.create_task(self._keep_lease(request))
        try:
            blocking = await self._check_conversation(request)
            if blocking is not None:
                await self._skip(request, blocking)
                return
            attempt_id = await self._begin_on_time(request)
            if attempt_id is None:
                return
            answer = await self.partoo.retry_message(request.message_id)
            self.metrics.partoo_answered(_status_label(answer), answer.latency_ms / 1000)
            await self._record(request, attempt_id, answer)
        except Exception:
            log.exception("retry of Partoo message %s failed inside the bot", request.message_id)
        finally:
            self._sending.discard(request.id)
            keeper.cancel()

    async def _begin_on_time(self, request: RequestView) -> int | None:
        """Open the attempt while its Partoo slot is still fresh; None when the lease was lost or the bot stops.

        The attempt is stored before the call (a crash in between must not send twice), and on a loaded
        database that commit can be slow: a call made long after its slot would overrun Partoo's minute. The
        attempt is then given back and a new slot taken, never held in flight through that wait, where a crash
        would leave the message closed as "unknown" without ever having been sent.
        """
        while not self._stopping:
            slot = await self.pace.wait_for_slot()
            if self._stopping:
                return None
            self._sending.add(request.id)
            attempt_id = await self.queue.begin_attempt(request.id, request.lease_token, self.worker_id)
            if attempt_id is not None and not self.pace.is_late(slot):
                return attempt_id
            if attempt_id is None or not await self.queue.withdraw_attempt(request.id, attempt_id, request.lease_token):
                log.warning("lost the lease on request %s before calling Partoo; not sending", request.id)
                return None
            self._sending.discard(request.id)
            log.info(
                "Partoo message %s: its call slot passed while the attempt was opened; taking a new one",
                request.message_id,
            )
        await self.queue.release(request.id, request.lease_token)  # stopping, and nothing is in flight
        return None

    async def _check_conversation(self, request: RequestView) -> Verdict | None:
        """The verdict that rules this retry out, or None to send it (a failed check never blocks)."""
        if self.checker is None or self._stopping:
            return None
        try:
            return await self.checker.before_retry(request)
        except Exception:
            log.exception("could not check the conversation of Partoo message %s; retrying anyway", request.message_id)
            return None

    async def _skip(self, request: RequestView, verdict: Verdict) -> None:
        """Close the request unsent: the check says Partoo would accept it and the message fail again."""
        if await self.queue.close_unsent(request.id, request.lease_token, OutcomeKind.SKIPPED, verdict.summary):
            log.info("Partoo message %s not sent: %s", request.message_id, verdict.kind.value)
            self.metrics.retry_finished(OutcomeKind.SKIPPED.value)
            self.on_finished()

    async def _record(self, request: RequestView, attempt_id: int, answer: PartooAnswer) -> None:
        attempts = request.attempts + 1
        now = self.clock()
        retry_at = self.policy.next_attempt_at(
            answer, attempts=attempts, first_attempt_at=request.first_attempt_at or now, now=now
        )
        # Partoo has answered: from here on the answer must reach the database, even on shutdown. It is
        # recorded before the 429 pause, so a database hiccup in the pause cannot leave the request to be
        # taken over and closed as "unknown" when Partoo's answer was known.
        recorded = await asyncio.shield(self._persist_answer(request, attempt_id, answer, retry_at))
        if answer.kind is OutcomeKind.RATE_LIMITED:
            try:
                await self.pace.pause(answer.retry_after or 1.0)
            except Exception as error:
                log.warning("could not pause every replica's Partoo calls: %s", type(error).__name__)
        if not recorded:
            log.warning(
                "Partoo answered %s for message %s after request %s was taken over; kept in its history only",
                answer.kind.value,
                request.message_id,
                request.id,
            )
            return
        log.info(
            "Partoo message %s: %s (attempt %s%s)",
            request.message_id,
            answer.kind.value,
            attempts,
            ", will try again" if retry_at is not None else "",
        )
        if retry_at is None:
            self.metrics.retry_finished(answer.kind.value)
            self.on_finished()

    async def _persist_answer(
        self, request: RequestView, attempt_id: int, answer: PartooAnswer, retry_at: float | None
    ) -> bool:
        """Record Partoo's answer, waiting out a database hiccup rather than losing what Partoo said.

        False when the lease was taken over meanwhile (the answer went to the attempt's history only).
        """
        delay = 0.2
        token = request.lease_token
        for _ in range(RECORD_ATTEMPTS - 1):
            try:
                return await self.queue.record_answer(request.id, attempt_id, token, answer, retry_at=retry_at)
            except (SQLAlchemyError, OSError) as error:
                log.warning(
                    "could not record Partoo's answer (%s) for message %s yet: %s",
                    answer.kind.value,
                    request.message_id,
                    type(error).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return await self.queue.record_answer(request.id, attempt_id, token, answer, retry_at=retry_at)

    async def _close_taken_over(self, request: RequestView) -> None:
        closed = await self.queue.finish_without_call(
            request.id, request.lease_token, OutcomeKind.UNKNOWN, TAKEN_OVER_DETAIL
        )
        if closed:
            log.warning("request %s was in flight when its worker died; closed as unknown", request.id)
            self.metrics.retry_finished(OutcomeKind.UNKNOWN.value)
            self.on_finished()

    async def _keep_lease(self, request: RequestView) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.queue.renew_lease(request.id, request.lease_token, self.lease_seconds):
                    return  # taken over: every write of ours is fenced off from here on
            except Exception as error:
                log.warning("could not renew lease of request %s: %s", request.id, type(error).__name__)

    async def stop(self, grace_seconds: float = 20.0) -> None:
        """Stop claiming; let calls in flight finish; give back what was claimed but not sent.

        A call still unanswered after `grace_seconds` is cut: it may have reached Partoo, so it is closed as
        unknown at once (never sent again) rather than left for another worker to find when the lease expires.
        """
        await super().stop()
        released: list[RequestView] = []
        for task, request in list(self._tasks.items()):
            if request.id not in self._sending:
                task.cancel()
                released.append(request)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        cut: list[RequestView] = []
        for task, request in list(self._tasks.items()):
            (cut if request.id in self._sending else released).append(request)
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        for request in released:
            try:
                await self.queue.release(request.id, request.lease_token)
            except Exception as error:
                log.warning("could not release request %s: %s", request.id, type(error).__name__)
        for request in cut:
            try:
                if await self.queue.finish_without_call(
                    request.id, request.lease_token, OutcomeKind.UNKNOWN, STOPPED_DETAIL
                ):
                    log.warning("request %s was in flight when the bot stopped; closed as unknown", request.id)
                    self.metrics.retry_finished(OutcomeKind.UNKNOWN.value)
            except Exception as error:
                log.warning("could not close request %s: %s", request.id, type(error).__name__)


def _status_label(answer: PartooAnswer) -> str:
    if answer.http_status is not None:
        return str(answer.http_status)
    return "timeout" if answer.kind is OutcomeKind.UNKNOWN else "connection_error"

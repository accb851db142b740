"""The one interface listeners use: ask for retries, read the log. What runs behind it may change."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.domain.bulk import Filter
from bot.domain.retry_requests import EnqueueResult, NewBatch
from bot.failures import verdict_messages
from bot.failures.businesses import BusinessNames
from bot.failures.diagnosis_store import DiagnosisStore
from bot.failures.store import FailureStore
from bot.platform.retention import history_start
from bot.platform.slack import SlackPoster
from bot.rendering.message import SlackMessage
from bot.retries import log_messages, messages, plan_messages
from bot.retries.plan_store import PlanStatus, PlanStore, TooLarge
from bot.retries.retry_log import RetryLog
from bot.retries.stopping import stop_batch
from bot.retries.store import RetryQueue

# `status` links to the threads of this many of a message's latest requests (one chat.getPermalink each).
STATUS_PERMALINKS = 12


class RetryService:
    """Durably queues retry requests and answers questions about the retry log."""

    def __init__(
        self,
        queue: RetryQueue,
        retry_log: RetryLog,
        alerts: FailureStore,
        poster: SlackPoster,
        *,
        on_queued: Callable[[], None] = lambda: None,
        diagnosis: DiagnosisStore | None = None,
        retention_seconds: float = 0.0,
        names: BusinessNames | None = None,
        plans: PlanStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.retry_log = retry_log
        self.alerts = alerts
        self.poster = poster
        self.on_queued = on_queued
        self.diagnosis = diagnosis
        self.retention_seconds = retention_seconds
        self.names = names
        self.plans = plans
        self.clock = clock

    def history_start(self) -> float | None:
        """Before this moment finished retries have been pruned (RETENTION_DAYS); None when all are kept."""
        return history_start(self.clock(), self.retention_seconds)

    async def request(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests durably; the notifier announces them and the worker sends them.

        A single message that has an alert reports into the alert's thread instead of a new root message
        (unless it was asked from another message's thread, by the message shortcut: it answers there); the
        alert is looked up in the transaction that queues the request.
        """
        if len(message_ids) == 1 and ask.root_ts is None:
            ask = replace(ask, report_into_alert=True)
        return await self.enqueue(ask, message_ids)

    async def enqueue(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests as asked, and wake the loops that announce and send them."""
        result = await self.queue.enqueue(ask, message_ids)
        if result.queued:
            self.on_queued()
        return result

    def plan_store(self) -> PlanStore:
        if self.plans is None:
            raise RuntimeError("plans are not configured")  # build_bot always gives them
        return self.plans

    async def plan(self, user_id: str, channel_id: str, wanted: Filter) -> SlackMessage:
        """Match, group and store a plan, and show it (nothing is queued)."""
        made = await self.plan_store().make(user_id, channel_id, wanted)
        if isinstance(made, TooLarge):
            return plan_messages.too_large(made)
        shown = [item.business_id for item in made.items[: plan_messages.FIRST_IDS] if item.business_id]
        businesses = await self.names.lookup(shown) if self.names else {}
        return plan_messages.plan(made, businesses)

    async def plan_status(self, plan_id: int) -> PlanStatus | None:
        return await self.plan_store().status(plan_id)

    async def stop(self, batch_id: int, user_id: str, channel_id: str, ts: str) -> SlackMessage:
        """Stop on a batch's root message: remove its requests not yet sent (bot.retries.stopping)."""
        done = await stop_batch(self.queue.engine, batch_id, user_id, channel_id, ts, self.clock())
        if done is None:
            return messages.click_refused("This button does not belong to a retry the bot posted; nothing stopped.")
        if done.stopped:
            self.on_queued()  # wake the notifier: the progress message and the thread show them stopped
        return messages.stopped(len(done.stopped), done.still_going)

    async def status(self, message_id: int) -> SlackMessage:
        history = await self.retry_log.history(message_id)
        permalinks: dict[int, str] = {}
        for _request, batch, _attempts in history[-STATUS_PERMALINKS:]:
            if batch.root_channel and batch.root_ts and batch.id not in permalinks:
                link = await self.poster.permalink(batch.root_channel, batch.root_ts)
                if link:
                    permalinks[batch.id] = link
        answer = log_messages.status(
            message_id,
            history,
            permalinks,
            await self._alert_post_error(message_id),
            history_start=self.history_start(),
            business=(await self.names.of_messages([message_id])).get(message_id) if self.names else None,
        )
        if self.diagnosis is None:
            return answer
        verdict = await self.diagnosis.latest_verdict(message_id)
        return replace(answer, blocks=[*answer.blocks, verdict_messages.status_section(verdict)])

    async def _alert_post_error(self, message_id: int) -> str | None:
        """Why the message's alert (or the digest it is in) could not be posted, if it could not."""
        alert = await self.alerts.alert_for(message_id)
        if alert is None or alert.post_error or alert.digest_id is None:
            return alert.post_error if alert else None
        digest = await self.alerts.digest(alert.digest_id)
        return digest.post_error if digest else None

    async def recent(self, size: int) -> SlackMessage:
        return log_messages.recent_log(await self.retry_log.recent(size))

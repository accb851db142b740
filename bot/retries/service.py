"""The one interface listeners use: ask for retries, read the log. What runs behind it may change."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from slack_sdk.models.views import View

from bot.alerts import verdict_messages
from bot.alerts.diagnosis_store import DiagnosisStore
from bot.alerts.store import AlertStore
from bot.domain.health import WebhookActivity
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN
from bot.domain.outcomes import OutcomeKind
from bot.domain.records import EnqueueResult, NewBatch
from bot.platform.retention import history_start
from bot.platform.slack import SlackPoster
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.retries import messages
from bot.retries.store import RetryQueue

WEEK = 7 * 24 * 3600.0


@dataclass(frozen=True)
class ClickRefused:
    """A click the bot will not act on, and the sentence that says why."""

    reason: str


class RetryService:
    """Durably queues retry requests and answers questions about the retry log."""

    def __init__(
        self,
        queue: RetryQueue,
        alerts: AlertStore,
        poster: SlackPoster,
        *,
        on_queued: Callable[[], None] = lambda: None,
        diagnosis: DiagnosisStore | None = None,
        clock: Callable[[], float] = time.time,
        webhook_activity: Callable[[], Awaitable[WebhookActivity]] | None = None,
        retention_seconds: float = 0.0,
    ) -> None:
        self.queue = queue
        self.diagnosis = diagnosis
        self.alerts = alerts
        self.poster = poster
        self.on_queued = on_queued
        self.clock = clock
        # Retention and webhook health (issue #12): what the App Home and `status` add.
        self.webhook_activity = webhook_activity
        self.retention_seconds = retention_seconds

    def history_start(self) -> float | None:
        """Before this moment finished retries have been pruned (RETENTION_DAYS); None when all are kept."""
        return history_start(self.clock(), self.retention_seconds)

    async def request(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests durably; the notifier announces them and the worker sends them.

        A single message that has an alert reports into the alert's thread instead of a new root message
        (unless it was asked from another message's thread, by the message shortcut: it answers there).
        """
        if len(message_ids) == 1 and ask.root_ts is None:
            alert = await self.alerts.alert_for(message_ids[0])
            if alert is not None and alert.ts is not None and _answers_in(ask, alert.channel_id, alert.ts):
                ask = replace(
                    ask,
                    root_channel=alert.channel_id,
                    root_ts=alert.ts,
                    alert_message_id=alert.message_id,
                    thread_ts=None,
                )
        return await self._enqueue(ask, message_ids)

    async def retry_anyway(
        self, message_id: int, *, user_id: str, channel_id: str, message_ts: str, correlation_id: str
    ) -> EnqueueResult | ClickRefused:
        """A "Retry anyway" click (confirmed): a Retry that is sent whatever the conversation check says."""
        return await self.retry_from_alert(
            message_id,
            user_id=user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            correlation_id=correlation_id,
            retry_anyway=True,
        )

    async def retry_from_alert(
        self,
        message_id: int,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str,
        correlation_id: str,
        retry_anyway: bool = False,
    ) -> EnqueueResult | ClickRefused:
        """A Retry click: acts only on an alert the bot posted, in the channel and message it posted it in."""
        alert = await self.alerts.alert_for(message_id)
        if alert is None or alert.channel_id != channel_id or alert.ts != message_ts:
            return ClickRefused("This button does not belong to an alert the bot posted; nothing was retried.")
        if alert.state.delivered_at is not None:
            return ClickRefused(f"Partoo message `{message_id}` was delivered; nothing to retry.")
        if alert.state.retry_in_progress and alert.state.last_outcome in (None, OutcomeKind.ACCEPTED):
            return ClickRefused(_already_retried(alert.state.retry_requested_by, alert.state.retry_requested_at))
        if not alert.state.can_retry:
            return ClickRefused(
                f"Partoo message `{message_id}` was retried {alert.state.retries} times already; "
                "check the conversation in Partoo."
            )
        ask = NewBatch(
            source="button",
            requested_by=user_id,
            channel_id=channel_id,
            correlation_id=correlation_id,
            root_channel=channel_id,
            root_ts=message_ts,
            alert_message_id=message_id,
            expected_alert_retries=alert.state.retries,
            retry_anyway=retry_anyway,
        )
        result = await self.request(ask, [message_id])
        if result.alert_changed:
            latest = await self.alerts.alert_for(message_id)
            assert latest is not None
            return ClickRefused(_already_retried(latest.state.retry_requested_by, latest.state.retry_requested_at))
        return result

    async def retry_digest(
        self, digest_id: int, *, user_id: str, channel_id: str, message_ts: str, correlation_id: str
    ) -> EnqueueResult | ClickRefused:
        """A "Retry all" click on a digest the bot posted: one request per failure it groups."""
        digest = await self.alerts.digest(digest_id)
        if digest is None or digest.channel_id != channel_id or digest.ts != message_ts:
            return ClickRefused("This button does not belong to a digest the bot posted; nothing was retried.")
        if not await self.alerts.request_retry_all(digest_id, user_id):
            return ClickRefused("Someone already asked to retry all of these messages.")
        message_ids = [
            alert.message_id
            for alert in await self.alerts.digest_alerts(digest_id)
            if alert.state.delivered_at is None and alert.state.can_retry
        ]
        ask = NewBatch(
            source="button",
            requested_by=user_id,
            channel_id=channel_id,
            correlation_id=correlation_id,
            root_channel=channel_id,
            root_ts=message_ts,
            digest_id=digest_id,
        )
        return await self._enqueue(ask, message_ids)

    async def _enqueue(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        result = await self.queue.enqueue(ask, message_ids)
        if result.queued:
            self.on_queued()
        return result

    async def status(self, message_id: int) -> SlackMessage:
        history = await self.queue.history(message_id)
        permalinks: dict[int, str] = {}
        for _request, batch, _attempts in history[-12:]:
            if batch.root_channel and batch.root_ts and batch.id not in permalinks:
                link = await self.poster.permalink(batch.root_channel, batch.root_ts)
                if link:
                    permalinks[batch.id] = link
        answer = messages.status(
            message_id,
            history,
            permalinks,
            await self._alert_post_error(message_id),
            history_start=self.history_start(),
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
        return messages.recent_log(await self.queue.recent(size))

    async def home(self) -> View:
        now = self.clock()
        midnight = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        today = _summary(
            await self.queue.outcome_counts(midnight.timestamp()),
            await self.alerts.delivery_counts(midnight.timestamp()),
        )
        week = _summary(await self.queue.outcome_counts(now - WEEK), await self.alerts.delivery_counts(now - WEEK))
        activity = await self.webhook_activity() if self.webhook_activity else None
        return messages.home(
            await self.queue.recent(15), today, week, webhooks=activity, history_start=self.history_start(), now=now
        )


def _answers_in(ask: NewBatch, channel_id: str, ts: str) -> bool:
    """Whether an ask may answer in this thread: it names none, or names this one (a shortcut on the alert)."""
    return ask.thread_ts is None or (ask.channel_id, ask.thread_ts) == (channel_id, ts)


def _already_retried(user_id: str | None, at: float | None) -> str:
    who = mrkdwn.user(user_id) if user_id else "Someone"
    when = f" {mrkdwn.when(at)}" if at else ""
    return f"{who} already retried this message{when}; the bot waits for Partoo's delivery report."


def _summary(counts: dict[str, int], deliveries: dict[str, int]) -> dict[str, int]:
    """Raw outcome counts folded into what the App Home shows."""
    accepted = counts.get("accepted", 0)
    unfinished = counts.get("queued", 0) + counts.get("running", 0)
    requested = sum(counts.values())
    return {
        "requested": requested,
        "accepted": accepted,
        "not_accepted": requested - accepted - unfinished,
        "delivered": deliveries.get(DELIVERED, 0),
        "failed_again": deliveries.get(FAILED_AGAIN, 0),
    }

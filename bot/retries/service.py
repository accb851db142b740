"""The one interface listeners use: ask for retries, read the log. What runs behind it may change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.alerts.store import AlertStore
from bot.domain.records import EnqueueResult, NewBatch
from bot.platform.slack import SlackPoster
from bot.rendering.message import SlackMessage
from bot.retries import log_messages
from bot.retries.history import RetryLog
from bot.retries.store import RetryQueue

# `status` links to the threads of this many of a message's latest requests (one chat.getPermalink each).
STATUS_PERMALINKS = 12


class RetryService:
    """Durably queues retry requests and answers questions about the retry log."""

    def __init__(
        self,
        queue: RetryQueue,
        retry_log: RetryLog,
        alerts: AlertStore,
        poster: SlackPoster,
        *,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.retry_log = retry_log
        self.alerts = alerts
        self.poster = poster
        self.on_queued = on_queued

    async def request(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests durably; the notifier announces them and the worker sends them.

        A single message that has an alert reports into the alert's thread instead of a new root message.
        """
        if len(message_ids) == 1 and ask.root_ts is None:
            alert = await self.alerts.alert_for(message_ids[0])
            if alert is not None and alert.ts is not None:
                ask = replace(ask, root_channel=alert.channel_id, root_ts=alert.ts, alert_message_id=alert.message_id)
        return await self.enqueue(ask, message_ids)

    async def enqueue(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests as asked, and wake the loops that announce and send them."""
        result = await self.queue.enqueue(ask, message_ids)
        if result.queued:
            self.on_queued()
        return result

    async def status(self, message_id: int) -> SlackMessage:
        history = await self.retry_log.history(message_id)
        permalinks: dict[int, str] = {}
        for _request, batch, _attempts in history[-STATUS_PERMALINKS:]:
            if batch.root_channel and batch.root_ts and batch.id not in permalinks:
                link = await self.poster.permalink(batch.root_channel, batch.root_ts)
                if link:
                    permalinks[batch.id] = link
        return log_messages.status(message_id, history, permalinks, await self._alert_post_error(message_id))

    async def _alert_post_error(self, message_id: int) -> str | None:
        """Why the message's alert (or the digest it is in) could not be posted, if it could not."""
        alert = await self.alerts.alert_for(message_id)
        if alert is None or alert.post_error or alert.digest_id is None:
            return alert.post_error if alert else None
        digest = await self.alerts.digest(alert.digest_id)
        return digest.post_error if digest else None

    async def recent(self, size: int) -> SlackMessage:
        return log_messages.recent_log(await self.retry_log.recent(size))

"""The one interface listeners use: ask for retries, read the log. What runs behind it may change."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from slack_sdk.models.views import View

from bot.slack import messages
from bot.slack.client import SlackPoster
from bot.slack.messages import SlackMessage
from bot.store.queue import EnqueueResult, NewBatch, RetryQueue

WEEK = 7 * 24 * 3600.0


class RetryService:
    """Durably queues retry requests and answers questions about the retry log."""

    def __init__(
        self,
        queue: RetryQueue,
        poster: SlackPoster,
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.poster = poster
        self.on_queued = on_queued
        self.clock = clock

    async def request(self, ask: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Write the requests durably; the notifier announces them and the worker sends them."""
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
        return messages.status(message_id, history, permalinks)

    async def recent(self, size: int) -> SlackMessage:
        return messages.recent_log(await self.queue.recent(size))

    async def home(self) -> View:
        now = self.clock()
        midnight = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        today = _summary(await self.queue.outcome_counts(midnight.timestamp()))
        week = _summary(await self.queue.outcome_counts(now - WEEK))
        return messages.home(await self.queue.recent(15), today, week)


def _summary(counts: dict[str, int]) -> dict[str, int]:
    """Raw outcome counts folded into what the App Home shows."""
    accepted = counts.get("accepted", 0)
    unfinished = counts.get("queued", 0) + counts.get("running", 0)
    requested = sum(counts.values())
    return {
        "requested": requested,
        "accepted": accepted,
        "not_accepted": requested - accepted - unfinished,
        "delivered": counts.get("delivered", 0),
        "failed_again": counts.get("failed_again", 0),
    }

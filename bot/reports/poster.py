"""Posts the weekly report when it is due: once a week across replicas, resumed after a restart.

Each round looks at the latest occurrence of the schedule. If its report was neither posted nor skipped,
the round claims it, builds it from the database (the seven days before the occurrence) and posts it.
A bot that was down at the due time posts it when it is back; a Slack outage delays it, never doubles it.
`post_now` posts the seven days up to now on demand, beside the schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.defaults import REPORT_CLAIM_SECONDS, REPORT_POLL_SECONDS
from bot.domain.weekly_report import WEEK_SECONDS, Schedule
from bot.platform.leases import ClaimLost, while_claimed
from bot.platform.loop import PollingLoop
from bot.platform.slack import SlackPoster, SlackPostError
from bot.rendering.message import SlackMessage
from bot.reports.messages import report_message
from bot.reports.schedule_store import ReportSchedule
from bot.reports.store import ReportReads

log = logging.getLogger(__name__)

# After Slack refused or failed the post, the next try waits this long (the schedule is weekly; no hurry).
RETRY_SECONDS = 60.0


class ReportPoster(PollingLoop):
    name = "weekly-report"

    def __init__(
        self,
        schedule_store: ReportSchedule,
        reads: ReportReads,
        poster: SlackPoster,
        channel_id: str,
        schedule: Schedule,
        *,
        silences: Callable[[], Awaitable[Sequence[str]]] | None = None,
        poll_interval: float = REPORT_POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(poll_interval)
        self.store = schedule_store
        self.reads = reads
        self.poster = poster
        self.channel_id = channel_id
        self.schedule = schedule
        self.silences = silences
        self.clock = clock

    async def tick(self) -> bool:
        due = int(self.schedule.latest_due(self.clock()))
        held = await self.store.claim(due, self.channel_id, REPORT_CLAIM_SECONDS)
        if held is None:
            return False
        message = await self._week_until(due)
        try:
            ts = await while_claimed(
                self.poster.post(self.channel_id, message),
                self.store.leases.renewer(held, REPORT_CLAIM_SECONDS),
                REPORT_CLAIM_SECONDS / 3,
                give_back=lambda: self.store.leases.release(held),
            )
        except ClaimLost:
            return False  # another replica holds it now, and posts it
        except SlackPostError as error:
            log.warning("weekly report not posted (%s); trying again in %.0f s", error.error, RETRY_SECONDS)
            await self.store.leases.release(held, retry_in=RETRY_SECONDS)
            return False
        if not await self.store.mark_posted(held, ts):
            log.warning("weekly report of %s posted, but its claim was taken over meanwhile", due)
        return False

    async def post_now(self) -> str | None:
        """Post the report of the seven days up to now at once, outside the schedule; the message's ts.

        For someone who wants the figures today (the demo's "Post the weekly report now"): it is not one of
        the schedule's occurrences, so the next one is still posted when due. Raises SlackPostError.
        """
        ts = await self.poster.post(self.channel_id, await self._week_until(self.clock()))
        log.info("weekly report of the seven days up to now posted on demand")
        return ts

    async def _week_until(self, end: float) -> SlackMessage:
        """The report message of the seven days before `end`, with the silences active now."""
        silences = await self.silences() if self.silences else ()
        return report_message(await self.reads.report(end - WEEK_SECONDS, end, silences=silences))

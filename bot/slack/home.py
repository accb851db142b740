"""The App Home tab: today's and this week's counts and the recent log, published when a user opens it.

Slack wants the event answered within 3 seconds and retries it otherwise, so the listener answers at once
and the reading and `views.publish` run afterwards (a Bolt lazy listener).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.models.blocks import Block, DividerBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.store import AlertStore
from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN
from bot.domain.webhook_activity import WebhookActivity
from bot.domain.weekly_report import WEEK_SECONDS, Schedule
from bot.failures.businesses import BusinessNames
from bot.platform.retention import history_start
from bot.reports.messages import weekly_report_section
from bot.reports.store import ReportReads
from bot.retries.home_messages import home
from bot.retries.retry_log import RetryLog
from bot.slack.replies import acknowledge

WEEK = WEEK_SECONDS
RECENT_REQUESTS = 15


class AppHome:
    """Reads what the App Home shows."""

    def __init__(
        self,
        retry_log: RetryLog,
        alerts: AlertStore,
        *,
        webhook_activity: Callable[[], Awaitable[WebhookActivity]] | None = None,
        retention_seconds: float = 0.0,
        reports: ReportReads | None = None,
        report_schedule: Schedule | None = None,
        names: BusinessNames | None = None,
        silences: Callable[[], Awaitable[Sequence[str]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retry_log = retry_log
        self.alerts = alerts
        # Webhook health and where history starts (retention): shown as context lines.
        self.webhook_activity = webhook_activity
        self.retention_seconds = retention_seconds
        # The weekly report of the latest week the schedule closed: what the channel was (or will be) sent.
        self.reports = reports
        self.report_schedule = report_schedule
        self.names = names
        # The active silences' lines, shown in the report section.
        self.silences = silences
        self.clock = clock

    async def view(self) -> View:
        now = self.clock()
        midnight = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        today = await self._summary(midnight.timestamp())
        week = await self._summary(now - WEEK)
        activity = await self.webhook_activity() if self.webhook_activity else None
        recent = await self.retry_log.recent(RECENT_REQUESTS)
        businesses = await self.names.of_messages([r.message_id for r in recent]) if self.names else {}
        return home(
            recent,
            today,
            week,
            webhooks=activity,
            history_start=history_start(now, self.retention_seconds),
            now=now,
            report=await self._report(now),
            businesses=businesses,
        )

    async def _report(self, now: float) -> list[Block]:
        if self.reports is None or self.report_schedule is None:
            return []
        due = self.report_schedule.latest_due(now)
        silences = await self.silences() if self.silences else ()
        report = await self.reports.report(due - WEEK, due, silences=silences)
        return [DividerBlock(), *weekly_report_section(report)]

    async def _summary(self, since: float) -> dict[str, int]:
        """Raw outcome counts folded into what the App Home shows."""
        counts = await self.retry_log.outcome_counts(since)
        deliveries = await self.alerts.delivery_counts(since)
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


def register(app: AsyncApp, app_home: AppHome, on_error: Callable[[Exception], Awaitable[None]]) -> None:
    """Attach the app_home_opened listener: answer first, publish after.

    A lazy listener runs after Bolt answered, out of reach of Bolt's error handler: `on_error` gets its
    failures instead (the same handler, so a revoked token shows in /readyz all the same).
    """

    async def publish(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        try:
            await client.views_publish(user_id=event["user"], view=await app_home.view())
        except Exception as error:
            await on_error(error)

    app.event("app_home_opened")(ack=acknowledge, lazy=[publish])

"""The running bot: every long-lived component, started together and stopped together within one budget.

`bot.assembly` builds it from Settings; the ASGI lifespan starts and stops it; `/readyz` asks it what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.alerter import Alerter
from bot.alerts.diagnosis_loop import DiagnosisLoop
from bot.alerts.health import WebhookHealth, WebhookWatcher
from bot.alerts.store import AlertStore
from bot.config import Settings
from bot.defaults import SHUTDOWN_RESERVE_SECONDS, TOKEN_CHECK_SECONDS
from bot.domain.access import alert_channels_refused, refused_buttons
from bot.platform.database import migrate
from bot.platform.metrics import Metrics
from bot.platform.partoo import PartooClient
from bot.platform.retention import Pruner, ensure_incremental_vacuum, history_start
from bot.platform.shutdown import ShutdownBudget
from bot.platform.slack import SlackAuthError, SlackPoster, classify
from bot.platform.socket_mode import SocketModeConnection, start_socket_mode
from bot.reports.poster import ReportPoster
from bot.retries.notifier import Notifier
from bot.retries.retry_log import RetryLog
from bot.retries.service import RetryService
from bot.retries.store import RetryQueue
from bot.retries.worker import RetryWorker
from bot.slack.replies import AfterAck

log = logging.getLogger(__name__)


@dataclass
class Bot:
    """Every long-lived component, built once per process."""

    settings: Settings
    engine: AsyncEngine
    queue: RetryQueue
    retry_log: RetryLog
    partoo: PartooClient
    slack: AsyncWebClient
    poster: SlackPoster
    worker: RetryWorker
    notifier: Notifier
    alerts: AlertStore
    alerter: Alerter
    diagnosis: DiagnosisLoop
    service: RetryService
    bolt: AsyncApp
    worker_id: str
    metrics: Metrics
    shutdown: ShutdownBudget
    health: WebhookHealth
    watcher: WebhookWatcher
    pruner: Pruner
    after_ack: AfterAck
    report_poster: ReportPoster | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    socket_mode: SocketModeConnection | None = None
    _token_checked_at: float = -TOKEN_CHECK_SECONDS
    _token_problem: str | None = None

    async def start(self) -> None:
        await migrate(self.engine)
        await ensure_incremental_vacuum(self.engine)
        self.tasks = [
            asyncio.create_task(self.worker.run(), name="retry-worker"),
            asyncio.create_task(self.notifier.run(), name="notifier"),
            asyncio.create_task(self.alerter.run(), name="alerter"),
            asyncio.create_task(self.diagnosis.run(), name="diagnosis"),
            asyncio.create_task(self.watcher.run(), name="webhook-watch"),
            asyncio.create_task(self.pruner.run(), name="retention"),
        ]
        if self.report_poster is not None:
            self.tasks.append(asyncio.create_task(self.report_poster.run(), name="weekly-report"))
        if self.settings.socket_mode:
            self.socket_mode = await start_socket_mode(
                self.bolt, self.settings.slack_app_token.value, web_client=self.slack
            )
        log.info(
            "partoo-retry %s started (worker %s, Slack over %s)",
            _version(),
            self.worker_id,
            "Socket Mode" if self.settings.socket_mode else "HTTP",
        )
        # Starting anyway: the commands still work, and the fix (a list in the environment) needs a restart.
        refused = alert_channels_refused(
            self.settings.access, self.settings.slack_alert_channel, self.settings.alert_routes.channels
        )
        for setting, channel in refused:
            log.warning("%s; %s", *refused_buttons(setting, channel))

    async def stop(self) -> None:
        """Stop taking work, finish or release what is in flight, close every connection: within the budget."""
        self.shutdown.start()  # counted from SIGTERM when __main__ saw it, from now otherwise
        if self.socket_mode is not None:
            # No new Slack work comes in from here on.
            await _within(self.socket_mode.close(), self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS))
        self.poster.stopping.set()  # posts waiting for their channel's slot give up (kept for later)
        await self.notifier.stop()
        await self.alerter.stop()
        await self.diagnosis.stop()
        await self.watcher.stop()
        await self.pruner.stop()
        if self.report_poster is not None:
            await self.report_poster.stop()
        # Partoo calls in flight get what is left but the reserve; the worker closes those still unanswered.
        await self.worker.stop(grace_seconds=self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS))
        # Answers to what people asked (through response_url, a modal opening) finish before anything closes.
        cut = await self.after_ack.drain(self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS / 2))
        if cut:
            log.warning("%d answers to Slack were still under way when the shutdown budget ran out", cut)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS / 2))
        for task in self.tasks:
            task.cancel()
        await _within(self.partoo.aclose(), self.shutdown.remaining())
        try:
            await _within(self.health.flush(), self.shutdown.remaining())  # the last seconds' delivery counts
        except Exception as error:
            log.warning("webhook counts not written at stop: %s", type(error).__name__)
        # Half a second at least: a database left open can keep the process from exiting at all.
        await _within(self.engine.dispose(), max(self.shutdown.remaining(), 0.5))
        log.info("partoo-retry stopped")

    async def readiness(self) -> list[str]:
        """Why the bot is not ready, or an empty list."""
        problems = []
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            problems.append(f"database unreachable: {type(error).__name__}")
        if not self.worker.running:
            problems.append("retry worker not running")
        elif self.worker.last_error:
            problems.append(self.worker.last_error)
        if not self.notifier.running:
            problems.append("notifier not running")
        if not self.alerter.running:
            problems.append("alerter not running")
        if not self.diagnosis.running:
            problems.append("diagnosis loop not running")
        if self.socket_mode is not None and not await self.socket_mode.is_connected():
            problems.append("Socket Mode not connected to Slack")
        if token_problem := await self._slack_token_problem():
            problems.append(token_problem)
        elif self.poster.auth_problem:
            problems.append(self.poster.auth_problem)
        return problems

    async def details(self) -> dict[str, object]:
        """What /readyz shows besides readiness: webhook activity and retention. Never a reason to fail."""
        found: dict[str, object] = {}
        now = time.time()
        try:
            activity = await self.health.activity()
            found["webhooks"] = {
                "last_at": _iso(activity.last_at),
                "seconds_since_last": round(now - activity.last_at) if activity.last_at is not None else None,
                "last_hour": activity.last_hour,
            }
        except Exception as error:
            log.info("webhook activity unavailable for /readyz: %s", type(error).__name__)
        start = history_start(now, self.pruner.retention_seconds)
        found["retention"] = {"days": self.settings.retention_days, "history_starts_at": _iso(start)}
        return found

    async def _slack_token_problem(self) -> str | None:
        """Whether Slack rejects the bot token (auth.test, asked at most once a minute).

        Only a rejected token counts: Slack being briefly unreachable must not take the bot out of a load
        balancer, since webhooks and queued retries still work and replies wait for Slack to come back.
        """
        now = time.monotonic()
        if now - self._token_checked_at < TOKEN_CHECK_SECONDS:
            return self._token_problem
        self._token_checked_at = now
        try:
            await self.slack.auth_test()
            self._token_problem = None
            self.poster.auth_problem = None  # the token works again (a rotation finished)
        except SlackApiError as error:
            narrow = classify(error)
            if isinstance(narrow, SlackAuthError):
                self._token_problem = f"Slack rejects the bot token ({narrow.error})"
        except Exception as error:
            log.info("auth.test failed (%s); readiness unchanged", type(error).__name__)
        return self._token_problem


async def _within(step: Awaitable[None], seconds: float) -> None:
    """Run a closing step, abandoned (and logged) when it would overrun the shutdown budget."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("shutdown budget spent; not waiting for the rest of it")


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds") if timestamp is not None else None


def _version() -> str:
    from bot import __version__

    return __version__

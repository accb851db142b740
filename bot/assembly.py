"""Building the bot: every component from Settings, wired together, with the knobs tests and benchmarks turn.

Nothing is constructed at import time; tests build the same bot with their own knobs (e.g. a short lease) and
point it at fake Slack and Partoo servers through Settings. bot.app serves it over HTTP.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from slack_bolt.async_app import AsyncApp

from bot.alerts import silence_messages
from bot.alerts.alerter import Alerter
from bot.alerts.diagnosis_loop import DiagnosisLoop
from bot.alerts.health import WebhookHealth, WebhookWatcher
from bot.alerts.store import AlertStore
from bot.config import Settings
from bot.defaults import (
    BULK_PLAN_TTL_SECONDS,
    CHECK_TIMEOUT,
    DEFAULT_TIMEOUT,
    DIGEST_WINDOW,
    HEALTH_FLUSH_SECONDS,
    LEASE_SECONDS,
    LOG_CHANNEL_INTERVAL,
    POLL_INTERVAL,
    POST_BURST,
    POSTS_PER_MINUTE,
    PREVIEW_CHARS,
    REPORT_POLL_SECONDS,
    RETENTION_BATCH,
    RETENTION_INTERVAL,
    RETENTION_PAUSE,
    SLACK_BACKOFF,
    SLACK_RETRY_SECONDS,
    WORKER_CONCURRENCY,
)
from bot.domain.silences import Scope
from bot.failures.businesses import BusinessNames
from bot.failures.diagnosis import ConversationChecker
from bot.failures.diagnosis_store import DiagnosisStore
from bot.failures.silences import SilenceStore
from bot.platform.authz import Authorizer
from bot.platform.database import create_engine
from bot.platform.http_limits import BODY_READ_SECONDS
from bot.platform.metrics import Metrics
from bot.platform.pace import ChannelPaces, SharedPace
from bot.platform.partoo import PartooClient
from bot.platform.retention import DAY, Pruner
from bot.platform.shutdown import ShutdownBudget
from bot.platform.slack import SlackPoster, build_web_client
from bot.reports.poster import ReportPoster
from bot.reports.schedule_store import ReportSchedule
from bot.reports.store import ReportReads
from bot.retries.notifier import Notifier
from bot.retries.plan_store import PlanStore
from bot.retries.policy import RetryPolicy
from bot.retries.retry_log import RetryLog
from bot.retries.service import RetryService
from bot.retries.store import RetryQueue
from bot.retries.worker import RetryWorker
from bot.running import Bot
from bot.slack import listeners
from bot.slack.clicks import AlertClicks
from bot.slack.home import AppHome
from bot.slack.replies import AfterAck
from bot.slack.silence_listeners import Silencing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """Internal knobs with production defaults; tests shorten them."""

    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    lease_seconds: float = LEASE_SECONDS
    poll_interval: float = POLL_INTERVAL
    worker_concurrency: int = WORKER_CONCURRENCY
    log_channel_interval: float = LOG_CHANNEL_INTERVAL
    digest_window: float = DIGEST_WINDOW
    body_read_seconds: float = BODY_READ_SECONDS
    partoo_timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    check_timeout: httpx.Timeout = field(default_factory=lambda: CHECK_TIMEOUT)
    # None: NOT_CONFIRMED_MINUTES from the settings; tests wait seconds instead.
    not_confirmed_seconds: float | None = None
    # How long a `/partoo-retry failed …` plan's buttons work; tests shorten it to see one expire.
    plan_ttl_seconds: float = BULK_PLAN_TTL_SECONDS
    # Retention and webhook health. retention_seconds overrides RETENTION_DAYS (the soak benchmark uses seconds).
    retention_seconds: float | None = None
    retention_interval: float = RETENTION_INTERVAL
    retention_batch: int = RETENTION_BATCH
    retention_pause: float = RETENTION_PAUSE
    health_interval: float = HEALTH_FLUSH_SECONDS
    report_poll_interval: float = REPORT_POLL_SECONDS
    # How Slack's failures are waited out: slack_sdk's backoff, then the pause before a post is tried again.
    slack_backoff: float = SLACK_BACKOFF
    slack_pause_seconds: float = SLACK_RETRY_SECONDS


class _DropTokenSkippedWarning(logging.Filter):
    """Bolt falls back to SLACK_BOT_TOKEN from the environment and then warns that our client wins.

    Our client carries that same token (read by config.py); the warning would print at every start.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("bot.slack.bolt")
    if not any(isinstance(existing, _DropTokenSkippedWarning) for existing in logger.filters):
        logger.addFilter(_DropTokenSkippedWarning())
    return logger


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def call_both() -> None:
        first()
        second()

    return call_both


def build_bot(settings: Settings, tuning: Tuning = Tuning(), shutdown: ShutdownBudget | None = None) -> Bot:
    """Construct every component from Settings; nothing starts until `Bot.start`."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    engine = create_engine(settings.database_url)
    not_confirmed_seconds = (
        settings.not_confirmed_minutes * 60.0 if tuning.not_confirmed_seconds is None else tuning.not_confirmed_seconds
    )
    queue = RetryQueue(engine, awaiting_seconds=not_confirmed_seconds)
    retry_log = RetryLog(engine)
    slack = build_web_client(settings.slack_bot_token.value, settings.slack_api_url, backoff=tuning.slack_backoff)
    metrics = Metrics()
    # Every post the bot makes takes a slot of its channel's pace, shared by every replica through the database.
    post_paces = ChannelPaces(engine, POSTS_PER_MINUTE, default_channel=settings.slack_alert_channel, burst=POST_BURST)
    poster = SlackPoster(slack, post_paces, pause_seconds=tuning.slack_pause_seconds, on_error=metrics.slack_api_error)
    partoo = PartooClient(
        base_url=settings.partoo_api_url,
        api_key=settings.partoo_api_key.value,
        timeout=tuning.partoo_timeout,
        check_timeout=tuning.check_timeout,
    )
    partoo_pace = SharedPace(engine, settings.partoo_rate_limit_per_minute)
    diagnosis_store = DiagnosisStore(engine)
    # Learned by the checks, shown by alerts, digests, `status`, App Home and the weekly report.
    names = BusinessNames(engine)
    # One pace for retries and checks alike: Partoo counts every call against the same limit.
    checker = (
        ConversationChecker(
            diagnosis_store,
            partoo,
            partoo_pace,
            cache_seconds=settings.conversation_check_cache_seconds,
            poll_interval=tuning.poll_interval,
            on_checked=metrics.conversation_checked,
            names=names,
        )
        if settings.conversation_check
        else None
    )
    notifier = Notifier(
        queue,
        poster,
        log_channel=settings.slack_log_channel,
        log_interval=tuning.log_channel_interval,
        poll_interval=tuning.poll_interval,
    )
    worker = RetryWorker(
        queue,
        partoo_pace,
        partoo,
        worker_id=worker_id,
        policy=tuning.retry_policy,
        lease_seconds=tuning.lease_seconds,
        concurrency=tuning.worker_concurrency,
        poll_interval=tuning.poll_interval,
        metrics=metrics,
        checker=checker,
    )
    notifier.on_announced = worker.wake
    alerts = AlertStore(engine, preview_chars=PREVIEW_CHARS if settings.store_message_preview else None)
    # Read by the alerter (what to hold back), the listeners (start, list, end) and the weekly report.
    silences = SilenceStore(engine)
    alerter = Alerter(
        alerts,
        poster,
        alert_channel=settings.slack_alert_channel,
        routes=settings.alert_routes,
        poll_interval=tuning.poll_interval,
        digest_window=tuning.digest_window,
        on_posted=metrics.alert_posted,
        checks_enabled=checker is not None,
        not_confirmed_minutes=settings.not_confirmed_minutes,
        names=names,
        silences=silences,
    )
    diagnosis = DiagnosisLoop(
        diagnosis_store,
        checker,
        poster,
        not_confirmed_minutes=settings.not_confirmed_minutes,
        not_confirmed_seconds=tuning.not_confirmed_seconds,
        poll_interval=tuning.poll_interval,
    )
    worker.on_finished = _both(notifier.wake, alerter.wake)
    health = WebhookHealth(engine)
    watcher = WebhookWatcher(
        health,
        poster,
        alert_channel=settings.slack_alert_channel,
        silence_minutes=settings.webhook_silence_alert_minutes,
        poll_interval=tuning.health_interval,
    )
    retention_seconds = tuning.retention_seconds
    pruner = Pruner(
        engine,
        retention_seconds=settings.retention_days * DAY if retention_seconds is None else retention_seconds,
        interval=tuning.retention_interval,
        batch_size=tuning.retention_batch,
        pause=tuning.retention_pause,
        log_channel=settings.slack_log_channel is not None,
    )
    service = RetryService(
        queue,
        retry_log,
        alerts,
        poster,
        on_queued=_both(notifier.wake, alerter.wake),
        diagnosis=diagnosis_store,
        retention_seconds=pruner.retention_seconds,
        names=names,
        plans=PlanStore(
            engine,
            cap=settings.bulk_plan_max,
            ttl_seconds=tuning.plan_ttl_seconds,
            awaiting_seconds=not_confirmed_seconds,
        ),
    )
    bolt = AsyncApp(
        # Named here: without a name, Bolt reads the whole call stack (source files included) to make one.
        name="partoo-retry",
        client=slack,
        logger=_bolt_logger(),
        signing_secret=settings.slack_signing_secret.value or None,
        # Answer Slack when the listener returns. Listeners only parse, authorize and write before ack(),
        # which takes milliseconds; the other mode makes Bolt poll for ack() every 10 ms per request.
        process_before_response=True,
    )

    async def active_silences() -> list[str]:
        """The weekly report's "Silenced" lines (the report itself never reads the alerter's tables)."""
        active = await silences.active()
        businesses = await names.lookup(s.value for s in active if s.scope is Scope.BUSINESS)
        return silence_messages.active_lines(active, businesses)

    reports = ReportReads(engine, names)
    after_ack = AfterAck()
    listeners.register(
        bolt,
        service,
        AlertClicks(service, alerts),
        AppHome(
            retry_log,
            alerts,
            webhook_activity=health.activity,
            retention_seconds=pruner.retention_seconds,
            reports=reports,
            report_schedule=settings.report_schedule,
            names=names,
            silences=active_silences,
        ),
        Authorizer(settings.access, slack),
        settings.access,
        # Slack failures inside listeners are narrowed like the bot's own (and an auth one shows in /readyz).
        on_error=poster.bolt_error_handler(),
        after_ack=after_ack,
        silencing=Silencing(silences, alerts, names, on_changed=alerter.wake),
    )

    # Off when neither REPORT_CHANNEL nor SLACK_LOG_CHANNEL says where it goes.
    report_poster = (
        ReportPoster(
            ReportSchedule(engine),
            reports,
            poster,
            settings.report_channel,
            settings.report_schedule,
            poll_interval=tuning.report_poll_interval,
            silences=active_silences,
        )
        if settings.report_channel
        else None
    )
    return Bot(
        settings=settings,
        engine=engine,
        queue=queue,
        retry_log=retry_log,
        partoo=partoo,
        slack=slack,
        poster=poster,
        worker=worker,
        notifier=notifier,
        alerts=alerts,
        alerter=alerter,
        diagnosis=diagnosis,
        service=service,
        bolt=bolt,
        worker_id=worker_id,
        metrics=metrics,
        health=health,
        watcher=watcher,
        pruner=pruner,
        after_ack=after_ack,
        report_poster=report_poster,
        shutdown=shutdown or ShutdownBudget(settings.shutdown_seconds),
    )

"""Building the bot: every component from Settings, wired into one Starlette app.

Nothing is constructed at import time; tests build the same app with their own knobs
(e.g. a short lease) and point it at fake Slack and Partoo servers through Settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import listeners
from bot.alerts.alerter import Alerter
from bot.alerts.diagnosis import ConversationChecker
from bot.alerts.diagnosis_loop import DiagnosisLoop
from bot.alerts.diagnosis_store import DiagnosisStore
from bot.alerts.health import WebhookHealth, WebhookWatcher
from bot.alerts.intake import partoo_webhook
from bot.alerts.store import AlertStore
from bot.config import Settings
from bot.defaults import (
    ALERT_POSTS_PER_MINUTE,
    CHECK_TIMEOUT,
    DEFAULT_TIMEOUT,
    DIGEST_WINDOW,
    HEALTH_FLUSH_SECONDS,
    LEASE_SECONDS,
    LOG_CHANNEL_INTERVAL,
    POLL_INTERVAL,
    PREVIEW_CHARS,
    RETENTION_BATCH,
    RETENTION_INTERVAL,
    RETENTION_PAUSE,
    TOKEN_CHECK_SECONDS,
    WORKER_CONCURRENCY,
)
from bot.metrics import Metrics, WebhookVerdict
from bot.platform.authz import Authorizer
from bot.platform.database import create_engine, migrate
from bot.platform.http_limits import BODY_READ_SECONDS, BodyLimits
from bot.platform.pace import ChannelPaces, SharedPace
from bot.platform.partoo import PartooClient
from bot.platform.request_id import RequestIdMiddleware
from bot.platform.retention import DAY, Pruner, ensure_incremental_vacuum, history_start
from bot.platform.signatures import WebhookVerifier
from bot.platform.slack import SlackAuthError, SlackPoster, build_web_client, classify
from bot.platform.socket_mode import SocketModeConnection, start_socket_mode
from bot.retries.notifier import Notifier
from bot.retries.policy import RetryPolicy
from bot.retries.service import RetryService
from bot.retries.store import RetryQueue
from bot.retries.worker import RetryWorker

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
    # Retention and webhook health. retention_seconds overrides RETENTION_DAYS (the soak benchmark uses seconds).
    retention_seconds: float | None = None
    retention_interval: float = RETENTION_INTERVAL
    retention_batch: int = RETENTION_BATCH
    retention_pause: float = RETENTION_PAUSE
    health_interval: float = HEALTH_FLUSH_SECONDS


@dataclass
class Bot:
    """Every long-lived component, built once per process."""

    settings: Settings
    engine: AsyncEngine
    queue: RetryQueue
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
    health: WebhookHealth
    watcher: WebhookWatcher
    pruner: Pruner
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

    async def stop(self) -> None:
        """Stop taking work, finish or release what is in flight, then close every connection."""
        if self.socket_mode is not None:
            await self.socket_mode.close()  # no new Slack work comes in from here on
        await self.worker.stop()
        await self.notifier.stop()
        await self.alerter.stop()
        await self.diagnosis.stop()
        await self.watcher.stop()
        await self.pruner.stop()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)
        for task in self.tasks:
            task.cancel()
        await self.partoo.aclose()
        try:
            await self.health.flush()  # the last seconds' delivery counts
        except Exception as error:
            log.warning("webhook counts not written at stop: %s", type(error).__name__)
        await self.engine.dispose()
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


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds") if timestamp is not None else None


def _version() -> str:
    from bot import __version__

    return __version__


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


def _counted(
    on_verdict: Callable[[str, WebhookVerdict], None], health: WebhookHealth
) -> Callable[[str, WebhookVerdict], None]:
    """Every delivery with a valid signature, whatever became of it, shows that Partoo's webhooks arrive."""

    def count(event_type: str, verdict: WebhookVerdict) -> None:
        on_verdict(event_type, verdict)
        if verdict not in ("bad_signature", "too_large"):
            health.note_delivery()

    return count


def build_bot(settings: Settings, tuning: Tuning = Tuning()) -> Bot:
    """Construct every component from Settings; nothing starts until `Bot.start`."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    engine = create_engine(settings.database_url)
    queue = RetryQueue(engine)
    slack = build_web_client(settings.slack_bot_token.value, settings.slack_api_url)
    metrics = Metrics()
    poster = SlackPoster(slack, on_error=metrics.slack_api_error)
    partoo = PartooClient(
        base_url=settings.partoo_api_url,
        api_key=settings.partoo_api_key.value,
        timeout=tuning.partoo_timeout,
        check_timeout=tuning.check_timeout,
    )
    partoo_pace = SharedPace(engine, settings.partoo_rate_limit_per_minute)
    diagnosis_store = DiagnosisStore(engine)
    # One pace for retries and checks alike: Partoo counts every call against the same limit.
    checker = (
        ConversationChecker(
            diagnosis_store,
            partoo,
            partoo_pace,
            cache_seconds=settings.conversation_check_cache_seconds,
            poll_interval=tuning.poll_interval,
            on_checked=metrics.conversation_checked,
        )
        if settings.conversation_check
        else None
    )
    notifier = Notifier(
        queue,
        poster,
        owner=worker_id,
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
    alerter = Alerter(
        alerts,
        poster,
        ChannelPaces(engine, ALERT_POSTS_PER_MINUTE, default_channel=settings.slack_alert_channel),
        alert_channel=settings.slack_alert_channel,
        routes=settings.alert_routes,
        poll_interval=tuning.poll_interval,
        digest_window=tuning.digest_window,
        on_posted=metrics.alert_posted,
        checks_enabled=checker is not None,
        not_confirmed_minutes=settings.not_confirmed_minutes,
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
    )
    service = RetryService(
        queue,
        alerts,
        poster,
        on_queued=_both(notifier.wake, alerter.wake),
        webhook_activity=health.activity,
        retention_seconds=pruner.retention_seconds,
        diagnosis=diagnosis_store,
    )
    bolt = AsyncApp(
        client=slack,
        logger=_bolt_logger(),
        signing_secret=settings.slack_signing_secret.value or None,
        # Answer Slack when the listener returns. Listeners only parse, authorize and write before ack(),
        # which takes milliseconds; the other mode makes Bolt poll for ack() every 10 ms per request.
        process_before_response=True,
    )
    listeners.register(bolt, service, Authorizer(settings.access, slack), settings.access)
    # Slack failures inside Bolt's listeners are narrowed like the bot's own (and an auth one shows in /readyz).
    bolt.error(poster.bolt_error_handler())
    return Bot(
        settings=settings,
        engine=engine,
        queue=queue,
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
    )


def create_app(settings: Settings, tuning: Tuning = Tuning()) -> Starlette:
    """The ASGI app: Slack's events, Partoo's webhooks and health checks, around one Bot."""
    bot = build_bot(settings, tuning)
    slack_handler = AsyncSlackRequestHandler(bot.bolt)

    async def slack_events(request: Request) -> Response:
        return await slack_handler.handle(request)

    webhook = partoo_webhook(
        WebhookVerifier(settings.partoo_webhook_public_key),
        bot.alerts,
        on_stored=bot.alerter.wake,
        on_verdict=_counted(bot.metrics.webhook_event, bot.health),
    )

    async def metrics(_request: Request) -> Response:
        try:
            bot.metrics.set_queue_depth(await bot.queue.queue_depth())
        except Exception as error:
            log.warning("queue depth unavailable for /metrics: %s", type(error).__name__)
        body, content_type = bot.metrics.render()
        return Response(body, media_type=content_type)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        problems = await bot.readiness()
        details = await bot.details()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems, **details}, status_code=503)
        return JSONResponse({"status": "ready", **details})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await bot.start()
        try:
            yield
        finally:
            await bot.stop()

    app = Starlette(
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(BodyLimits, read_seconds=tuning.body_read_seconds),
        ],
        routes=[
            # In Socket Mode Slack's traffic arrives over the WebSocket; there is no signing secret to check
            # HTTP requests with, so the route is not served at all.
            *([] if settings.socket_mode else [Route("/slack/events", slack_events, methods=["POST"])]),
            Route("/partoo/webhook", webhook, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.bot = bot
    return app

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

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
from bot.alerts.click import AlertClicks
from bot.alerts.intake import partoo_webhook
from bot.alerts.store import AlertStore
from bot.config import Settings
from bot.defaults import (
    ALERT_POSTS_PER_MINUTE,
    DEFAULT_TIMEOUT,
    DIGEST_WINDOW,
    LEASE_SECONDS,
    LOG_CHANNEL_INTERVAL,
    POLL_INTERVAL,
    PREVIEW_CHARS,
    SHUTDOWN_RESERVE_SECONDS,
    TOKEN_CHECK_SECONDS,
    WORKER_CONCURRENCY,
)
from bot.metrics import Metrics
from bot.platform.authz import Authorizer
from bot.platform.database import create_engine, migrate
from bot.platform.http_limits import BODY_READ_SECONDS, BodyLimits
from bot.platform.pace import SLACK_ALERTS_PACE, SharedPace
from bot.platform.partoo import PartooClient
from bot.platform.request_id import RequestIdMiddleware
from bot.platform.shutdown import ShutdownBudget
from bot.platform.signatures import WebhookVerifier
from bot.platform.slack import SlackAuthError, SlackPoster, build_web_client, classify
from bot.platform.socket_mode import SocketModeConnection, start_socket_mode
from bot.retries.history import RetryLog
from bot.retries.home import AppHome
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
    service: RetryService
    bolt: AsyncApp
    worker_id: str
    metrics: Metrics
    shutdown: ShutdownBudget
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    socket_mode: SocketModeConnection | None = None
    _token_checked_at: float = -TOKEN_CHECK_SECONDS
    _token_problem: str | None = None

    async def start(self) -> None:
        await migrate(self.engine)
        self.tasks = [
            asyncio.create_task(self.worker.run(), name="retry-worker"),
            asyncio.create_task(self.notifier.run(), name="notifier"),
            asyncio.create_task(self.alerter.run(), name="alerter"),
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
        """Stop taking work, finish or release what is in flight, close every connection: within the budget."""
        self.shutdown.start()  # counted from SIGTERM when __main__ saw it, from now otherwise
        if self.socket_mode is not None:
            # No new Slack work comes in from here on.
            await _within(self.socket_mode.close(), self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS))
        await self.notifier.stop()
        await self.alerter.stop()
        # Partoo calls in flight get what is left but the reserve; the worker closes those still unanswered.
        await self.worker.stop(grace_seconds=self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS))
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.shutdown.remaining(keep=SHUTDOWN_RESERVE_SECONDS / 2))
        for task in self.tasks:
            task.cancel()
        await _within(self.partoo.aclose(), self.shutdown.remaining())
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
        if self.socket_mode is not None and not await self.socket_mode.is_connected():
            problems.append("Socket Mode not connected to Slack")
        if token_problem := await self._slack_token_problem():
            problems.append(token_problem)
        return problems

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


def build_bot(settings: Settings, tuning: Tuning = Tuning(), shutdown: ShutdownBudget | None = None) -> Bot:
    """Construct every component from Settings; nothing starts until `Bot.start`."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    engine = create_engine(settings.database_url)
    queue = RetryQueue(engine)
    retry_log = RetryLog(engine)
    slack = build_web_client(settings.slack_bot_token.value, settings.slack_api_url)
    metrics = Metrics()
    poster = SlackPoster(slack, on_error=metrics.slack_api_error)
    partoo = PartooClient(
        base_url=settings.partoo_api_url, api_key=settings.partoo_api_key.value, timeout=tuning.partoo_timeout
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
        SharedPace(engine, settings.partoo_rate_limit_per_minute),
        partoo,
        worker_id=worker_id,
        policy=tuning.retry_policy,
        lease_seconds=tuning.lease_seconds,
        concurrency=tuning.worker_concurrency,
        poll_interval=tuning.poll_interval,
        metrics=metrics,
    )
    notifier.on_announced = worker.wake
    alerts = AlertStore(engine, preview_chars=PREVIEW_CHARS if settings.store_message_preview else None)
    alerter = Alerter(
        alerts,
        poster,
        SharedPace(engine, ALERT_POSTS_PER_MINUTE, name=SLACK_ALERTS_PACE),
        alert_channel=settings.slack_alert_channel,
        poll_interval=tuning.poll_interval,
        digest_window=tuning.digest_window,
        on_posted=metrics.alert_posted,
    )
    worker.on_finished = _both(notifier.wake, alerter.wake)
    service = RetryService(queue, retry_log, alerts, poster, on_queued=_both(notifier.wake, alerter.wake))
    bolt = AsyncApp(
        client=slack,
        logger=_bolt_logger(),
        signing_secret=settings.slack_signing_secret.value or None,
        # Answer Slack when the listener returns. Listeners only parse, authorize and write before ack(),
        # which takes milliseconds; the other mode makes Bolt poll for ack() every 10 ms per request.
        process_before_response=True,
    )
    listeners.register(
        bolt,
        service,
        AlertClicks(service, alerts),
        AppHome(retry_log, alerts),
        Authorizer(settings.access, slack),
        settings.access,
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
        service=service,
        bolt=bolt,
        worker_id=worker_id,
        metrics=metrics,
        shutdown=shutdown or ShutdownBudget(settings.shutdown_seconds),
    )


def create_app(settings: Settings, tuning: Tuning = Tuning(), shutdown: ShutdownBudget | None = None) -> Starlette:
    """The ASGI app: Slack's events, Partoo's webhooks and health checks, around one Bot.

    `shutdown` is the budget the server started counting at SIGTERM (bot.__main__); the Bot stops within it.
    """
    bot = build_bot(settings, tuning, shutdown)
    slack_handler = AsyncSlackRequestHandler(bot.bolt)

    async def slack_events(request: Request) -> Response:
        return await slack_handler.handle(request)

    webhook = partoo_webhook(
        WebhookVerifier(settings.partoo_webhook_public_key),
        bot.alerts,
        on_stored=bot.alerter.wake,
        on_verdict=bot.metrics.webhook_event,
    )

    async def metrics(_request: Request) -> Response:
        try:
            bot.metrics.set_queue_depth(await bot.retry_log.queue_depth())
        except Exception as error:
            log.warning("queue depth unavailable for /metrics: %s", type(error).__name__)
        body, content_type = bot.metrics.render()
        return Response(body, media_type=content_type)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        problems = await bot.readiness()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

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

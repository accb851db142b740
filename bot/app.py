"""The ASGI app: Slack's events, Partoo's webhooks and the health checks, around one Bot (bot.assembly builds it)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.alerts.health import WebhookHealth
from bot.alerts.intake import partoo_webhook
from bot.assembly import Tuning, build_bot
from bot.config import Settings
from bot.platform.http_limits import BodyLimits
from bot.platform.metrics import WebhookVerdict
from bot.platform.request_id import RequestIdMiddleware
from bot.platform.shutdown import ShutdownBudget
from bot.platform.signatures import WebhookVerifier

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/partoo/webhook"


def _counted(
    on_verdict: Callable[[str, WebhookVerdict], None], health: WebhookHealth
) -> Callable[[str, WebhookVerdict], None]:
    """Every delivery with a valid signature, whatever became of it, shows that Partoo's webhooks arrive."""

    def count(event_type: str, verdict: WebhookVerdict) -> None:
        on_verdict(event_type, verdict)
        if verdict not in ("bad_signature", "too_large"):
            health.note_delivery()

    return count


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
        on_verdict=_counted(bot.metrics.webhook_event, bot.health),
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
        details = await bot.details()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems, **details}, status_code=503)
        return JSONResponse({"status": "ready", **details})

    def count_too_large(path: str) -> None:
        # Refused before the route reads it: its type is unknown, like that of a delivery that fails to parse.
        if path == WEBHOOK_PATH:
            bot.metrics.webhook_event("unknown", "too_large")

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
            Middleware(BodyLimits, read_seconds=tuning.body_read_seconds, on_too_large=count_too_large),
        ],
        routes=[
            # In Socket Mode Slack's traffic arrives over the WebSocket; there is no signing secret to check
            # HTTP requests with, so the route is not served at all.
            *([] if settings.socket_mode else [Route("/slack/events", slack_events, methods=["POST"])]),
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.bot = bot
    return app

"""`POST /partoo/webhook`: verify, bound, parse and store Partoo's deliveries, then answer fast.

Nothing reaches Slack from here: the event is stored durably first and the alerter posts from the
store, so a slow or failing Slack never delays Partoo's 200 and never loses an event.

Answers follow Partoo's retry rules: 5xx makes Partoo deliver again (used when the event could not be
stored), 4xx does not (a forged, oversized or malformed delivery will not get better by repeating it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bot.alerts.store import AlertStore
from bot.domain.message import FAILED, SUCCESS
from bot.failures.webhook_events import MESSAGE_EVENTS, PayloadError, parse_event
from bot.platform.metrics import WebhookVerdict
from bot.platform.signatures import SIGNATURE_HEADER, WebhookVerifier

log = logging.getLogger(__name__)

TRYOUT_HEADER = "X-Partoo-Webhook-Tryout"
STATUSES_KEPT = frozenset({FAILED, SUCCESS})


def _answer(status: str, code: int = 200) -> Response:
    return JSONResponse({"status": status}, status_code=code)


def partoo_webhook(
    verifier: WebhookVerifier,
    store: AlertStore,
    *,
    on_stored: Callable[[], None] = lambda: None,
    on_verdict: Callable[[str, WebhookVerdict], None] = lambda event_type, verdict: None,
) -> Callable[[Request], object]:
    """The Starlette endpoint for Partoo's webhooks."""

    async def endpoint(request: Request) -> Response:
        # Size and read time are bounded for every route by bot.platform.http_limits.BodyLimits.
        try:
            body = await request.body()
        except ClientDisconnect:
            return _answer("client disconnected", 400)

        if not verifier.verify(body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("refused a Partoo webhook with a missing or invalid signature")
            on_verdict("unknown", "bad_signature")
            return _answer("invalid signature", 401)
        if TRYOUT_HEADER.lower() in request.headers:
            log.info("Partoo test webhook received (signature valid)")
            on_verdict("tryout", "tryout")
            return _answer("test delivery received")
        try:
            event = parse_event(body)
        except PayloadError as error:
            log.warning("refused a Partoo webhook: %s", error)
            on_verdict("unknown", "bad_payload")
            return JSONResponse({"status": "bad payload", "error": str(error)}, status_code=400)

        message = event.message
        if event.type not in MESSAGE_EVENTS or message is None or message.status not in STATUSES_KEPT:
            on_verdict(event.type[:32], "ignored")
            return _answer("ignored")
        try:
            stored = await store.store_event(event)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not store a Partoo webhook (Partoo will redeliver): %s", type(error).__name__)
            return _answer("temporarily unavailable", 503)
        on_verdict(event.type, "stored" if stored else "duplicate")
        if stored:
            on_stored()
        return _answer("stored" if stored else "duplicate")

    return endpoint

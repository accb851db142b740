"""`partoo-retry-bot check`'s Partoo checks: the API answers, and its webhooks are sent to this bot.

Read-only like every check: a HEAD without the API key, and a read of the webhook configurations.
"""

from __future__ import annotations

import httpx

from bot.check_results import Result, Status, first_line, ok, problem
from bot.config import Settings
from bot.platform.partoo import PartooClient, PartooReadError, WebhookConfig

PARTOO_TIMEOUT = httpx.Timeout(10.0)
# Gateway errors mean Partoo is down behind its load balancer; other statuses to a HEAD prove it answers.
_PARTOO_DOWN = frozenset({502, 503, 504})


# -- Partoo ----------------------------------------------------------------------------------------------


async def partoo(settings: Settings) -> Result:
    name = "Partoo API"
    url = settings.partoo_api_url
    try:
        # HEAD, without the API key: proves the network path and TLS without asking Partoo to do anything.
        async with httpx.AsyncClient(timeout=PARTOO_TIMEOUT) as http:
            response = await http.head(url)
    except httpx.HTTPError as error:
        return problem(name, f"cannot reach {url}: {first_line(error)}", "check PARTOO_API_URL / PARTOO_ENV")
    if response.status_code in _PARTOO_DOWN:
        return problem(name, f"{url} answers HTTP {response.status_code}: Partoo is unavailable right now")
    return ok(name, f"{url} answers (HTTP {response.status_code}); check never asks for a retry")


# -- Partoo's webhook configuration (issue #12) ----------------------------------------------------------

WEBHOOK_ROUTE = "/partoo/webhook"
WEBHOOK_EVENT = "message_updated"


def _without_query(url: str) -> str:
    """A webhook URL without its query, which may carry a shared secret (`?key=…`), and trailing slash."""
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/")


def _shown(url: str) -> str:
    return _without_query(url) + ("?…" if "?" in url else "")


async def partoo_webhook(settings: Settings) -> Result:
    """Whether Partoo sends `message_updated` somewhere, and whether that is this bot (PUBLIC_URL)."""
    name = "Partoo webhook"
    expected = f"{settings.public_url}{WEBHOOK_ROUTE}" if settings.public_url else None
    where = expected or f"https://<the bot's public host>{WEBHOOK_ROUTE}"
    setup = f"in Partoo (Settings > Integrations > Webhooks) point {WEBHOOK_EVENT} at {where}"
    try:
        async with PartooClient(
            base_url=settings.partoo_api_url, api_key=settings.partoo_api_key.value, timeout=PARTOO_TIMEOUT
        ) as client:
            configs = await client.list_webhooks()
    except PartooReadError as error:
        if error.status == 403:
            return Result(
                name,
                Status.SKIPPED,
                f"the API key's user may not read webhook configurations (HTTP 403): {error.detail}",
                f"check by hand: {setup}",
            )
        if error.status == 401:
            return problem(name, f"Partoo refuses the API key (HTTP 401): {error.detail}", "check PARTOO_API_KEY")
        if error.status is None:  # the Partoo API check above already names this problem
            return Result(name, Status.SKIPPED, f"not checked: {error.detail}")
        return problem(name, f"cannot read Partoo's webhook configurations (HTTP {error.status}): {error.detail}")
    sending: list[WebhookConfig] = [config for config in configs if config.event_type == WEBHOOK_EVENT]
    if not sending:
        return problem(name, f"no {WEBHOOK_EVENT} webhook is configured in Partoo: failure alerts cannot arrive", setup)
    urls = ", ".join(_shown(config.url) for config in sending)
    if expected is None:
        return ok(name, f"{WEBHOOK_EVENT} is sent to {urls}", "set PUBLIC_URL to have this compared with the bot's URL")
    if any(_without_query(config.url) == expected for config in sending):
        return ok(name, f"{WEBHOOK_EVENT} is sent to {urls}, this bot (PUBLIC_URL)")
    return problem(name, f"{WEBHOOK_EVENT} is sent to {urls}, not to this bot's {expected} (PUBLIC_URL)", setup)

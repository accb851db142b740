"""Runs the real bot (the ASGI app with its lifespan) against fake Slack and Partoo servers."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.assembly import Tuning
from bot.config import load_settings
from bot.defaults import POST_BURST, POSTS_PER_MINUTE
from bot.domain.outcomes import OutcomeKind
from bot.platform.pace import ChannelPaces
from bot.platform.slack import SlackPoster, build_web_client
from bot.retries.policy import RetryPolicy
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.block_kit import message_refusal
from tests.signing import (
    PartooSigner,
    block_actions_body,
    slack_signature_headers,
    slash_command_body,
)
from tests.waiting import eventually, eventually_async

# Distinctive values, so that a test can search every log line and message for them.
BOT_TOKEN = "xoxb-test-bot-token-7f3a9c"
SIGNING_SECRET = "test-signing-secret-51e0b2"
PARTOO_API_KEY = "partoo-test-key-c4d8e1"
SECRETS = (BOT_TOKEN, SIGNING_SECRET, PARTOO_API_KEY)

ALERT_CHANNEL = "CALERTS"
CHANNEL = "C123"
USER = "U123"


def paced_poster(slack: FakeSlack, engine: AsyncEngine, *, burst: int = POST_BURST) -> SlackPoster:
    """A poster pointed at the fake, pacing its posts per channel as the bot does (a larger burst for tests of
    something else that post several root messages at once: a root message takes only a slot free now)."""
    paces = ChannelPaces(engine, POSTS_PER_MINUTE, default_channel=ALERT_CHANNEL, burst=burst)
    return SlackPoster(build_web_client(BOT_TOKEN, slack.api_url), paces)


FAST = Tuning(
    retry_policy=RetryPolicy(max_attempts=4, max_total_seconds=30, base_delay=0.05, max_delay=0.2),
    lease_seconds=3.0,
    poll_interval=0.25,
    log_channel_interval=0.3,
    # Slack's failures waited out in a tenth of the time: tests make Slack fail on purpose, often.
    slack_backoff=0.05,
    slack_pause_seconds=0.5,
)


def bot_environment(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner | None = None, **extra: str
) -> dict[str, str]:
    """The environment a user would set, pointed at the fakes."""
    environment = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_ALERT_CHANNEL": ALERT_CHANNEL,
        "PARTOO_API_KEY": PARTOO_API_KEY,
        "PARTOO_API_URL": partoo.api_url,
        "DATABASE_URL": database_url,
        "PARTOO_RATE_LIMIT_PER_MINUTE": "6000",
    }
    if signer is not None:
        environment["PARTOO_WEBHOOK_PUBLIC_KEY"] = signer.public_pem
    environment.update(extra)
    return environment


@dataclass
class RunningBot:
    """A started bot and an HTTP client that reaches it through ASGI."""

    app: Any
    http: httpx.AsyncClient
    slack: FakeSlack

    @property
    def bot(self) -> Any:
        return self.app.state.bot

    async def command(
        self,
        text: str,
        *,
        user_id: str = USER,
        channel_id: str = CHANNEL,
        response_url: str | None = None,
        secret: str = SIGNING_SECRET,
    ) -> httpx.Response:
        """Send `/partoo-retry <text>` signed the way Slack signs it."""
        body = slash_command_body(
            text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=response_url or self.slack.response_url("command"),
        )
        response = await self.http.post("/slack/events", content=body, headers=slack_signature_headers(secret, body))
        return acceptable_answer(response)

    async def click(self, **fields: Any) -> httpx.Response:
        body = block_actions_body(**fields)
        response = await self.http.post(
            "/slack/events", content=body, headers=slack_signature_headers(SIGNING_SECRET, body)
        )
        return acceptable_answer(response)

    async def webhook(self, event: Mapping[str, Any] | bytes, signer: PartooSigner, **headers: str) -> httpx.Response:
        """Deliver a Partoo webhook signed with `signer` (bytes are sent as they are)."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return await self.http.post("/partoo/webhook", content=body, headers={**signer.headers(body), **headers})

    async def alert_recorded(self, message_id: int, ts: str) -> None:
        """Wait until the bot has stored the ts of the alert it posted (Slack shows it a moment before)."""

        async def recorded() -> bool:
            alert = await self.bot.alerts.alert_for(message_id)
            return alert is not None and alert.ts == ts

        await eventually_async(recorded, timeout=20)

    async def event(self, payload: Mapping[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = slack_signature_headers(SIGNING_SECRET, body, content_type="application/json")
        return await self.http.post("/slack/events", content=body, headers=headers)


@contextlib.asynccontextmanager
async def running_bot(
    slack: FakeSlack, environment: Mapping[str, str], tuning: Tuning = FAST
) -> AsyncIterator[RunningBot]:
    """Build the app from an environment, run its lifespan, and yield a client bound to it."""
    app = create_app(load_settings(environment), tuning)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
            yield RunningBot(app=app, http=http, slack=slack)


async def finished_outcomes(bot: RunningBot, message_ids: Iterable[int]) -> dict[int, OutcomeKind | None]:
    """Each message's latest retry outcome, once every one of those retries has finished."""
    wanted = list(message_ids)

    async def read() -> dict[int, OutcomeKind | None]:
        outcomes = {}
        for message_id in wanted:
            history = await bot.bot.retry_log.history(message_id)
            if not history or history[-1][0].finished_at is None:
                return {}
            outcomes[message_id] = history[-1][0].outcome
        return outcomes

    return await eventually_async(read, timeout=20)


async def retryable_alert(slack: FakeSlack) -> Any:
    """The first alert once it shows a button: a new alert waits for the bot's check of its conversation."""

    def shown() -> Any:
        roots = slack.root_messages(ALERT_CHANNEL)
        return roots[0] if roots and buttons(roots[0]) else None

    return await eventually(shown, timeout=20)


def acceptable_answer(response: httpx.Response) -> httpx.Response:
    """The bot's HTTP answer to Slack, after checking that Slack would show the message it carries."""
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        refusal = message_refusal(body) if isinstance(body, dict) else None
        # Slack shows the user an error instead of an answer it cannot render.
        assert refusal is None, f"Slack would refuse this answer ({refusal}): {body}"
    return response


def ephemeral_text(response: httpx.Response) -> str:
    """The text of an ephemeral answer given in the HTTP response to a command."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("response_type") == "ephemeral", body
    blocks_text = " ".join(
        block.get("text", {}).get("text", "") for block in body.get("blocks", []) if isinstance(block, dict)
    )
    return f"{body.get('text', '')} {blocks_text}"


def message_text(message: Any) -> str:
    """Fallback text plus every text in the blocks of a message recorded by FakeSlack."""
    texts = [message.text or ""]
    for block in message.blocks or []:
        texts.append(json.dumps(block))
    return " ".join(texts)


def buttons(message: Any) -> list[dict[str, Any]]:
    """Every button in a recorded message's blocks."""
    found: list[dict[str, Any]] = []
    for block in message.blocks or []:
        if block.get("type") == "actions":
            found.extend(element for element in block.get("elements", []) if element.get("type") == "button")
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            found.append(accessory)
    return found


# What Slack reads as an entity in mrkdwn: mentions, dates and specials (`<@U1>`, `<!date^…|…>`), links, escapes.
_ENTITY = re.compile(r"<(?:[@#!]|https?://|mailto:)[^<>]*>|&(?:amp|lt|gt);")


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """The mrkdwn of every section (text and fields) and context element, in order."""
    texts: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields") or [])
        texts.extend(element["text"] for element in block.get("elements") or [] if "text" in element)
    return [text for text in texts if isinstance(text, str)]


def assert_whole_entities(text: str) -> None:
    """Every `<` and `&` in mrkdwn begins a whole entity: nothing was cut in half, nothing reads as a link."""
    rest = _ENTITY.sub("", text)
    assert "<" not in rest, f"a `<` that is no entity (cut, or unescaped) in: {text!r}"
    assert "&" not in rest, f"an `&` that is no entity (cut, or unescaped) in: {text!r}"

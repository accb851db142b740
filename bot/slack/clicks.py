"""The Retry, Retry anyway, "Retry all" and command-confirmation buttons, each click one step: parse, hand to
the retry service (which admits and queues in one transaction), acknowledge, answer.

Authorization ran before (bot.slack.authorization). A click is honoured only on an alert (or digest) the bot
posted, in the channel and message it posted it in; whether the message may be retried is admission's
answer (bot.domain.admission) against the stored state, never the button as the person saw it. What the
click changes shows up where the user clicked: queueing the retry bumps the alert's state, and the alerter
re-renders the alert from that state; Partoo's answer follows in the alert's thread (the notifier).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from bot.domain.commands import MAX_IDS, MAX_MESSAGE_ID, ascii_number
from bot.domain.retry_requests import EnqueueResult, NewBatch
from bot.failures.store import FailureStore
from bot.failures.verdict_messages import RETRY_ANYWAY_ACTION_ID
from bot.platform import correlation
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.retries import messages, refusal_messages
from bot.retries.refusal_messages import CONFIRM_ANYWAY_ACTION_ID
from bot.retries.service import RetryService
from bot.slack.authorization import Middleware, asker
from bot.slack.replies import AfterAck, answer_later

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Click:
    """Who clicked which button value, on which message."""

    user_id: str
    channel_id: str
    message_ts: str
    targets: tuple[int, ...]  # the Partoo message id(s) (Retry, confirmations) or the digest id (Retry all)
    correlation_id: str
    response_url: str | None = None


@dataclass(frozen=True)
class ClickRefused:
    """A click the bot will not act on, and the sentence that says why."""

    reason: str


class AlertClicks:
    """What a click on an alert's or a digest's button does."""

    def __init__(self, service: RetryService, alerts: FailureStore) -> None:
        self.service = service
        self.alerts = alerts

    async def retry_anyway(self, click: Click) -> EnqueueResult | ClickRefused:
        """Retry anyway (confirmed in Slack): may pass a verdict that says the retry cannot succeed."""
        return await self.retry(click, retry_anyway=True)

    async def retry(self, click: Click, *, retry_anyway: bool = False) -> EnqueueResult | ClickRefused:
        """Retry: acts only on the alert the bot posted for that message, in its channel and message."""
        alert = await self.alerts.alert_for(click.targets[0]) if len(click.targets) == 1 else None
        if alert is None or alert.channel_id != click.channel_id or alert.ts != click.message_ts:
            return ClickRefused("This button does not belong to an alert the bot posted; nothing was retried.")
        ask = _button_batch(click, alert_message_id=alert.message_id, retry_anyway=retry_anyway)
        return await self.service.request(ask, [alert.message_id])

    async def retry_all(self, click: Click) -> EnqueueResult | ClickRefused:
        """Retry all: the digest is marked and its admitted messages queued in one transaction, once."""
        digest = await self.alerts.digest(click.targets[0]) if len(click.targets) == 1 else None
        if digest is None or digest.channel_id != click.channel_id or digest.ts != click.message_ts:
            return ClickRefused("This button does not belong to a digest the bot posted; nothing was retried.")
        return await self.service.enqueue(_button_batch(click, digest_id=digest.id), [])

    async def confirm_anyway(self, click: Click) -> EnqueueResult | ClickRefused:
        """The confirmation of `/partoo-retry <ids> anyway`: queued as the command would have been."""
        ask = NewBatch(
            source="command",
            requested_by=click.user_id,
            channel_id=click.channel_id,
            correlation_id=click.correlation_id,
            response_url=click.response_url,
            retry_anyway=True,
        )
        return await self.service.request(ask, click.targets)


def _button_batch(click: Click, **answers_in: Any) -> NewBatch:
    """A click's batch: its answers go to the message clicked (an alert, or a digest), named in `answers_in`."""
    return NewBatch(
        source="button",
        requested_by=click.user_id,
        channel_id=click.channel_id,
        correlation_id=click.correlation_id,
        root_channel=click.channel_id,
        root_ts=click.message_ts,
        **answers_in,
    )


Step = Callable[[Click], Awaitable[EnqueueResult | ClickRefused]]


def register(app: AsyncApp, clicks: AlertClicks, authorize: Middleware, after_ack: AfterAck) -> None:
    """Attach the buttons' listeners, behind `authorize`.

    A click is acknowledged only once its request is durable: admission and the enqueue are one short
    transaction, well within Slack's 3 seconds, so a process killed right after the acknowledgement (even
    by SIGKILL) leaves the request queued for whichever process starts next. Only the answer to a refusal
    (an ephemeral through response_url) is sent after the acknowledgement; if it is lost, nothing was done.
    """
    for action_id, step in (
        (RETRY_ACTION_ID, clicks.retry),
        (RETRY_ANYWAY_ACTION_ID, clicks.retry_anyway),
        (RETRY_ALL_ACTION_ID, clicks.retry_all),
        (CONFIRM_ANYWAY_ACTION_ID, clicks.confirm_anyway),
    ):
        app.action(action_id, middleware=[authorize])(_listener(step, after_ack))


def _listener(step: Step, after_ack: AfterAck) -> Callable[..., Awaitable[None]]:
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        answer = await _act(step, body, action)
        await ack()
        if answer is None:
            return  # queued: the alert (or the command's thread) shows it
        answer_later(after_ack, respond, answer, replace_original=False)

    return on_click


async def _act(step: Step, body: dict[str, Any], action: dict[str, Any]) -> SlackMessage | None:
    """What to tell the clicker (None: nothing, the click was queued)."""
    click = _parse(body, action)
    if click is None:
        return messages.click_refused("This button is not one the bot posted.")
    try:
        result = await step(click)
    except (SQLAlchemyError, OSError) as error:
        log.error("could not queue the retry clicked by %s: %s", click.user_id, type(error).__name__)
        return messages.queue_unavailable()
    if isinstance(result, ClickRefused):
        return messages.click_refused(result.reason)
    if result.digest_retried_by is not None:
        return messages.click_refused(
            f"{mrkdwn.user(result.digest_retried_by)} already asked to retry all of these messages."
        )
    if result.refused and not result.queued:
        return refusal_messages.refused(result.refused)
    return None


def _parse(body: dict[str, Any], action: dict[str, Any]) -> Click | None:
    """The click, or None when the button's value is not one the bot could have posted."""
    tokens = str(action.get("value", "")).split()
    if not 1 <= len(tokens) <= MAX_IDS:
        return None
    # A value the bot never posted (forged, or cut): digits only, each a possible message id, or no click at all.
    message_ids = [ascii_number(token, MAX_MESSAGE_ID) for token in tokens]
    if not all(message_ids):
        return None
    user_id, channel_id = asker(body)
    message_ts = str((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts", ""))
    return Click(
        user_id,
        channel_id,
        message_ts,
        tuple(dict.fromkeys(message_id for message_id in message_ids if message_id)),
        correlation.current() or correlation.new_id(),
        body.get("response_url"),
    )

"""The Retry and "Retry all" buttons, each click one step: parse, check, hand to the retry service, answer.

Authorization ran before (bot.slack.authorization). A click is honoured only on an alert (or digest) the bot
posted, in the channel and message it posted it in, and only if nobody retried since it was rendered.
What the click changes shows up where the user clicked: queueing the retry bumps the alert's state, and
the alerter re-renders the alert from that state ("Retried by @bob", bot.alerts.messages.alert_message);
Partoo's answer follows in the alert's thread (the notifier).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from bot.alerts.store import AlertStore
from bot.domain.commands import MAX_MESSAGE_ID, ascii_number
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import EnqueueResult, NewBatch
from bot.failures.verdict_messages import RETRY_ANYWAY_ACTION_ID
from bot.platform import correlation
from bot.rendering import mrkdwn
from bot.retries import messages
from bot.retries.service import RetryService
from bot.slack.authorization import Middleware, asker
from bot.slack.replies import acknowledge, ephemeral

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Click:
    """Who clicked which button value, on which message."""

    user_id: str
    channel_id: str
    message_ts: str
    target: int  # the Partoo message id (Retry) or the digest id (Retry all)
    correlation_id: str


@dataclass(frozen=True)
class ClickRefused:
    """A click the bot will not act on, and the sentence that says why."""

    reason: str


class AlertClicks:
    """What a click on an alert's or a digest's button does."""

    def __init__(self, service: RetryService, alerts: AlertStore) -> None:
        self.service = service
        self.alerts = alerts

    async def retry_anyway(self, click: Click) -> EnqueueResult | ClickRefused:
        """Retry anyway (confirmed in Slack): a Retry sent whatever the conversation check says."""
        return await self.retry(click, retry_anyway=True)

    async def retry(self, click: Click, *, retry_anyway: bool = False) -> EnqueueResult | ClickRefused:
        """Retry: acts only on the alert the bot posted for that message, as the user saw it."""
        message_id = click.target
        alert = await self.alerts.alert_for(message_id)
        if alert is None or alert.channel_id != click.channel_id or alert.ts != click.message_ts:
            return ClickRefused("This button does not belong to an alert the bot posted; nothing was retried.")
        if alert.state.delivered_at is not None:
            return ClickRefused(f"Partoo message `{message_id}` was delivered; nothing to retry.")
        if alert.state.retry_in_progress and alert.state.last_outcome in (None, OutcomeKind.ACCEPTED):
            return ClickRefused(_already_retried(alert.state.retry_requested_by, alert.state.retry_requested_at))
        if not alert.state.can_retry:
            return ClickRefused(
                f"Partoo message `{message_id}` was retried {alert.state.retries} times already; "
                "check the conversation in Partoo."
            )
        ask = NewBatch(
            source="button",
            requested_by=click.user_id,
            channel_id=click.channel_id,
            correlation_id=click.correlation_id,
            root_channel=click.channel_id,
            root_ts=click.message_ts,
            alert_message_id=message_id,
            expected_alert_retries=alert.state.retries,
            retry_anyway=retry_anyway,
        )
        result = await self.service.request(ask, [message_id])
        if result.alert_changed:
            latest = await self.alerts.alert_for(message_id)
            assert latest is not None
            return ClickRefused(_already_retried(latest.state.retry_requested_by, latest.state.retry_requested_at))
        return result

    async def retry_all(self, click: Click) -> EnqueueResult | ClickRefused:
        """Retry all: one request per failure of the digest the bot posted, once whoever clicks."""
        digest_id = click.target
        digest = await self.alerts.digest(digest_id)
        if digest is None or digest.channel_id != click.channel_id or digest.ts != click.message_ts:
            return ClickRefused("This button does not belong to a digest the bot posted; nothing was retried.")
        if not await self.alerts.request_retry_all(digest_id, click.user_id):
            return ClickRefused("Someone already asked to retry all of these messages.")
        message_ids = [
            alert.message_id
            for alert in await self.alerts.digest_alerts(digest_id)
            if alert.state.delivered_at is None and alert.state.can_retry
        ]
        ask = NewBatch(
            source="button",
            requested_by=click.user_id,
            channel_id=click.channel_id,
            correlation_id=click.correlation_id,
            root_channel=click.channel_id,
            root_ts=click.message_ts,
            digest_id=digest_id,
        )
        return await self.service.enqueue(ask, message_ids)


Step = Callable[[Click], Awaitable[EnqueueResult | ClickRefused]]


def register(
    app: AsyncApp, clicks: AlertClicks, authorize: Middleware, on_error: Callable[[Exception], Awaitable[None]]
) -> None:
    """Attach the buttons' listeners, behind `authorize`.

    A click is acknowledged at once and acted on right after (a Bolt lazy listener): unlike a command,
    whose acknowledgement says the retry is stored, a click's answer says nothing, and what it does shows
    in the alert itself, or in a refusal sent to the clicker alone.
    """
    for action_id, step in (
        (RETRY_ACTION_ID, clicks.retry),
        (RETRY_ANYWAY_ACTION_ID, clicks.retry_anyway),
        (RETRY_ALL_ACTION_ID, clicks.retry_all),
    ):
        app.action(action_id, middleware=[authorize])(ack=acknowledge, lazy=[_listener(step, on_error)])


def _listener(step: Step, on_error: Callable[[Exception], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    async def on_click(body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        try:
            await _act(step, body, action, respond)
        except Exception as error:  # a lazy listener's failure reaches no Bolt error handler by itself
            await on_error(error)

    return on_click


async def _act(step: Step, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
    click = _parse(body, action)
    if click is None:
        refusal = messages.click_refused("This button is not one the bot posted.")
    else:
        try:
            result = await step(click)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not queue the retry clicked by %s: %s", click.user_id, type(error).__name__)
            refusal = messages.queue_unavailable()
        else:
            if isinstance(result, ClickRefused):
                refusal = messages.click_refused(result.reason)
            elif result.already_active:
                refusal = messages.already_active(result.already_active)
            else:
                return  # queued: the alert itself shows it, re-rendered by the alerter
    await respond(**ephemeral(refusal), replace_original=False)


def _parse(body: dict[str, Any], action: dict[str, Any]) -> Click | None:
    """The click, or None when the button's value is not one the bot could have posted."""
    message_id = ascii_number(str(action.get("value", "")), MAX_MESSAGE_ID)
    if message_id is None:
        return None
    user_id, channel_id = asker(body)
    message_ts = str((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts", ""))
    return Click(user_id, channel_id, message_ts, message_id, correlation.current() or correlation.new_id())


def _already_retried(user_id: str | None, at: float | None) -> str:
    who = mrkdwn.user(user_id) if user_id else "Someone"
    when = f" {mrkdwn.when(at)}" if at else ""
    return f"{who} already retried this message{when}; the bot waits for Partoo's delivery report."

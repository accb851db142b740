"""The buttons of a `/partoo-retry failed …` plan: Retry N that can succeed, Retry anyway (confirmed), Cancel.

Each button carries only the plan's id. The plan is taken in the transaction that queues its requests
(bot.retries.enqueue), by the person who asked for it, while it is open and not expired; admission decides
each message against the state written then, so what runs differs from the plan only by what changed since.
Authorization (RETRY_ALLOWED_*) runs before, as for every retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.commands import MAX_MESSAGE_ID, ascii_number
from bot.domain.retry_requests import NewBatch
from bot.platform import correlation
from bot.rendering.message import SlackMessage
from bot.retries import messages, plan_messages
from bot.retries.plan_messages import PLAN_ANYWAY_ACTION_ID, PLAN_CANCEL_ACTION_ID, PLAN_RETRY_ACTION_ID
from bot.retries.service import RetryService
from bot.slack.authorization import Middleware, asker
from bot.slack.replies import AfterAck, answer_later

log = logging.getLogger(__name__)

Step = Callable[[RetryService, int, dict[str, Any]], Awaitable[SlackMessage]]


async def _retry(service: RetryService, plan_id: int, body: dict[str, Any], *, anyway: bool = False) -> SlackMessage:
    user_id, channel_id = asker(body)
    ask = NewBatch(
        source="command",
        requested_by=user_id,
        channel_id=channel_id,
        correlation_id=correlation.current() or correlation.new_id(),
        response_url=body.get("response_url"),
        retry_anyway=anyway,
        plan_id=plan_id,
    )
    result = await service.enqueue(ask, [])
    if result.plan_gone:
        status = await service.plan_status(plan_id)
        if status is None or status.requested_by != user_id:
            return messages.click_refused("This plan is not one the bot made for you; nothing was retried.")
        return plan_messages.gone(expired=status.expired, state=status.state)
    log.info(
        "user %s retried plan %d: queued %d, refused %d", user_id, plan_id, len(result.queued), len(result.refused)
    )
    return plan_messages.queued(result, anyway=anyway)


async def _anyway(service: RetryService, plan_id: int, body: dict[str, Any]) -> SlackMessage:
    return await _retry(service, plan_id, body, anyway=True)


async def _cancel(service: RetryService, plan_id: int, body: dict[str, Any]) -> SlackMessage:
    if await service.plan_store().cancel(plan_id, asker(body)[0]):
        return plan_messages.cancelled()
    status = await service.plan_status(plan_id)
    if status is None:
        return messages.click_refused("This plan is not one the bot made for you.")
    return plan_messages.gone(expired=status.expired, state=status.state)


def register(app: AsyncApp, service: RetryService, authorize: Middleware, after_ack: AfterAck) -> None:
    """Attach the plan's buttons, behind `authorize`. The answer replaces the plan (only its owner sees it)."""
    step: Step
    for action_id, step in (
        (PLAN_RETRY_ACTION_ID, _retry),
        (PLAN_ANYWAY_ACTION_ID, _anyway),
        (PLAN_CANCEL_ACTION_ID, _cancel),
    ):
        app.action(action_id, middleware=[authorize])(_listener(service, step, after_ack))


def _listener(service: RetryService, step: Step, after_ack: AfterAck) -> Callable[..., Awaitable[None]]:
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        plan_id = ascii_number(str(action.get("value", "")), MAX_MESSAGE_ID)
        if not plan_id:
            answer = messages.click_refused("This button is not one the bot posted.")
        else:
            try:
                # Durable before the ack: the plan is taken and its requests queued in one short transaction.
                answer = await step(service, plan_id, body)
            except (SQLAlchemyError, OSError) as error:
                log.error("could not act on plan %d: %s", plan_id, error)
                answer = messages.queue_unavailable()
        await ack()
        answer_later(after_ack, respond, answer, replace_original=True)

    return on_click

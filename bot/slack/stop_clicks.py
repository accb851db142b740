"""Stop, on a many-message retry's progress message or a digest's: parse, authorize (before), stop, answer.

The button carries only an id: the batch's on a progress message, the digest's on a digest (its Retry all's
batch). The click is honoured only on the message that is that batch's root (channel and ts as stored), which
for a digest's Retry all is the digest itself. What is stopped is decided in one transaction
(bot.retries.stopping).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.commands import MAX_MESSAGE_ID, ascii_number
from bot.rendering.message import SlackMessage
from bot.retries import messages
from bot.retries.messages import STOP_ACTION_ID
from bot.retries.service import RetryService
from bot.slack.authorization import Middleware, asker
from bot.slack.replies import AfterAck, answer_later

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: RetryService, authorize: Middleware, after_ack: AfterAck) -> None:
    """Attach Stop's listener, behind `authorize` (RETRY_ALLOWED_* applies to Stop as to Retry)."""

    @app.action(STOP_ACTION_ID, middleware=[authorize])
    async def on_stop(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        answer = await _stop(service, body, action)
        await ack()
        answer_later(after_ack, respond, answer, replace_original=False)


async def _stop(service: RetryService, body: dict[str, Any], action: dict[str, Any]) -> SlackMessage:
    batch_id = ascii_number(str(action.get("value", "")), MAX_MESSAGE_ID)
    if not batch_id:
        return messages.click_refused("This button is not one the bot posted.")
    user_id, channel_id = asker(body)
    ts = str((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts", ""))
    try:
        return await service.stop(batch_id, user_id, channel_id, ts)
    except (SQLAlchemyError, OSError) as error:
        log.error("could not stop batch %d: %s", batch_id, type(error).__name__)
        return messages.queue_unavailable()

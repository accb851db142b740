"""How listeners answer the person who asked: messages only they can see, or a bare acknowledgement."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot.rendering.message import SlackMessage

log = logging.getLogger(__name__)


def ephemeral(message: SlackMessage) -> dict[str, Any]:
    """Arguments for ack() or respond() that show `message` to the asker alone."""
    return {"response_type": "ephemeral", **message.as_kwargs()}


async def acknowledge(ack: AsyncAck) -> None:
    """The ack function of a Bolt lazy listener: Slack gets its answer at once, the work follows it."""
    await ack()


def answer_later(
    pending: set[asyncio.Task[None]], respond: AsyncRespond, answer: SlackMessage, *, replace_original: bool
) -> None:
    """Send `answer` to the asker alone through response_url, after Slack got its acknowledgement.

    The task is kept in `pending` until it is done, or it may be collected mid-way; a failure is logged (what
    was asked is already stored, or was refused: only the answer is lost).
    """
    task = asyncio.create_task(_respond(respond, answer, replace_original=replace_original))
    pending.add(task)
    task.add_done_callback(pending.discard)


async def _respond(respond: AsyncRespond, answer: SlackMessage, *, replace_original: bool) -> None:
    try:
        await respond(**ephemeral(answer), replace_original=replace_original)
    except Exception:
        log.exception("could not answer through response_url")

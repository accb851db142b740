"""How listeners answer the person who asked: messages only they can see, or a bare acknowledgement."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.rendering.message import SlackMessage


def ephemeral(message: SlackMessage) -> dict[str, Any]:
    """Arguments for ack() or respond() that show `message` to the asker alone."""
    return {"response_type": "ephemeral", **message.as_kwargs()}


async def acknowledge(ack: AsyncAck) -> None:
    """The ack function of a Bolt lazy listener: Slack gets its answer at once, the work follows it."""
    await ack()

"""How listeners answer the person who asked: messages only they can see."""

from __future__ import annotations

from typing import Any

from bot.rendering.message import SlackMessage


def ephemeral(message: SlackMessage) -> dict[str, Any]:
    """Arguments for ack() or respond() that show `message` to the asker alone."""
    return {"response_type": "ephemeral", **message.as_kwargs()}

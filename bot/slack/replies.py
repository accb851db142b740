"""How listeners answer the person who asked: messages only they can see, or a bare acknowledgement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
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


class AfterAck:
    """Work a listener starts once Slack has its acknowledgement: an answer through response_url, a modal.

    One for the whole app. Each task is kept until it is done (or it may be collected mid-way), and the bot's
    stop waits for those under way (`drain`), so an answer to what someone asked is not cut off by a restart.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False

    def start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, within: float) -> int:
        """Wait up to `within` seconds for the work under way; how many were cut off (cancelled) after that."""
        self.draining = True
        if not self._tasks:
            return 0
        _done, left = await asyncio.wait(set(self._tasks), timeout=within)
        for task in left:
            task.cancel()
        return len(left)


def answer_later(
    after_ack: AfterAck,
    respond: AsyncRespond,
    answer: SlackMessage | Awaitable[SlackMessage],
    *,
    replace_original: bool | None = None,
) -> None:
    """Send `answer` to the asker alone through response_url, after Slack got its acknowledgement.

    `answer` may still have to be worked out (reading the log can take longer than Slack's 3 s).
    """
    after_ack.start(answer_now(respond, answer, replace_original=replace_original))


async def answer_now(
    respond: AsyncRespond, answer: SlackMessage | Awaitable[SlackMessage], *, replace_original: bool | None = None
) -> None:
    """Send `answer` to the asker alone through response_url; `replace_original` None leaves Slack's default.

    A failure is logged, not raised: what was asked is already stored, or was refused; only the answer is lost.
    """
    try:
        message = answer if isinstance(answer, SlackMessage) else await answer
        await respond(**ephemeral(message), replace_original=replace_original)  # None: Bolt leaves it out
    except Exception:
        log.exception("could not answer through response_url")

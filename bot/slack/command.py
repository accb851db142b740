"""`/partoo-retry`: parse, hand to the retry service, answer within Slack's 3 seconds.

Who may retry is checked before this listener runs (bot.slack.authorization, for retries only: `status`, `log`,
`silences` and `help` only read). Partoo is never called here: the service writes the request durably, the worker
calls Partoo, and the notifier posts the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.commands import COMMAND
from bot.domain.retry_requests import NewBatch
from bot.platform import correlation
from bot.rendering.message import SlackMessage
from bot.retries import messages, refusal_messages
from bot.retries.commands import Failed, Help, Log, Retry, Silences, Status, UsageError, parse_command
from bot.retries.service import RetryService
from bot.slack.authorization import Middleware
from bot.slack.replies import AfterAck, answer_later, ephemeral

log = logging.getLogger(__name__)


def asks_to_retry(body: dict[str, Any]) -> bool:
    """Whether a command would retry messages, or plan to (the kinds that need authorization)."""
    return isinstance(parse_command(body.get("text") or ""), Retry | Failed)


def register(
    app: AsyncApp,
    service: RetryService,
    authorize: Middleware,
    after_ack: AfterAck,
    silences: Callable[[], Awaitable[SlackMessage]] | None = None,
) -> None:
    """Attach the slash command's listener, behind `authorize`; `silences` answers `silences` (issue 22)."""

    @app.command(COMMAND, middleware=[authorize])
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        match parse_command(command.get("text") or ""):
            case UsageError(problem):
                await ack(**ephemeral(messages.usage(problem)))
            case Help():
                await ack(**ephemeral(messages.usage()))
            case Status(message_id):
                await ack()
                answer_later(after_ack, respond, service.status(message_id))
            case Log(size):
                await ack()
                answer_later(after_ack, respond, service.recent(size))
            case Silences():
                # Read-only: anyone may list; End now on each is behind the access policy (silence_listeners).
                await ack()
                if silences is not None:
                    answer_later(after_ack, respond, silences())
            case Failed(wanted):
                # Nothing is sent: the plan (only to the person) carries the buttons (bot.slack.plan_clicks).
                await ack()
                answer_later(after_ack, respond, service.plan(command["user_id"], command["channel_id"], wanted))
            case Retry(message_ids, anyway=True):
                # Explicit, then confirmed: the answer's button (and its dialog) queues it (bot.slack.clicks).
                await ack(**ephemeral(refusal_messages.confirm_anyway(message_ids)))
            case Retry(message_ids):
                await _retry(ack, command, message_ids, service)


async def _retry(ack: AsyncAck, command: dict[str, Any], message_ids: tuple[int, ...], service: RetryService) -> None:
    user_id, channel_id = command["user_id"], command["channel_id"]
    ask = NewBatch(
        source="command",
        requested_by=user_id,
        channel_id=channel_id,
        correlation_id=correlation.current() or correlation.new_id(),
        response_url=command.get("response_url"),
    )
    try:
        result = await service.request(ask, message_ids)
    except (SQLAlchemyError, OSError) as error:
        log.error("could not queue retries of %s: %s", list(message_ids), type(error).__name__)
        await ack(**ephemeral(messages.queue_unavailable()))
        return
    log.info(
        "user %s asked to retry %d message(s) in %s: queued %d, refused %d",
        user_id,
        len(message_ids),
        channel_id,
        len(result.queued),
        len(result.refused),
    )
    if result.refused:
        await ack(**ephemeral(refusal_messages.refused(result.refused)))
    else:
        await ack()

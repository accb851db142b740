"""Slack listeners: thin. Parse, authorize, hand to the retry service, answer within Slack's 3 seconds.

Partoo is never called here: the service only writes the request durably, and the worker calls Partoo.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.commands import COMMAND, Help, Log, Retry, Status, UsageError, parse_command
from bot.config import AccessPolicy
from bot.retry.service import RetryService
from bot.slack import messages
from bot.slack.authz import Authorizer, Verdict
from bot.slack.messages import SlackMessage
from bot.store.queue import NewBatch

log = logging.getLogger(__name__)


def ephemeral(message: SlackMessage) -> dict[str, Any]:
    return {"response_type": "ephemeral", **message.as_kwargs()}


def register(app: AsyncApp, service: RetryService, authorizer: Authorizer, policy: AccessPolicy) -> None:
    """Attach every listener of the bot to a Bolt app."""

    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        parsed = parse_command(command.get("text") or "")
        match parsed:
            case UsageError(problem):
                await ack(**ephemeral(messages.usage(problem)))
            case Help():
                await ack(**ephemeral(messages.usage()))
            case Status(message_id):
                await ack()
                await respond(**ephemeral(await service.status(message_id)))
            case Log(size):
                await ack()
                await respond(**ephemeral(await service.recent(size)))
            case Retry(message_ids):
                await _retry(ack, command, message_ids)

    async def _retry(ack: AsyncAck, command: dict[str, Any], message_ids: tuple[int, ...]) -> None:
        user_id, channel_id = command["user_id"], command["channel_id"]
        verdict = await authorizer.check(user_id, channel_id)
        if verdict is Verdict.DENIED:
            await ack(**ephemeral(messages.not_allowed(policy)))
            return
        if verdict is Verdict.UNVERIFIABLE:
            await ack(**ephemeral(messages.authorization_unavailable()))
            return
        ask = NewBatch(
            source="command",
            requested_by=user_id,
            channel_id=channel_id,
            correlation_id=uuid.uuid4().hex,
            response_url=command.get("response_url"),
        )
        try:
            result = await service.request(ask, message_ids)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not queue retries of %s: %s", list(message_ids), type(error).__name__)
            await ack(**ephemeral(messages.queue_unavailable()))
            return
        log.info(
            "user %s asked to retry %d message(s) in %s: queued %d, already active %d",
            user_id,
            len(message_ids),
            channel_id,
            len(result.queued),
            len(result.already_active),
        )
        if result.already_active:
            await ack(**ephemeral(messages.already_active(result.already_active)))
        else:
            await ack()

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        await client.views_publish(user_id=event["user"], view=await service.home())

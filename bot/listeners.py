"""Slack listeners: thin. Parse, authorize, hand to the retry service, answer within Slack's 3 seconds.

Partoo is never called here: the service only writes the request durably, and the worker calls Partoo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import correlation
from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from bot.alerts.verdict_messages import RETRY_ANYWAY_ACTION_ID
from bot.domain.access import AccessPolicy
from bot.domain.commands import COMMAND, MAX_MESSAGE_ID
from bot.domain.records import EnqueueResult, NewBatch
from bot.platform.authz import Authorizer, Verdict
from bot.rendering.message import SlackMessage
from bot.retries import messages, shortcut
from bot.retries.commands import Help, Log, Retry, Status, UsageError, parse_command
from bot.retries.service import ClickRefused, RetryService

log = logging.getLogger(__name__)

ClickHandler = Callable[..., Awaitable[EnqueueResult | ClickRefused]]


def ephemeral(message: SlackMessage) -> dict[str, Any]:
    return {"response_type": "ephemeral", **message.as_kwargs()}


def register(app: AsyncApp, service: RetryService, authorizer: Authorizer, policy: AccessPolicy) -> None:
    """Attach every listener of the bot to a Bolt app.

    The app answers Slack when a listener returns (process_before_response), so a listener does only what
    the answer needs; slower answers (reading the log, permalinks) go out through response_url afterwards.
    """
    pending: set[asyncio.Task[None]] = set()
    shortcut.register(app, service, authorizer, policy)  # "Retry Partoo messages" on any message

    def _after_ack(respond: AsyncRespond, answer: Awaitable[SlackMessage]) -> None:
        async def send() -> None:
            try:
                await respond(**ephemeral(await answer))
            except Exception:
                log.exception("could not answer a log question through response_url")

        task = asyncio.create_task(send())
        pending.add(task)  # keep a reference until it is done, or the task may be collected mid-way
        task.add_done_callback(pending.discard)

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
                _after_ack(respond, service.status(message_id))
            case Log(size):
                await ack()
                _after_ack(respond, service.recent(size))
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

    @app.action(RETRY_ACTION_ID)
    async def on_retry_click(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await _click(body, action, respond, service.retry_from_alert)

    @app.action(RETRY_ANYWAY_ACTION_ID)
    async def on_retry_anyway_click(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await _click(body, action, respond, service.retry_anyway)

    @app.action(RETRY_ALL_ACTION_ID)
    async def on_retry_all_click(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await _click(body, action, respond, service.retry_digest)

    async def _click(body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, retry: ClickHandler) -> None:
        user_id = str(body.get("user", {}).get("id", ""))
        channel_id = str((body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", ""))
        message_ts = str(body.get("container", {}).get("message_ts") or (body.get("message") or {}).get("ts", ""))
        value = str(action.get("value", ""))
        if not value.isascii() or not value.isdigit() or int(value) > MAX_MESSAGE_ID:
            await respond(**ephemeral(messages.click_refused("This button is not one the bot posted.")))
            return
        verdict = await authorizer.check(user_id, channel_id)
        if verdict is not Verdict.ALLOWED:
            refusal = (
                messages.not_allowed(policy) if verdict is Verdict.DENIED else messages.authorization_unavailable()
            )
            await respond(**ephemeral(refusal), replace_original=False)
            return
        try:
            result = await retry(
                int(value),
                user_id=user_id,
                channel_id=channel_id,
                message_ts=message_ts,
                correlation_id=correlation.current() or correlation.new_id(),
            )
        except (SQLAlchemyError, OSError) as error:
            log.error("could not queue the retry clicked by %s: %s", user_id, type(error).__name__)
            await respond(**ephemeral(messages.queue_unavailable()), replace_original=False)
            return
        if isinstance(result, ClickRefused):
            await respond(**ephemeral(messages.click_refused(result.reason)), replace_original=False)
        elif result.already_active:
            await respond(**ephemeral(messages.already_active(result.already_active)), replace_original=False)

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        await client.views_publish(user_id=event["user"], view=await service.home())

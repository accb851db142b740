"""The "Retry Partoo messages" message shortcut: on any Slack message, find the Partoo message ids it is about,
show them in a modal with their last known state, and queue those the user keeps selected.

Thin, like every listener: reads (a few indexed queries) and writes (the same enqueue as a command) before
answering Slack; Partoo is only ever called by the worker. The outcomes go to the thread of the message the
shortcut was used on, or through the shortcut's response_url where the bot cannot post.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.access import AccessPolicy
from bot.domain.commands import MAX_MESSAGE_ID, ascii_number
from bot.domain.message_ids import MAX_TEXT, find_message_ids
from bot.domain.retry_requests import KnownMessage, NewBatch
from bot.platform import correlation
from bot.platform.authz import Authorizer, Verdict
from bot.platform.slack import classify
from bot.rendering.message import SlackMessage
from bot.retries import messages
from bot.retries.service import RetryService
from bot.retries.shortcut_messages import (
    ANYWAY_ACTION_ID,
    ANYWAY_BLOCK_ID,
    ANYWAY_VALUE,
    BLOCK_ID_PREFIX,
    MAX_LISTED,
    MODAL_CALLBACK_ID,
    SHORTCUT_CALLBACK_ID,
    ModalContext,
    no_ids_modal,
    nothing_selected,
    notice_modal,
    retry_modal,
    submitted,
)
from bot.slack.replies import AfterAck

log = logging.getLogger(__name__)

SOURCE = "shortcut"
BROKEN_FORM = "This form is not one the bot opened; nothing was retried."


def register(
    app: AsyncApp, service: RetryService, authorizer: Authorizer, policy: AccessPolicy, after_ack: AfterAck
) -> None:
    """Attach the message shortcut and its modal's submission to a Bolt app."""

    async def refusal(user_id: str, channel_id: str) -> SlackMessage | None:
        verdict = await authorizer.check(user_id, channel_id)
        if verdict is Verdict.DENIED:
            return messages.not_allowed(policy)
        if verdict is Verdict.UNVERIFIABLE:
            return messages.authorization_unavailable()
        return None

    @app.message_shortcut(SHORTCUT_CALLBACK_ID)
    async def on_message_shortcut(ack: AsyncAck, shortcut: dict[str, Any], client: AsyncWebClient) -> None:
        # Slack gets its answer when this listener returns: the modal is built and opened after that, so a
        # slow views.open (slack_sdk retries 429 and 5xx) can never make Slack say "operation timed out".
        await ack()
        after_ack.start(open_modal(shortcut, client))

    async def open_modal(shortcut: dict[str, Any], client: AsyncWebClient) -> None:
        user_id = str((shortcut.get("user") or {}).get("id", ""))
        channel_id = str((shortcut.get("channel") or {}).get("id", ""))
        message = shortcut.get("message") or {}
        ts = str(message.get("ts") or shortcut.get("message_ts") or "")
        # Replies go to the thread the message is in, or start one under it.
        context = ModalContext(channel_id, str(message.get("thread_ts") or ts), shortcut.get("response_url"))
        try:
            refused = await refusal(user_id, channel_id)
            if refused is not None:
                view = notice_modal(refused)
            else:
                found = await ids_in_message(service, channel_id, ts, context.thread_ts, message)
                known = await known_messages(service, found[:MAX_LISTED])
                view = retry_modal(known, context, found=len(found)) if found else no_ids_modal()
        except (SQLAlchemyError, OSError) as error:
            log.error("could not read the retry log for a message shortcut: %s", type(error).__name__)
            view = notice_modal(messages.queue_unavailable())
        try:
            # The trigger_id expires 3 s after the click; reading a few rows takes milliseconds.
            await client.views_open(trigger_id=shortcut["trigger_id"], view=view.to_dict())
        except SlackApiError as error:
            log.warning("could not open the retry modal for %s: %s", user_id, classify(error).error)
        except Exception:
            log.exception("could not open the retry modal for %s", user_id)

    @app.view(MODAL_CALLBACK_ID)
    async def on_modal_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        context = ModalContext.decode(str(view.get("private_metadata") or ""))
        if context is None:
            await ack(response_action="update", view=notice_modal(messages.click_refused(BROKEN_FORM)).to_dict())
            return
        message_ids = selected_ids(view)
        if not message_ids:
            await ack(response_action="errors", errors={f"{BLOCK_ID_PREFIX}0": nothing_selected()})
            return
        refused = await refusal(user_id, context.channel_id)
        if refused is not None:
            await ack(response_action="update", view=notice_modal(refused).to_dict())
            return
        ask = NewBatch(
            source=SOURCE,
            requested_by=user_id,
            channel_id=context.channel_id,
            correlation_id=correlation.current() or correlation.new_id(),
            response_url=context.response_url,
            thread_ts=context.thread_ts,
            # Ticked by the person, never by the bot; admission applies all the same (bot.domain.admission).
            retry_anyway=anyway_ticked(view),
        )
        try:
            result = await service.request(ask, message_ids)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not queue retries of %s: %s", list(message_ids), type(error).__name__)
            await ack(response_action="update", view=notice_modal(messages.queue_unavailable()).to_dict())
            return
        log.info(
            "user %s asked to retry %d message(s)%s from a message in %s: queued %d, refused %d",
            user_id,
            len(message_ids),
            " anyway" if ask.retry_anyway else "",
            context.channel_id,
            len(result.queued),
            len(result.refused),
        )
        if result.refused:
            answer = notice_modal(submitted(result.queued, result.refused))
            await ack(response_action="update", view=answer.to_dict())
        else:
            await ack()  # closes the modal; the thread shows the rest


async def ids_in_message(
    service: RetryService, channel_id: str, ts: str, thread_ts: str, message: dict[str, Any]
) -> tuple[int, ...]:
    """The Partoo message ids a Slack message is about.

    The bot's own alert (or digest) is about the message(s) it records, whatever its text shows. Any other
    message: the ids written in it; failing that, a reply in an alert's thread is about that alert.
    """
    if ts and (own := await _recorded_ids(service, channel_id, ts)):
        return own
    written = find_message_ids(message_text(message))
    if written or thread_ts == ts:
        return written
    return await _recorded_ids(service, channel_id, thread_ts)


async def _recorded_ids(service: RetryService, channel_id: str, ts: str) -> tuple[int, ...]:
    alert = await service.alerts.alert_posted_at(channel_id, ts)
    if alert is not None:
        return (alert.message_id,)
    digest = await service.alerts.digest_posted_at(channel_id, ts)
    if digest is not None:
        return tuple(alert.message_id for alert in await service.alerts.digest_alerts(digest.id))
    return ()


async def known_messages(service: RetryService, message_ids: Sequence[int]) -> list[KnownMessage]:
    """Each id with its alert and latest retry: two queries, whatever the number of ids."""
    alerts = await service.alerts.alerts_for(message_ids)
    latest = await service.queue.latest_requests(message_ids)
    return [
        KnownMessage(
            message_id=message_id,
            alert=alerts[message_id].state if message_id in alerts else None,
            latest=latest.get(message_id),
        )
        for message_id in message_ids
    ]


def message_text(message: dict[str, Any]) -> str:
    """The readable text of a message: its text, and that of forwarded messages and shared files."""
    parts: list[str] = [str(message.get("text") or "")]
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, dict):
            parts.extend(str(attachment.get(key) or "") for key in ("pretext", "title", "text", "fallback"))
    for file in message.get("files") or []:
        if isinstance(file, dict):
            parts.extend(str(file.get(key) or "") for key in ("title", "preview", "plain_text"))
    return "\n".join(part for part in parts if part)[:MAX_TEXT]


def selected_ids(view: dict[str, Any]) -> tuple[int, ...]:
    """The ids left selected in the modal's checkbox groups (only what the bot offered can come back)."""
    chosen: dict[int, None] = {}
    values = (view.get("state") or {}).get("values") or {}
    for block_id, actions in values.items():
        if not str(block_id).startswith(BLOCK_ID_PREFIX) or not isinstance(actions, dict):
            continue
        for action in actions.values():
            for option in (action or {}).get("selected_options") or []:
                message_id = ascii_number(str((option or {}).get("value", "")), MAX_MESSAGE_ID)
                if message_id:  # neither None (not an id) nor 0
                    chosen[message_id] = None
    return tuple(chosen)[:MAX_LISTED]


def anyway_ticked(view: dict[str, Any]) -> bool:
    """Whether the person ticked "Retry even if the check says it cannot work" in the submitted modal."""
    values = (view.get("state") or {}).get("values") or {}
    block = values.get(ANYWAY_BLOCK_ID) if isinstance(values, dict) else None
    action = block.get(ANYWAY_ACTION_ID) if isinstance(block, dict) else None
    if not isinstance(action, dict):
        return False
    chosen = action.get("selected_options") or []
    return any(isinstance(option, dict) and option.get("value") == ANYWAY_VALUE for option in chosen)

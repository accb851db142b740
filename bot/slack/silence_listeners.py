"""Silences from Slack (issue 22): the alert's overflow menu opens a modal, its submission starts the silence;
`/partoo-retry silences` lists the active ones, and End now ends one early.

Thin, like every listener: parse, authorize, read or write through the SilenceStore, answer. What to silence
is read from the stored alert the menu belongs to, never from the menu as the person saw it. The access policy
(RETRY_ALLOWED_*) applies to opening the modal and to End now (the listener middleware, bot.slack.authorization)
and again to the submission, which Slack sends without a channel: the modal carries the alert's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts import silence_messages
from bot.alerts.messages import SILENCE_ACTION_ID
from bot.alerts.silence_messages import (
    DURATION_ACTION_ID,
    DURATION_BLOCK_ID,
    END_SILENCE_ACTION,
    NOTE_ACTION_ID,
    NOTE_BLOCK_ID,
    SILENCE_MODAL_CALLBACK_ID,
    UNTIL_ACTION_ID,
    UNTIL_BLOCK_ID,
    UNTIL_CHOSEN,
    SilenceForm,
    notice_modal,
)
from bot.domain.access import AccessPolicy
from bot.domain.commands import MAX_MESSAGE_ID, ascii_number
from bot.domain.silences import DURATIONS, MAX_SILENCE_SECONDS, Scope, Silence, clean_note, scope_value
from bot.failures.businesses import BusinessNames
from bot.failures.silences import SilenceStore
from bot.failures.store import FailureStore
from bot.platform.authz import Authorizer, Verdict
from bot.platform.slack import classify
from bot.rendering.message import SlackMessage
from bot.retries import messages
from bot.slack.authorization import Middleware, asker
from bot.slack.replies import AfterAck, answer_later, answer_now

log = logging.getLogger(__name__)

NOT_AN_ALERT = "This menu does not belong to an alert the bot posted; nothing was silenced."
BROKEN_FORM = "This form is not one the bot opened; nothing was silenced."


class Silencing:
    """What the silence controls do: open the modal's form, start, list and end silences."""

    def __init__(
        self,
        silences: SilenceStore,
        alerts: FailureStore,
        names: BusinessNames,
        *,
        on_changed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.silences = silences
        self.alerts = alerts
        self.names = names
        # Wakes the alerter: the alert re-renders with its "Silenced by" line, an ended silence is summed up.
        self.on_changed = on_changed
        self.clock = clock

    async def form(self, choice: str, channel_id: str, message_ts: str) -> SilenceForm | str:
        """What an overflow choice ("<scope> <message id>") silences, read from the alert; else why not."""
        scope_text, _, id_text = choice.partition(" ")
        message_id = ascii_number(id_text, MAX_MESSAGE_ID)
        if scope_text not in {scope.value for scope in Scope} or not message_id:
            return NOT_AN_ALERT
        alert = await self.alerts.alert_for(message_id)
        if alert is None or alert.channel_id != channel_id or alert.ts != message_ts:
            return NOT_AN_ALERT
        scope = Scope(scope_text)
        value = scope_value(scope, alert.state.failure, alert.state.verdict)
        if value is None:
            return f"This failure has no known {scope.value}: there is nothing to silence."
        return SilenceForm(scope, value, message_id, channel_id)

    async def modal_for(self, form: SilenceForm) -> dict[str, Any]:
        businesses = await self.names.lookup([form.value] if form.scope is Scope.BUSINESS else [])
        return silence_messages.silence_modal(form, businesses).to_dict()

    async def start(self, form: SilenceForm, until: float, user_id: str, note: str | None) -> Silence:
        silence = await self.silences.start(
            form.scope, form.value, until, user_id, note=clean_note(note), origin_message_id=form.message_id
        )
        log.info(
            "user %s silenced %s %s until %.0f (silence %s)", user_id, form.scope.value, form.value, until, silence.id
        )
        self.on_changed()
        return silence

    async def listing(self, heading: str | None = None) -> SlackMessage:
        """The active silences, for `/partoo-retry silences` and after End now."""
        try:
            active = await self.silences.active()
            held = await self.silences.held_count([silence.id for silence in active])
            businesses = await self.names.lookup(s.value for s in active if s.scope is Scope.BUSINESS)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not read the silences: %s", type(error).__name__)
            return messages.queue_unavailable()
        return silence_messages.silences_list(active, businesses, held, heading=heading)

    async def end(self, silence_id: int, user_id: str) -> SlackMessage:
        """End now: ends the silence once (its summary follows from the alerter), then the list again."""
        try:
            silence = await self.silences.get(silence_id)
            ended = silence is not None and await self.silences.end_now(silence_id, user_id)
        except (SQLAlchemyError, OSError) as error:
            log.error("could not end silence %d: %s", silence_id, type(error).__name__)
            return messages.queue_unavailable()
        if not ended or silence is None:
            return await self.listing(silence_messages.SILENCE_ALREADY_ENDED)
        log.info("user %s ended silence %s early", user_id, silence_id)
        self.on_changed()
        businesses = await self.names.lookup([silence.value] if silence.scope is Scope.BUSINESS else [])
        return await self.listing(silence_messages.silence_ended(silence, businesses))


def register(
    app: AsyncApp,
    silencing: Silencing,
    authorize: Middleware,
    authorizer: Authorizer,
    policy: AccessPolicy,
    after_ack: AfterAck,
) -> None:
    """Attach the overflow menu's, the modal's and End now's listeners."""

    @app.action(SILENCE_ACTION_ID, middleware=[authorize])
    async def on_silence_chosen(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        # Slack gets its answer at once; the modal opens after (the trigger_id lasts 3 s, reading takes ms).
        await ack()
        after_ack.start(open_modal(body, action, client, respond))

    async def open_modal(
        body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        user_id, channel_id = asker(body)
        choice = str((action.get("selected_option") or {}).get("value", ""))
        message_ts = str((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts", ""))
        try:
            form = await silencing.form(choice, channel_id, message_ts)
            view = await silencing.modal_for(form) if isinstance(form, SilenceForm) else None
        except (SQLAlchemyError, OSError) as error:
            log.error("could not read the alert to silence: %s", type(error).__name__)
            await answer_now(respond, messages.queue_unavailable(), replace_original=False)
            return
        if view is None:
            await answer_now(respond, messages.click_refused(str(form)), replace_original=False)
            return
        try:
            await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
        except SlackApiError as error:
            log.warning("could not open the silence modal for %s: %s", user_id, classify(error).error)
        except Exception:
            log.exception("could not open the silence modal for %s", user_id)

    @app.view(SILENCE_MODAL_CALLBACK_ID)
    async def on_silence_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        form = SilenceForm.decode(str(view.get("private_metadata") or ""))
        if form is None:
            await ack(response_action="update", view=notice_modal(messages.click_refused(BROKEN_FORM)).to_dict())
            return
        until = chosen_until(view, silencing.clock())
        if isinstance(until, str):
            await ack(response_action="errors", errors={UNTIL_BLOCK_ID: until})
            return
        verdict = await authorizer.check(user_id, form.channel_id)
        if verdict is not Verdict.ALLOWED:
            refusal = (
                messages.not_allowed(policy) if verdict is Verdict.DENIED else messages.authorization_unavailable()
            )
            await ack(response_action="update", view=notice_modal(refusal).to_dict())
            return
        try:
            await silencing.start(form, until, user_id, note_of(view))
        except (SQLAlchemyError, OSError) as error:
            log.error("could not start a silence for %s: %s", user_id, type(error).__name__)
            await ack(response_action="update", view=notice_modal(messages.queue_unavailable()).to_dict())
            return
        await ack()  # closes the modal; the alert shows the silence

    @app.action(END_SILENCE_ACTION, middleware=[authorize])
    async def on_end_now(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        silence_id = ascii_number(str(action.get("value", "")), MAX_MESSAGE_ID)
        user_id, _ = asker(body)
        answer = (
            await silencing.end(silence_id, user_id)
            if silence_id
            else messages.click_refused("This button is not one the bot posted.")
        )
        await ack()
        answer_later(after_ack, respond, answer, replace_original=True)


def chosen_until(view: dict[str, Any], now: float) -> float | str:
    """When the silence submitted in `view` ends: a preset from now, or the chosen time; else what is wrong."""
    values = (view.get("state") or {}).get("values") or {}
    preset = _state(values, DURATION_BLOCK_ID, DURATION_ACTION_ID).get("selected_option") or {}
    choice = str(preset.get("value", "")) if isinstance(preset, dict) else ""
    if choice in DURATIONS:
        return now + DURATIONS[choice]
    chosen = _state(values, UNTIL_BLOCK_ID, UNTIL_ACTION_ID).get("selected_date_time")
    if choice != UNTIL_CHOSEN or not isinstance(chosen, int | float) or isinstance(chosen, bool):
        return silence_messages.UNTIL_MISSING
    if chosen <= now:
        return silence_messages.UNTIL_PAST
    if chosen - now > MAX_SILENCE_SECONDS:
        return silence_messages.UNTIL_TOO_FAR
    return float(chosen)


def note_of(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    note = _state(values, NOTE_BLOCK_ID, NOTE_ACTION_ID).get("value")
    return note if isinstance(note, str) else None


def _state(values: object, block_id: str, action_id: str) -> dict[str, Any]:
    block = values.get(block_id) if isinstance(values, dict) else None
    action = block.get(action_id) if isinstance(block, dict) else None
    return action if isinstance(action, dict) else {}

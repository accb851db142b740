"""What silences look like in Slack: the line on an alert, and what a silence is called (pure builders).

A silence's value is outside text (a business id or a partner as Partoo spelled them) and its note is what
a person typed: both are escaped here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    DateTimePickerElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
)
from slack_sdk.models.views import View

# Imported as a module: bot.alerts.messages imports this one back (the alert's "Silenced by" line).
from bot.alerts import messages
from bot.domain.businesses import ID_CHARS, Business
from bot.domain.commands import MAX_MESSAGE_ID
from bot.domain.silences import MAX_SILENCE_SECONDS, NOTE_CHARS, Scope, Silence, is_cause
from bot.domain.verdict import VerdictKind
from bot.rendering import limits, mrkdwn
from bot.rendering.message import SlackMessage
from bot.rendering.mrkdwn import escape, shorten

CAUSE_LABELS = {
    VerdictKind.CLOSED.value: "conversation closed",
    VerdictKind.SETUP_PROBLEM.value: "channel setup problem",
    VerdictKind.COULD_NOT_CHECK.value: "could not check",
    VerdictKind.CAN_RETRY.value: "retryable failures",
}


def subject(silence: Silence, businesses: Mapping[str, Business] | None = None) -> str:
    """What is silenced, as mrkdwn: "Le Bistrot · Paris", "Facebook", "channel setup problem"."""
    if silence.scope is Scope.BUSINESS:
        known = (businesses or {}).get(silence.value)
        return mrkdwn.business(known or Business(silence.value), messages.GROUP_NAME_CHARS)
    if silence.scope is Scope.PARTNER:
        return messages.partner_name(silence.value) or "_unknown channel_"
    return escape(CAUSE_LABELS.get(silence.value, silence.value))


def note_text(silence: Silence) -> str:
    return f" ({escape(shorten(silence.note, 200))})" if silence.note else ""


def silenced_line(silence: Silence, businesses: Mapping[str, Business] | None = None) -> str:
    """The line an alert shows while a silence covers it."""
    return (
        f":no_bell: {subject(silence, businesses)} silenced by {mrkdwn.user(silence.created_by)} "
        f"until {mrkdwn.when(silence.until)}{note_text(silence)}"
    )


def summary_title(silence: Silence, count: int, retryable: int, businesses: Mapping[str, Business]) -> str:
    """The head of the digest that sums up what a silence held back."""
    noun = "failure" if count == 1 else "failures"
    return f"While {subject(silence, businesses)} was silenced: {count} {noun}, {retryable} now retryable"


def active_lines(silences: Sequence[Silence], businesses: Mapping[str, Business]) -> list[str]:
    """One line per active silence, for the weekly report and App Home."""
    return [silenced_line(silence, businesses) for silence in silences]


# -- starting a silence from an alert: the modal (issue 22 item 1) ------------------------------------------


@dataclass(frozen=True)
class SilenceForm:
    """What the modal silences, carried by it (private_metadata): the scope, its value, and the alert it came from."""

    scope: Scope
    value: str
    message_id: int
    channel_id: str

    def encode(self) -> str:
        values = {"s": self.scope.value, "v": self.value, "m": self.message_id, "c": self.channel_id}
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> SilenceForm | None:
        """The form the bot opened, or None for anything else (total: never raises)."""
        try:
            values = json.loads(text)
            scope, value, message_id, channel_id = values["s"], values["v"], values["m"], values["c"]
        except (ValueError, KeyError, TypeError):
            return None
        if scope not in {member.value for member in Scope} or not isinstance(value, str):
            return None
        if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id <= MAX_MESSAGE_ID:
            return None
        if not isinstance(channel_id, str) or not channel_id or not value or len(value) > ID_CHARS:
            return None
        if Scope(scope) is Scope.CAUSE and not is_cause(value):
            return None
        return cls(Scope(scope), value, message_id, channel_id)


SILENCE_MODAL_CALLBACK_ID = "partoo_retry.silence_modal"
DURATION_BLOCK_ID = "silence_duration"
DURATION_ACTION_ID = "partoo_retry.silence_duration"
UNTIL_BLOCK_ID = "silence_until"
UNTIL_ACTION_ID = "partoo_retry.silence_until"
NOTE_BLOCK_ID = "silence_note"
NOTE_ACTION_ID = "partoo_retry.silence_note"
# The duration option that takes the time chosen in the date-time picker.
UNTIL_CHOSEN = "until"
MODAL_TITLE = "Silence alerts"
_DURATION_LABELS = {"1h": "1 hour", "4h": "4 hours", "1d": "1 day", UNTIL_CHOSEN: "Until the time chosen below"}

UNTIL_MISSING = "Choose when the silence ends, or pick a duration above."
UNTIL_PAST = "This time has passed: choose one in the future."
UNTIL_TOO_FAR = f"A silence lasts at most {int(MAX_SILENCE_SECONDS // 86400)} days: choose an earlier time."


def silence_modal(form: SilenceForm, businesses: Mapping[str, Business] | None = None) -> View:
    """The modal that starts a silence: for how long (a preset or a chosen time) and why (optional)."""
    shown = subject(_preview(form), businesses)
    intro = (
        f"Silence *{shown}*: its new failures are still stored, checked and retryable, but not posted one by "
        "one. When the silence ends, one message sums them up, with Retry all."
    )
    presets = [Option(text=label, value=value) for value, label in _DURATION_LABELS.items()]
    return View(
        type="modal",
        callback_id=SILENCE_MODAL_CALLBACK_ID,
        private_metadata=form.encode(),
        title=PlainTextObject(text=MODAL_TITLE),
        submit=PlainTextObject(text="Silence"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=shorten(intro, limits.SECTION_TEXT))),
            InputBlock(
                block_id=DURATION_BLOCK_ID,
                label=PlainTextObject(text="For"),
                element=RadioButtonsElement(action_id=DURATION_ACTION_ID, options=presets, initial_option=presets[0]),
            ),
            InputBlock(
                block_id=UNTIL_BLOCK_ID,
                label=PlainTextObject(text="Until (with “Until the time chosen below”)"),
                element=DateTimePickerElement(action_id=UNTIL_ACTION_ID),
                optional=True,
            ),
            InputBlock(
                block_id=NOTE_BLOCK_ID,
                label=PlainTextObject(text="Note"),
                element=PlainTextInputElement(
                    action_id=NOTE_ACTION_ID,
                    max_length=NOTE_CHARS,
                    placeholder=PlainTextObject(text="Why (shown on the alert)"),
                ),
                optional=True,
            ),
        ],
    )


def _preview(form: SilenceForm) -> Silence:
    return Silence(0, form.scope, form.value, 0.0, "", 0.0)


def notice_modal(message: SlackMessage) -> View:
    """A modal that only says something (a refusal, a problem): no submit button."""
    blocks = list(message.blocks) or [SectionBlock(text=MarkdownTextObject(text=message.text))]
    return View(
        type="modal", title=PlainTextObject(text=MODAL_TITLE), close=PlainTextObject(text="Close"), blocks=blocks
    )


def notice(text: str) -> SlackMessage:
    return SlackMessage(
        text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))]
    )


# -- `/partoo-retry silences`: the active ones, each with End now (issue 22 item 1) -------------------------

# End now: one button per silence, and Slack wants each action_id once per message, so the silence id ends it
# (`partoo_retry.end_silence.<id>`, matched by END_SILENCE_ACTION); the value carries the id too.
END_SILENCE_ACTION_PREFIX = "partoo_retry.end_silence."
END_SILENCE_ACTION = re.compile(r"partoo_retry\.end_silence\.[0-9]+")
# Blocks left for the heading and the "and N more" line under Slack's 50.
MAX_LISTED = 40


def silences_list(
    silences: Sequence[Silence],
    businesses: Mapping[str, Business],
    held: Mapping[int, int],
    *,
    heading: str | None = None,
) -> SlackMessage:
    """The active silences, each with who started it, until when, its note, what it held back and End now."""
    blocks: list[Block] = []
    if heading:
        blocks.append(_section(heading))
    if not silences:
        text = ":bell: No silence is active: every failure is posted as it comes."
        blocks.append(_section(text))
        return SlackMessage(text=f"{heading}\n{text}" if heading else text, blocks=blocks)
    noun = "silence" if len(silences) == 1 else "silences"
    title = f"*{len(silences)} active {noun}*"
    blocks.append(_section(title))
    for silence in silences[:MAX_LISTED]:
        count = held.get(silence.id, 0)
        line = (
            f"{silenced_line(silence, businesses)}\nHeld back so far: {count} {'failure' if count == 1 else 'failures'}"
        )
        end = ButtonElement(
            text="End now",
            action_id=f"{END_SILENCE_ACTION_PREFIX}{silence.id}",
            value=str(silence.id),
            confirm=ConfirmObject(
                title="End this silence?",
                text="Its failures are posted again as they come; what it held back is summed up in one message.",
                confirm="End now",
                deny="Keep it",
            ),
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=shorten(line, limits.SECTION_TEXT)), accessory=end))
    if len(silences) > MAX_LISTED:
        blocks.append(_section(f"… and {len(silences) - MAX_LISTED} more"))
    text = f"{len(silences)} active {noun}"
    return SlackMessage(text=f"{heading}\n{text}" if heading else text, blocks=blocks)


def silence_ended(silence: Silence, businesses: Mapping[str, Business]) -> str:
    return (
        f":bell: The silence of {subject(silence, businesses)} is over: what it held back is summed up in one message."
    )


SILENCE_ALREADY_ENDED = ":bell: That silence had already ended."


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))

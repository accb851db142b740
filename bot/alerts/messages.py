"""Alerts for failed Partoo messages: one message per failure (a flood makes a digest: digest_messages).

Pure functions: state in, blocks and fallback text out (`SlackMessage`). Everything Partoo sent (names,
labels, content, channel names, details) is escaped here, at the last step before Slack, and shortened
*before* escaping so that a cut can never split an entity such as `&lt;`.

A posted button keeps its `action_id` for as long as the message exists: the ids below must never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    SectionBlock,
)

# Imported as a module: silence_messages imports this module back (partner_name, GROUP_NAME_CHARS).
from bot.alerts import silence_messages
from bot.defaults import PREVIEW_CHARS
from bot.domain.businesses import Business, business_key
from bot.domain.lifecycle import AlertState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.silences import Scope, Silence
from bot.failures import verdict_messages
from bot.rendering import limits, mrkdwn
from bot.rendering.message import OUTCOME_EMOJI, SlackMessage
from bot.rendering.mrkdwn import escape, shorten

RETRY_ACTION_ID = "partoo_retry.retry"
RETRY_ALL_ACTION_ID = "partoo_retry.retry_all"
# The alert's overflow menu: "Silence this business… / partner… / cause…"; an option's value is
# "<scope> <message id>" (bot.slack.silence_listeners reads what to silence from the stored alert).
SILENCE_ACTION_ID = "partoo_retry.silence"

SECTION_LIMIT = limits.SECTION_TEXT
FIELD_LIMIT = limits.FIELD_TEXT
PREVIEW_LINES = 8
NAME_CHARS = 80
DETAIL_CHARS = 300
GROUP_NAME_CHARS = 30

_PARTNERS = {
    "google": "Google",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "sms": "SMS",
    "whatsapp": "WhatsApp",
}

_PLACEHOLDERS = {
    "Image": "an image",
    "Video": "a video",
    "Audio": "an audio message",
    "Document": "a document",
    "IgStoryReply": "a reply to an Instagram story",
    "IgStoryMention": "a mention in an Instagram story",
}

# A recorded rate-limited or unavailable outcome means the bot already gave up; their `sentence`
# describes the wait that came before, so the alert says what it ended in instead.
_GAVE_UP = {
    OutcomeKind.RATE_LIMITED: "Partoo kept rate limiting the bot, so it gave up on this retry.",
    OutcomeKind.UNAVAILABLE: "Partoo could not be reached or kept failing, so the bot gave up on this retry.",
}


# -- one alert per failure ----------------------------------------------------------------------


def alert_message(
    state: AlertState, business: Business | None = None, silences: Sequence[Silence] = ()
) -> SlackMessage:
    """The alert for one failed message: what failed, a preview, and the retry state with its button.

    `business` is the failure's business with its name when the bot knows it (else it is shown by id);
    `silences` are the active silences someone started from this alert ("Silenced by … until …").
    """
    failure = state.failure
    partner = partner_name(failure.messaging_partner)
    consumer = _consumer(failure)
    title = f":rotating_light: *Message to {consumer} failed on {partner or 'an unknown channel'}*"
    menu = silence_menu(state)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=shorten(title, SECTION_LIMIT)), accessory=menu),
        SectionBlock(fields=[MarkdownTextObject(text=shorten(f, FIELD_LIMIT)) for f in _fields(state, business)]),
        _section(content_preview(failure)),
    ]
    line, button, summary = _retry_state(state)
    if line:
        blocks.append(_section(line))
    # What the conversation check found; it may replace the Retry button by a "Retry anyway".
    verdict_blocks, retry_anyway = verdict_messages.alert_blocks(state, button)
    blocks.extend(verdict_blocks)
    if silences:
        known = {business.id: business} if business else {}
        lines = [silence_messages.silenced_line(silence, known) for silence in silences]
        blocks.append(_section("\n".join(lines)))
    if button and not verdict_messages.hides_plain_retry(state):
        blocks.append(ActionsBlock(elements=[retry_button(failure.message_id)]))
    elif retry_anyway is not None:
        blocks.append(ActionsBlock(elements=[retry_anyway]))
    text = f"Partoo message {failure.message_id} to {consumer} failed ({partner or 'unknown channel'})"
    return SlackMessage(text=f"{text}{summary}{verdict_messages.fallback_suffix(state)}", blocks=blocks)


def silence_menu(state: AlertState) -> OverflowMenuElement | None:
    """The overflow menu that silences what this failure is: its business, partner, or cause (once checked)."""
    failure = state.failure
    options = []
    if business_key(failure.business_id) is not None:
        options.append(("Silence this business…", Scope.BUSINESS))
    if (failure.messaging_partner or "").strip():
        options.append(("Silence this partner…", Scope.PARTNER))
    if state.verdict is not None:
        options.append(("Silence this cause…", Scope.CAUSE))
    if not options:
        return None
    return OverflowMenuElement(
        action_id=SILENCE_ACTION_ID,
        options=[Option(text=text, value=f"{scope.value} {failure.message_id}") for text, scope in options],
    )


def retry_button(message_id: int) -> ButtonElement:
    """The button that asks to retry one message; its value is the message id."""
    return ButtonElement(text="Retry", action_id=RETRY_ACTION_ID, value=str(message_id), style="primary")


def partner_name(partner: str | None) -> str | None:
    """The messaging partner as people write it, escaped; None when Partoo did not say."""
    if partner is None or not partner.strip():
        return None
    known = _PARTNERS.get(partner.strip().lower())
    return known if known else _one_line(partner, GROUP_NAME_CHARS)


def content_preview(failure: MessageUpdate) -> str:
    """What the failed message said: text in a quote, a placeholder for media and unknown types."""
    kind = failure.content_type
    if kind in _PLACEHOLDERS:
        return f"_({_PLACEHOLDERS[kind]})_"
    content = (failure.content or "").strip()
    if not content:
        return "_(no content)_"
    if kind == "Text":
        return _quote(content)
    # Unsupported, missing and new types: their content may be a raw URL or markup, so it is not shown.
    shown = _one_line(kind, GROUP_NAME_CHARS) if kind.strip() else "unknown type"
    return f"_(content not shown: {shown})_"


def _fields(state: AlertState, business: Business | None) -> list[str]:
    failure = state.failure
    fields = [
        f"*Business*\n{mrkdwn.business(business, NAME_CHARS) if business else _id(failure.business_id)}",
        f"*Conversation*\n{_id(failure.conversation_id)}",
        f"*Message*\n{_id(failure.message_id)}",
        f"*Sent by*\n{_known(failure.sender_label)}",
        f"*Sent at*\n{_date(failure.date)}",
    ]
    if state.failures > 1:
        fields.append(f"*Failures*\n{state.failures}")
    return fields


def _retry_state(state: AlertState) -> tuple[str | None, bool, str]:
    """The state line, whether to offer the Retry button, and a suffix for the fallback text."""
    by = mrkdwn.user(state.retry_requested_by) if state.retry_requested_by else None
    if state.delivered_at is not None and state.delivered_at >= state.latest_failure_at:
        after = f"{mrkdwn.duration(state.delivered_at - state.failed_at)} after the failure"
        if by:
            attempts = _plural(max(state.retries, 1), "attempt")
            line = f":white_check_mark: Delivered after retry by {by}, after {attempts}, {after}"
        else:
            line = f":white_check_mark: Delivered after a retry outside Slack, {after}"
        return line, False, ": delivered after retry"
    if state.retry_in_progress and state.last_outcome is None:
        requested_at = state.retry_requested_at or state.failed_at
        line = f":hourglass_flowing_sand: Retry requested by {by or 'someone'} {mrkdwn.when(requested_at)}"
        return line, False, ": retry requested"
    if state.retry_in_progress and state.last_outcome is OutcomeKind.ACCEPTED:
        line = f":arrows_counterclockwise: Retried by {by or 'someone'}: Partoo is sending it again."
        return line, False, ": Partoo is sending it again"
    if state.retry_in_progress and state.last_outcome is not None:
        emoji = OUTCOME_EMOJI[state.last_outcome]
        sentence = _outcome_sentence(state.last_outcome, state.last_detail)
        line = f"{emoji} Retry by {by or 'someone'} not done: {sentence}"
        return _with_limit(state, line), state.can_retry, ": retry not accepted"
    if state.failures > 1:
        line = f":x: Failed again after retry by {by}" if by else f":x: Failed {state.failures} times"
        return _with_limit(state, line), state.can_retry, ": failed again"
    if not state.can_retry:
        return _with_limit(state, None), False, ""
    return None, True, ""


def _outcome_sentence(outcome: OutcomeKind, last_detail: str | None) -> str:
    detail = _one_line(last_detail, DETAIL_CHARS) if last_detail else ""
    if outcome is OutcomeKind.REFUSED and detail:
        return f"Partoo refused the retry: {detail}"
    sentence = _GAVE_UP.get(outcome, outcome.sentence)
    return f"{sentence} ({detail})" if detail else sentence


def _with_limit(state: AlertState, line: str | None) -> str | None:
    """The line, followed by why the Retry button is gone once the retries are used up."""
    if state.can_retry:
        return line
    used = (
        f"Retried {_plural(state.retries, 'time')} without success: the Retry button is no longer offered. "
        "Check the conversation in Partoo."
    )
    return f"{line}\n{used}" if line else used


# -- small pieces -------------------------------------------------------------------------------


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, SECTION_LIMIT)))


def _one_line(text: str, limit: int) -> str:
    """Outside text on one line: whitespace collapsed, shortened, then escaped."""
    return escape(shorten(" ".join(text.split()), limit))


def _known(text: str | None) -> str:
    return _one_line(text, NAME_CHARS) if text and text.strip() else "_unknown_"


def _consumer(failure: MessageUpdate) -> str:
    name = failure.consumer_name
    return _one_line(name, NAME_CHARS) if name and name.strip() else "a customer"


def _quote(content: str) -> str:
    lines = shorten(content, PREVIEW_CHARS).splitlines()
    if len(lines) > PREVIEW_LINES:
        lines = [*lines[:PREVIEW_LINES], "…"]
    return "\n".join(f"> {escape(line)}" for line in lines)


def _id(value: int | None) -> str:
    return f"`{value}`" if value is not None else "_unknown_"


def _date(date: datetime | None) -> str:
    if date is None:
        return "_unknown_"
    try:
        return mrkdwn.when(date.timestamp())
    except (ValueError, OverflowError, OSError):
        # Dates at the edges of the calendar (year 1 or 9999) cannot be formatted from a timestamp.
        return escape(date.isoformat())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- webhook health (issue #12) -------------------------------------------------------------------


def webhook_silence(minutes: int, last_at: float | None) -> SlackMessage:
    """The one warning posted when no Partoo webhook arrived for WEBHOOK_SILENCE_ALERT_MINUTES."""
    since = f"the last one arrived {mrkdwn.when(last_at)}" if last_at else "none has arrived since the bot started"
    text = (
        f":warning: No Partoo webhook for {minutes} min ({since}). Failure alerts cannot arrive meanwhile: "
        "check the `message_updated` webhook in Partoo (Settings > Integrations > Webhooks) and that the bot's "
        "`/partoo/webhook` is reachable; `partoo-retry-bot check` shows where Partoo sends it."
    )
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def webhook_back(last_at: float | None) -> SlackMessage:
    """Posted once, when deliveries come back after a silence warning."""
    when = f" (latest {mrkdwn.when(last_at)})" if last_at else ""
    text = f":white_check_mark: Partoo webhooks arrive again{when}: back to normal."
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])

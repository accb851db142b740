"""The modals of the "Retry Partoo messages" message shortcut. Pure: domain values in, slack_sdk views out.

The callback ids below are what Slack sends back: they must never change once the app is installed
(the shortcut's is also declared in app_manifest.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import KnownMessage, MessageRefusal
from bot.rendering import limits, mrkdwn
from bot.rendering.message import OUTCOME_EMOJI, SlackMessage
from bot.retries.refusal_messages import refusal_line

SHORTCUT_CALLBACK_ID = "partoo_retry.retry_from_message"
MODAL_CALLBACK_ID = "partoo_retry.retry_modal"
CHECKBOXES_ACTION_ID = "message_ids"
BLOCK_ID_PREFIX = "message_ids_"
# The "Retry anyway" box: its own input block, so that only a person who ticks it asks for the override.
ANYWAY_BLOCK_ID = "retry_anyway"
ANYWAY_ACTION_ID = "retry_anyway"
ANYWAY_VALUE = "anyway"
ANYWAY_LABEL = "Retry even if the check says it cannot work"

TITLE = "Retry Partoo messages"
OPTIONS_PER_GROUP = limits.CHECKBOX_OPTIONS
OPTION_TEXT = limits.OPTION_TEXT
# The modal lists at most this many ids (three checkbox groups); more is a job for /partoo-retry.
MAX_LISTED = 25

_SHORT_OUTCOME = {
    OutcomeKind.ACCEPTED: "accepted",
    OutcomeKind.REFUSED: "refused",
    OutcomeKind.BAD_KEY: "bad API key",
    OutcomeKind.FORBIDDEN: "not allowed",
    OutcomeKind.NOT_FOUND: "not found",
    OutcomeKind.RATE_LIMITED: "rate limited",
    OutcomeKind.UNAVAILABLE: "Partoo unavailable",
    OutcomeKind.UNKNOWN: "no answer",
}


@dataclass(frozen=True)
class ModalContext:
    """What the submission needs, carried by the modal (private_metadata): where the answers go."""

    channel_id: str
    thread_ts: str
    response_url: str | None = None

    def encode(self) -> str:
        values = {"c": self.channel_id, "t": self.thread_ts, "r": self.response_url}
        text = json.dumps(values, separators=(",", ":"))
        if len(text) > limits.PRIVATE_METADATA:
            # Never expected (Slack's response URLs are ~100 characters): lose the fallback, keep the thread.
            text = json.dumps({"c": self.channel_id, "t": self.thread_ts}, separators=(",", ":"))
        return text

    @classmethod
    def decode(cls, text: str) -> ModalContext | None:
        try:
            values = json.loads(text)
            context = cls(str(values["c"]), str(values["t"]), values.get("r"))
        except (ValueError, KeyError, TypeError):
            return None
        return context if context.channel_id and context.thread_ts else None


def retry_modal(known: Sequence[KnownMessage], context: ModalContext, *, found: int) -> View:
    """The ids found, each with its last known state; those that can be retried are selected."""
    listed = list(known[:MAX_LISTED])
    intro = (
        "Partoo messages found in this message. Those that can be retried are selected; "
        "the outcomes are posted in the message's thread."
    )
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=intro))]
    if found > len(listed):
        blocks.append(
            _context(f"Only the first {len(listed)} of {found} ids are listed: retry the others with `/partoo-retry`.")
        )
    for start in range(0, len(listed), OPTIONS_PER_GROUP):
        group = listed[start : start + OPTIONS_PER_GROUP]
        options = [_option(message) for message in group]
        selected = [option for option, message in zip(options, group, strict=True) if message.retryable]
        label = "Messages" if len(listed) <= OPTIONS_PER_GROUP else f"Messages {start + 1} to {start + len(group)}"
        blocks.append(
            InputBlock(
                block_id=f"{BLOCK_ID_PREFIX}{start // OPTIONS_PER_GROUP}",
                label=PlainTextObject(text=label),
                optional=True,
                element=CheckboxesElement(
                    action_id=CHECKBOXES_ACTION_ID, options=options, initial_options=selected or None
                ),
            )
        )
    blocks.append(_anyway_box())
    return View(
        type="modal",
        callback_id=MODAL_CALLBACK_ID,
        title=PlainTextObject(text=TITLE),
        submit=PlainTextObject(text="Retry selected"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=context.encode(),
        blocks=blocks,
    )


def _anyway_box() -> InputBlock:
    """The explicit override, never ticked by the bot: it skips the conversation check made just before the
    call, and nothing else (a retry under way, awaiting Partoo's report, delivered or capped stays refused)."""
    option = Option(
        value=ANYWAY_VALUE,
        text=PlainTextObject(text=ANYWAY_LABEL),
        description=PlainTextObject(
            text="Skips the conversation check (closed, expired, not linked). Never sends a message twice."
        ),
    )
    return InputBlock(
        block_id=ANYWAY_BLOCK_ID,
        label=PlainTextObject(text="Anyway"),
        optional=True,
        element=CheckboxesElement(action_id=ANYWAY_ACTION_ID, options=[option]),
    )


def no_ids_modal() -> View:
    return notice_modal(
        SlackMessage(
            text="No Partoo message id found in this message.",
            blocks=[
                SectionBlock(text=MarkdownTextObject(text="No Partoo message id found in this message.")),
                _context(
                    "Ids are recognised after the word message (`message 4567`), after `#` (`#4567`), in `code`, "
                    "or as numbers of 6 to 9 digits. Phone numbers, dates and amounts are never taken for ids. "
                    "You can always use `/partoo-retry <id>`."
                ),
            ],
        )
    )


def notice_modal(message: SlackMessage) -> View:
    """A modal that only says something (a refusal, a problem, what was queued): no submit button."""
    blocks = list(message.blocks) or [SectionBlock(text=MarkdownTextObject(text=message.text))]
    return View(type="modal", title=PlainTextObject(text=TITLE), close=PlainTextObject(text="Close"), blocks=blocks)


def submitted(queued: Sequence[int], refused: Sequence[MessageRefusal]) -> SlackMessage:
    """What the modal says after a submission in which admission refused some ids (the same sentences as
    every surface's refusals)."""
    lines = []
    if queued:
        lines.append(f"Queued: {_ids(queued)}. The outcomes are posted in the message's thread.")
    for item in refused[:MAX_LISTED]:
        lines.append(refusal_line(item.message_id, item.refused))
    text = "\n".join(lines) or "Nothing was queued."
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def nothing_selected() -> str:
    return "Select at least one message to retry, or cancel."


def _option(message: KnownMessage) -> Option:
    emoji, phase, who = _phase(message)
    by = f" · by {mrkdwn.user(who)}" if who else ""
    # The longest form that fits Slack's 75 characters: a 19-digit id leaves little room.
    candidates = [f"`{message.message_id}` {emoji} {phase}{by}", f"`{message.message_id}` {emoji} {phase}"]
    text = next((c for c in candidates if len(c) <= OPTION_TEXT), f"`{message.message_id}` {phase}")
    return Option(
        value=str(message.message_id),
        text=MarkdownTextObject(text=text),
        description=PlainTextObject(text=_fit(_details(message), OPTION_TEXT)),
    )


def _phase(message: KnownMessage) -> tuple[str, str, str | None]:
    """An emoji, a few words for where the message stands, and who last asked to retry it."""
    alert, latest = message.alert, message.latest
    requested_by = latest.requested_by if latest else (alert.retry_requested_by if alert else None)
    if message.being_retried:
        return ":hourglass_flowing_sand:", "being retried", requested_by
    if alert is not None:
        if alert.delivered_at is not None:
            return ":white_check_mark:", "delivered", requested_by
        if message.waiting_for_delivery:
            return ":arrows_counterclockwise:", "retried, awaiting delivery", requested_by
        if not alert.can_retry:
            return ":no_entry:", f"retried {alert.retries} times", requested_by
        if alert.failed_again_at is not None:
            return ":rotating_light:", "failed again", requested_by
        if alert.retries and alert.last_outcome is not None:
            return OUTCOME_EMOJI[alert.last_outcome], f"retried: {_SHORT_OUTCOME[alert.last_outcome]}", requested_by
        return ":rotating_light:", "failed", None
    if latest is not None:
        outcome = _SHORT_OUTCOME[latest.outcome] if latest.outcome else "done"
        return OUTCOME_EMOJI[latest.outcome], f"retried: {outcome}", requested_by
    return ":grey_question:", "no failure reported to the bot", None


def _details(message: KnownMessage) -> list[str]:
    """Plain-text facts, most useful first; `_fit` keeps as many as fit."""
    alert, latest = message.alert, message.latest
    parts: list[str] = []
    if alert is not None:
        parts.append(f"failed {_time(alert.latest_failure_at)}")
        partner = alert.failure.messaging_partner
        if partner:
            parts.append(partner[:20])
        if alert.retries:
            parts.append(f"{alert.retries} of {alert.max_retries} retries")
    if latest is not None:
        parts.append(f"asked {_time(latest.requested_at)}")
    if not message.retryable and not message.being_retried and alert is not None and not alert.can_retry:
        parts.insert(0, "check the conversation in Partoo")
    return parts or ["never retried through the bot"]


def _fit(parts: Sequence[str], limit: int) -> str:
    """Join parts with " · ", dropping the last ones that do not fit (never cutting one in half)."""
    text = ""
    for part in parts:
        candidate = f"{text} · {part}" if text else part
        if len(candidate) > limit:
            break
        text = candidate
    return text or parts[0][: limit - 1] + "…"


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%d %b %H:%M UTC")


def _ids(message_ids: Sequence[int]) -> str:
    shown = ", ".join(f"`{message_id}`" for message_id in message_ids[:MAX_LISTED])
    more = len(message_ids) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])

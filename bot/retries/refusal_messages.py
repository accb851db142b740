"""The one sentence per refusal reason (bot.domain.admission), the same on every surface: the alert's
buttons, Retry all, the command and the message shortcut. Each says who retried the message and when."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, MarkdownTextObject, SectionBlock

from bot.domain.admission import Reason, Refused
from bot.domain.retry_requests import MessageRefusal
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage

# The button under `/partoo-retry <ids> anyway`'s answer: the command asks, the button (and its dialog) confirms.
CONFIRM_ANYWAY_ACTION_ID = "partoo_retry.confirm_anyway"

# Refusals listed one per line before "and N more", so that one section stays far below 3,000 characters.
LISTED = 20


def refusal_line(message_id: int, refused: Refused) -> str:
    """Why `message_id` was not retried, with who retried it and when (when anyone did)."""
    by = _by(refused)
    shown = f"`{message_id}`"
    match refused.reason:
        case Reason.UNDER_WAY:
            return f"{shown} is already being retried{by}: the bot will not send it twice."
        case Reason.AWAITING_REPORT:
            return (
                f"{shown} was already retried{by} and Partoo accepted it: the bot waits for Partoo's delivery "
                "report before it may be sent again."
            )
        case Reason.DELIVERED:
            return f"{shown} was delivered{by}: nothing to retry."
        case Reason.CAP_REACHED:
            return f"{shown} was retried the maximum number of times already{by}: check the conversation in Partoo."
    return f"{shown} was not retried{by}."


def refused(refusals: Sequence[MessageRefusal]) -> SlackMessage:
    """For the messages admission refused: one line each, and nothing was sent for them."""
    lines = [f"• {refusal_line(item.message_id, item.refused)}" for item in refusals[:LISTED]]
    if len(refusals) > LISTED:
        lines.append(f"• and {len(refusals) - LISTED} more not retried.")
    text = ":no_entry_sign: Not retried:\n" + "\n".join(lines)
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def _by(refused: Refused) -> str:
    if refused.who is None:
        return ""
    when = f" {mrkdwn.when(refused.when)}" if refused.when is not None else ""
    asked = "asked by" if refused.reason is Reason.UNDER_WAY else "last retried by"
    return f" ({asked} {mrkdwn.user(refused.who)}{when})"


def confirm_anyway(message_ids: Sequence[int]) -> SlackMessage:
    """What `/partoo-retry <ids> anyway` answers: nothing is queued until the person confirms."""
    shown = ", ".join(f"`{message_id}`" for message_id in message_ids)
    text = (
        f":warning: Retry {shown} even if the conversation check says a retry cannot reach the customer? "
        "Nothing is sent until you confirm. A retry under way, awaiting Partoo's report or delivered is "
        "never sent again, anyway or not."
    )
    button = ButtonElement(
        text="Retry anyway",
        action_id=CONFIRM_ANYWAY_ACTION_ID,
        value=" ".join(str(message_id) for message_id in message_ids),
        style="danger",
        confirm=ConfirmObject(
            title="Retry anyway?",
            text="Partoo will accept it, but the message will probably fail again.",
            confirm="Retry anyway",
            deny="Cancel",
        ),
    )
    return SlackMessage(
        text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text)), ActionsBlock(elements=[button])]
    )

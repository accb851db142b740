"""What `/partoo-retry failed …` answers, only to the person: the plan and its buttons (pure builders)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.bulk import HOPELESS, Group
from bot.domain.businesses import Business
from bot.domain.retry_requests import EnqueueResult
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.retries.plan_store import PlanView, TooLarge
from bot.retries.refusal_messages import LISTED, refusal_line

# Stable: buttons already posted carry them.
PLAN_RETRY_ACTION_ID = "partoo_retry.plan_retry"
PLAN_ANYWAY_ACTION_ID = "partoo_retry.plan_anyway"
PLAN_CANCEL_ACTION_ID = "partoo_retry.plan_cancel"
# The first ids a plan lists, so the person sees which messages it means before anything is sent.
FIRST_IDS = 10

GROUP_WORDS: dict[Group, str] = {
    Group.CAN_RETRY: "can be retried",
    Group.CLOSED: "closed conversation",
    Group.SETUP: "channel setup problem",
    Group.WAITING: "already retried and waiting",
    Group.DELIVERED: "delivered since",
    Group.CAP: "at the retry cap",
}


def plan(view: PlanView, businesses: Mapping[str, Business]) -> SlackMessage:
    """How many matched, grouped; the first ids with their business; Retry N that can succeed, Cancel, and
    a separate, confirmed Retry anyway for the closed and setup-problem ones."""
    counts = Counter(item.group for item in view.items)
    heading = f"*{len(view.items)} failed message(s)* {mrkdwn.escape(view.filter_text)}. Nothing is sent yet."
    if not view.items:
        text = f"No failed message matches ({view.filter_text}): nothing to retry."
        return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=mrkdwn.escape(text)))])
    lines = [f"• {counts[group]} {GROUP_WORDS[group]}" for group in Group if counts[group]]
    first = [
        f"`{item.message_id}` · {mrkdwn.business(_business(businesses, item.business_id))} · {GROUP_WORDS[item.group]}"
        for item in view.items[:FIRST_IDS]
    ]
    more = len(view.items) - FIRST_IDS
    if more > 0:
        first.append(f"… and {more} more")
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"{heading}\n" + "\n".join(lines))),
        SectionBlock(text=MarkdownTextObject(text="*First ids*\n" + "\n".join(first))),
    ]
    retryable, hopeless = counts[Group.CAN_RETRY], sum(counts[group] for group in HOPELESS)
    buttons: list[ButtonElement] = []
    if retryable:
        buttons.append(
            ButtonElement(
                text=f"Retry {retryable} that can succeed",
                action_id=PLAN_RETRY_ACTION_ID,
                value=str(view.id),
                style="primary",
            )
        )
    if hopeless:
        buttons.append(
            ButtonElement(
                text=f"Retry {hopeless} anyway…",
                action_id=PLAN_ANYWAY_ACTION_ID,
                value=str(view.id),
                confirm=ConfirmObject(
                    title="Retry anyway?",
                    text=(
                        f"{hopeless} message(s) have a closed conversation or a channel setup problem: Partoo "
                        "will accept them, but they will probably fail again."
                    ),
                    confirm="Retry anyway",
                    deny="Cancel",
                ),
            )
        )
    buttons.append(ButtonElement(text="Cancel", action_id=PLAN_CANCEL_ACTION_ID, value=str(view.id)))
    blocks.append(ActionsBlock(elements=buttons))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"This plan expires {mrkdwn.when(view.expires_at)}. What changes before you click "
                    "(a retry by someone else, a delivery) is left out then, and the progress message says so."
                )
            ]
        )
    )
    text = f"{len(view.items)} failed message(s) {view.filter_text}: {retryable} can be retried."
    return SlackMessage(text=text, blocks=blocks)


def too_large(found: TooLarge) -> SlackMessage:
    text = (
        f":warning: {found.matched} failed messages match ({mrkdwn.escape(found.filter_text)}): more than the "
        f"{found.cap} one plan may hold. Narrow it with `since 30m`, `business <id>`, `partner whatsapp` or "
        "`cause closed`, and ask again."
    )
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def gone(*, expired: bool, state: str) -> SlackMessage:
    """A plan's button that can no longer act: nothing was queued."""
    if expired:
        text = ":hourglass: This plan expired (plans last 10 minutes): nothing was retried. Ask for a new one."
    elif state == "cancelled":
        text = "This plan was cancelled: nothing was retried."
    else:
        text = "This plan was already used: its retries were queued once, and are not queued again."
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def queued(result: EnqueueResult, *, anyway: bool) -> SlackMessage:
    """After Retry: how many were queued, and which changed since the plan (with who retried them, when)."""
    what = "anyway " if anyway else ""
    heading = (
        f":arrows_counterclockwise: Queued {len(result.queued)} {what}retries from the plan; "
        "progress follows in the channel."
    )
    if not result.queued:
        heading = "Nothing was queued from the plan."
    lines = [heading]
    if result.refused:
        lines.append(f"{len(result.refused)} changed since the plan, and are not sent:")
        lines += [f"• {refusal_line(item.message_id, item.refused)}" for item in result.refused[:LISTED]]
        if len(result.refused) > LISTED:
            lines.append(f"• and {len(result.refused) - LISTED} more.")
    text = "\n".join(lines)
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def cancelled() -> SlackMessage:
    text = "Plan cancelled: nothing was retried."
    return SlackMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text))])


def _business(businesses: Mapping[str, Business], business_id: str | None) -> Business | None:
    """The business as named, or by its id alone when its name is unknown (shown as the id)."""
    if not business_id:
        return None
    return businesses.get(business_id) or Business(business_id)

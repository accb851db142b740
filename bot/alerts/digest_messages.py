"""The digest: many failures that arrived together, in one message with a "Retry all" button.

A pure function like the single alerts' (bot.alerts.messages): state in, blocks and fallback text out,
everything Partoo sent escaped here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.alerts import silence_messages
from bot.alerts.messages import FIELD_LIMIT, GROUP_NAME_CHARS, RETRY_ALL_ACTION_ID, SECTION_LIMIT, partner_name
from bot.domain.businesses import Business, business_key
from bot.domain.commands import STOP_ACTION_ID
from bot.domain.lifecycle import DigestState
from bot.domain.message import MessageUpdate
from bot.failures import verdict_messages
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.rendering.mrkdwn import shorten

# Channels and businesses listed by name before "N others".
TOP_GROUPS = 10
# Ids listed inline before "and N more", so that one section stays far below Slack's 3,000 characters.
INLINE_IDS = 20


def digest_message(state: DigestState, businesses: Mapping[str, Business] | None = None) -> SlackMessage:
    """Many failures in one message: counts by channel and business, their ids, and "Retry all".

    `businesses` holds the names the bot knows, by business id as text; the others are shown by id.
    """
    names = businesses or {}
    failures = _unique(state.failures)
    count = len(failures)
    noun = "message" if count == 1 else "messages"
    title = f":rotating_light: *{count} {noun} failed in the last minutes*"
    text = f"{count} Partoo {noun} failed in the last minutes"
    if state.silence is not None:
        sendable = verdict_messages.sendable_count(state, [f.message_id for f in failures])
        summary = silence_messages.summary_title(state.silence, count, sendable, names)
        title, text = f":bell: *{summary}*", summary
    blocks: list[Block] = [
        _section(title),
        ContextBlock(elements=[MarkdownTextObject(text=f"First failure {mrkdwn.when(state.first_at)}")]),
    ]
    if failures:
        by_partner = _top(failures, _partner_key, "unknown channel", "channels")
        # Counted by id (two businesses may share a name), shown by name.
        by_business = _top(
            failures, lambda f: business_key(f.business_id), "unknown business", "businesses", _business(names)
        )
        blocks.append(
            SectionBlock(
                fields=[
                    MarkdownTextObject(text=shorten(f"*By channel*\n{by_partner}", FIELD_LIMIT)),
                    MarkdownTextObject(text=shorten(f"*By business*\n{by_business}", FIELD_LIMIT)),
                ]
            )
        )
        if state.verdicts:
            causes = verdict_messages.causes_text(failures, state.verdicts, names)
            blocks.append(_section(f"*By cause*\n{causes}"))
        blocks.append(_section(f"*Messages*\n{_ids([f.message_id for f in failures])}"))
    if state.retry_requested_by:
        progress = (
            f"Retry all requested by {mrkdwn.user(state.retry_requested_by)}: {state.requested} requested, "
            f"{state.accepted} accepted, {state.refused} not accepted, {state.delivered} delivered, "
            f"{state.failed_again} failed again"
        )
        if skipped := verdict_messages.skipped_text(state):
            progress = f"{progress}, {skipped}"
        if state.stopped:
            progress = f"{progress}, {state.stopped} stopped before they were sent"
        blocks.append(_section(f":arrows_counterclockwise: {progress}"))
        text = f"{text}. {progress}"
        if state.going:
            blocks.append(ActionsBlock(elements=[_stop_button(state.digest_id)]))
    elif failures:
        sendable = verdict_messages.sendable_count(state, [f.message_id for f in failures])
        button = ButtonElement(
            text=verdict_messages.retry_all_label(count, sendable),
            action_id=RETRY_ALL_ACTION_ID,
            value=str(state.digest_id),
            style="primary",
            confirm=_confirmation(count, verdict_messages.retry_all_confirmation_text(count, sendable)),
        )
        blocks.append(ActionsBlock(elements=[button]))
    return SlackMessage(text=text, blocks=blocks)


def _stop_button(digest_id: int) -> ButtonElement:
    """Stop the Retry all: its value is the digest's id; the click is honoured only on this digest's message."""
    return ButtonElement(
        text="Stop",
        action_id=STOP_ACTION_ID,
        value=str(digest_id),
        style="danger",
        confirm=ConfirmObject(
            title="Stop these retries?",
            text="The retries not yet sent are removed; those already on their way to Partoo finish.",
            confirm="Stop",
            deny="Keep going",
        ),
    )


def retry_all_confirmation(count: int) -> dict[str, Any]:
    """The confirmation dialog of the "Retry all" button, as a Block Kit dict."""
    return _confirmation(count).to_dict()


def _confirmation(count: int, checked: str | None = None) -> ConfirmObject:
    noun = "message" if count == 1 else "messages"
    these = "this" if count == 1 else "these"
    return ConfirmObject(
        title=f"Retry all {count} {noun}?",
        text=checked or f"Partoo will send each of {these} {count} {noun} to its customer again.",
        confirm="Retry all",
        deny="Cancel",
    )


def _unique(failures: Sequence[MessageUpdate]) -> list[MessageUpdate]:
    # A message reported twice in one flood is still one message to retry.
    seen: set[int] = set()
    unique: list[MessageUpdate] = []
    for failure in failures:
        if failure.message_id not in seen:
            seen.add(failure.message_id)
            unique.append(failure)
    return unique


def _top(
    failures: Sequence[MessageUpdate],
    key: Callable[[MessageUpdate], Hashable | None],
    unknown: str,
    plural: str,
    shown: Callable[[Hashable], str] = str,
) -> str:
    """`• name: count` lines for the largest groups, biggest first, then how many were left out."""
    counts = Counter(key(failure) for failure in failures)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, str(item[0])))
    lines = [f"• {_group_name(name, unknown, shown)}: {n}" for name, n in ranked[:TOP_GROUPS]]
    rest = ranked[TOP_GROUPS:]
    if rest:
        lines.append(f"• {len(rest)} other {plural}: {sum(n for _, n in rest)}")
    return "\n".join(lines)


def _partner_key(failure: MessageUpdate) -> str | None:
    return partner_name(failure.messaging_partner)


def _group_name(name: Hashable | None, unknown: str, shown: Callable[[Hashable], str]) -> str:
    # Partner names arrive already escaped from `partner_name`; businesses are escaped by `_business`.
    return f"_{unknown}_" if name is None else shown(name)


def _business(names: Mapping[str, Business]) -> Callable[[Hashable], str]:
    def shown(key: Hashable) -> str:
        return mrkdwn.business(names.get(str(key)) or Business(str(key)), GROUP_NAME_CHARS)

    return shown


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, SECTION_LIMIT)))


def _ids(message_ids: Sequence[int]) -> str:
    shown = ", ".join(f"`{message_id}`" for message_id in message_ids[:INLINE_IDS])
    hidden = len(message_ids) - INLINE_IDS
    return f"{shown} and {hidden} more" if hidden > 0 else shown

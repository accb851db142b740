"""What a conversation check found, as Slack shows it: in an alert, a digest, a thread and `status`.

Pure functions like bot.alerts.messages (domain in, blocks out). Issue values Partoo added without notice
are shown as Partoo spells them, escaped. A posted button keeps its `action_id`: never change the ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.businesses import Business, business_key
from bot.domain.lifecycle import AlertState, DigestState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import Verdict, VerdictKind, issue_sentence
from bot.rendering import limits, mrkdwn
from bot.rendering.message import SlackMessage
from bot.rendering.mrkdwn import escape, shorten

RETRY_ANYWAY_ACTION_ID = "partoo_retry.retry_anyway"

TOP_CAUSES = 8
INLINE_IDS = 20

_EMOJI = {
    VerdictKind.CAN_RETRY: ":white_check_mark:",
    VerdictKind.CLOSED: ":lock:",
    VerdictKind.SETUP_PROBLEM: ":wrench:",
    VerdictKind.COULD_NOT_CHECK: ":grey_question:",
}

CHECKING_LINE = (
    ":mag: Checking the conversation in Partoo: the Retry button appears once the bot knows a retry can work."
)


# -- one alert ----------------------------------------------------------------------------------


def verdict_text(verdict: Verdict) -> str:
    """What the check found and what to do next, in mrkdwn (issues named, unknown ones escaped)."""
    lines = [f"{_EMOJI[verdict.kind]} {verdict.sentence}"]
    for issue in verdict.issues:
        known = issue_sentence(issue)
        lines.append(f"• {known}" if known else f"• `{escape(shorten(issue, 100))}` (an issue Partoo reports)")
    if verdict.kind is not VerdictKind.CAN_RETRY:
        lines.append(f"*What to do:* {verdict.next_step}")
    return "\n".join(lines)


def alert_blocks(state: AlertState, offers_retry: bool) -> tuple[list[Block], ButtonElement | None]:
    """Blocks the verdict adds to an alert, and the "Retry anyway" button when it replaces the plain Retry.

    Whether the plain Retry is shown at all is `hides_plain_retry`'s answer.
    """
    if state.delivered_at is not None and state.delivered_at >= state.latest_failure_at:
        return [], None
    blocks: list[Block] = []
    not_confirmed = not_confirmed_line(state)
    if not_confirmed:
        blocks.append(_section(not_confirmed))
    verdict = state.verdict
    if verdict is None:
        if state.check_pending and offers_retry:
            blocks.append(_context(CHECKING_LINE))
        return blocks, None
    checked = f"Checked {mrkdwn.when(verdict.checked_at)}"
    if verdict.kind is VerdictKind.CAN_RETRY:
        blocks.append(_context(f"{verdict_text(verdict)} {checked}"))
    else:
        blocks.extend([_section(verdict_text(verdict)), _context(checked)])
    if offers_retry and verdict.blocks_retry:
        return blocks, retry_anyway_button(state.failure.message_id, verdict)
    return blocks, None


def hides_plain_retry(state: AlertState) -> bool:
    """Whether the alert must not show the plain Retry: checking still, or the verdict says it cannot work."""
    if state.verdict is None:
        return state.check_pending
    return state.verdict.blocks_retry


def fallback_suffix(state: AlertState) -> str:
    """What the notification text adds when the check rules a retry out (plain words, escaped)."""
    verdict = state.verdict
    if verdict is None or not verdict.blocks_retry or state.delivered_at is not None:
        return ""
    return f"; a retry cannot succeed: {escape(shorten(verdict.cause, 120))}"


def retry_anyway_button(message_id: int, verdict: Verdict) -> ButtonElement:
    """The secondary button that sends the retry even though the check says it cannot succeed."""
    return ButtonElement(
        text="Retry anyway",
        action_id=RETRY_ANYWAY_ACTION_ID,
        value=str(message_id),
        confirm=ConfirmObject(
            title="Retry anyway?",
            text=shorten(f"{verdict.sentence} Partoo will accept it, but the message will probably fail again.", 300),
            confirm="Retry anyway",
            deny="Cancel",
        ),
    )


def not_confirmed_line(state: AlertState) -> str | None:
    """ "Not confirmed after 15 min" while an accepted retry has no delivery report (a late one replaces it)."""
    if state.not_confirmed_at is None or not state.retry_in_progress:
        return None
    if state.last_outcome is not OutcomeKind.ACCEPTED or state.not_confirmed_at < (state.retry_requested_at or 0):
        return None
    return f":hourglass: {not_confirmed_sentence(state.not_confirmed_minutes)}"


def not_confirmed_sentence(minutes: int | None) -> str:
    after = f" after {minutes} min" if minutes else ""
    return (
        f"Not confirmed{after}: Partoo accepted the retry but has reported neither delivery nor failure. "
        "Check the conversation in Partoo; a late report still updates this alert."
    )


def not_confirmed_reply(message_ids: Sequence[int], minutes: int) -> SlackMessage:
    """The thread reply when accepted retries got no delivery report in time (one reply for many)."""
    if len(message_ids) == 1:
        text = f":hourglass: Partoo message `{message_ids[0]}`: {not_confirmed_sentence(minutes)}"
    else:
        shown = ", ".join(f"`{message_id}`" for message_id in message_ids[:INLINE_IDS])
        more = f" and {len(message_ids) - INLINE_IDS} more" if len(message_ids) > INLINE_IDS else ""
        text = f":hourglass: {len(message_ids)} Partoo messages ({shown}{more}): {not_confirmed_sentence(minutes)}"
    return SlackMessage(text=text, blocks=[_section(text)])


# -- a digest -----------------------------------------------------------------------------------


def causes_text(
    failures: Sequence[MessageUpdate], verdicts: Mapping[int, Verdict], businesses: Mapping[str, Business] | None = None
) -> str:
    """`• N failures: cause, business B` lines, biggest first (setup problems belong to a business)."""
    counts: Counter[str] = Counter()
    for failure in failures:
        verdict = verdicts.get(failure.message_id)
        counts[_cause(failure, verdict, businesses or {})] += 1
    ranked = counts.most_common()
    lines = [f"• {n} {'failure' if n == 1 else 'failures'}: {cause}" for cause, n in ranked[:TOP_CAUSES]]
    if len(ranked) > TOP_CAUSES:
        lines.append(f"• {sum(n for _, n in ranked[TOP_CAUSES:])} more, of {len(ranked) - TOP_CAUSES} other causes")
    return "\n".join(lines)


def sendable_count(state: DigestState, message_ids: Sequence[int]) -> int:
    """How many of these failures the last checks did not rule out."""
    return sum(1 for message_id in message_ids if not _blocked(state.verdicts.get(message_id)))


def retry_all_label(count: int, sendable: int) -> str:
    if sendable == count:
        return f"Retry all {count}"
    if sendable == 0:
        return "Check again and retry"
    return f"Retry the {sendable} that can work"


def retry_all_confirmation_text(count: int, sendable: int) -> str | None:
    """What the "Retry all" confirmation adds when some failures cannot succeed (None when all can)."""
    if sendable == count:
        return None
    skipped = count - sendable
    return (
        f"The bot checks each conversation again first and sends only those that can succeed: "
        f"{skipped} of {count} cannot, as things stand (closed, expired or a channel setup problem)."
    )


def skipped_text(state: DigestState) -> str | None:
    if not state.skipped:
        return None
    return f"{state.skipped} not sent, since the check says they cannot succeed (see the causes above)"


def _cause(failure: MessageUpdate, verdict: Verdict | None, businesses: Mapping[str, Business]) -> str:
    if verdict is None:
        return "_not checked yet_"
    cause = escape(shorten(verdict.cause, 120))
    key = business_key(failure.business_id)
    if verdict.kind is VerdictKind.SETUP_PROBLEM and key is not None:
        return f"{cause}, business {mrkdwn.business(businesses.get(key) or Business(key))}"
    return cause


def _blocked(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.blocks_retry


# -- status -------------------------------------------------------------------------------------


def status_section(verdict: Verdict | None) -> Block:
    """The latest verdict on the message's conversation, for `/partoo-retry status <id>`."""
    if verdict is None:
        return _context("Conversation not checked: the bot has no check of this message's conversation.")
    return _section(f"*Latest check of the conversation* ({mrkdwn.when(verdict.checked_at)})\n{verdict_text(verdict)}")


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT))])

"""What silences look like in Slack: the line on an alert, and what a silence is called (pure builders).

A silence's value is outside text (a business id or a partner as Partoo spelled them) and its note is what
a person typed: both are escaped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.alerts.messages import GROUP_NAME_CHARS, partner_name
from bot.domain.businesses import Business
from bot.domain.silences import Scope, Silence
from bot.domain.verdict import VerdictKind
from bot.rendering import mrkdwn
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
        return mrkdwn.business(known or Business(silence.value), GROUP_NAME_CHARS)
    if silence.scope is Scope.PARTNER:
        return partner_name(silence.value) or "_unknown channel_"
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

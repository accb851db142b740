"""May this message be retried now? One rule for every way in (pure, no I/O).

Every entry path (the alert's Retry and Retry anyway buttons, a digest's Retry all, `/partoo-retry <ids>`
with or without `anyway`, the message shortcut's submission) asks `admit` inside the transaction that
queues the request, against the rows it has just locked, never against the button the person saw.

    admit(state, asked)
    ├── Refused UNDER_WAY         a request is queued or being sent          (nothing overrides it)
    ├── Refused DELIVERED         Partoo reported the message delivered      (nothing overrides it)
    ├── Refused AWAITING_REPORT   Partoo accepted (or may have received) the latest retry and has not
    │                             reported Success or Failed yet, for up to NOT_CONFIRMED_MINUTES
    │                                                                        (nothing overrides it)
    ├── Refused CAP_REACHED       the alert's retries are used up            (nothing overrides it)
    └── Admitted

Every refusal is a fact about calls already made: a second call while one is under way, accepted, or
delivered is exactly the double send the bot promises never to make, and no button may ask for it.

Whether a retry *can reach the customer* (the conversation check's verdict) is not decided here, from a
stored verdict that may be minutes old: the worker checks the conversation again just before the call
(bot.failures.diagnosis, a verdict made after the retry was asked for) and sends nothing when it says a
retry cannot work ("Not sent", with why). A fix made in Partoo meanwhile is then seen at once. An explicit,
confirmed "anyway" (Retry anyway, `/partoo-retry <id> anyway`) skips that check, and only that check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.domain.outcomes import OutcomeKind
from bot.domain.phases import Phase

if TYPE_CHECKING:
    from bot.domain.lifecycle import AlertState

DELIVERED = "delivered"  # the retry request's `delivery` once Partoo reported Success
# Answers after which Partoo may be sending the message: accepted, or no answer to a call that went out.
MAY_HAVE_SENT = frozenset({OutcomeKind.ACCEPTED, OutcomeKind.UNKNOWN})


class Surface(StrEnum):
    BUTTON = "button"
    RETRY_ALL = "retry_all"
    COMMAND = "command"
    SHORTCUT = "shortcut"


class Reason(StrEnum):
    UNDER_WAY = "under_way"
    AWAITING_REPORT = "awaiting_report"
    DELIVERED = "delivered"
    CAP_REACHED = "cap_reached"


@dataclass(frozen=True)
class LatestRetry:
    """The message's latest retry request, as stored."""

    requested_by: str
    requested_at: float
    active: bool  # queued or running
    outcome: OutcomeKind | None
    finished_at: float | None
    delivery: str | None  # "delivered" or "failed_again" once Partoo reported on it
    not_confirmed_at: float | None


@dataclass(frozen=True)
class StoredState:
    """What is stored about one message: its alert's lifecycle state (if Partoo reported it failed) and
    its latest retry request (if anyone asked)."""

    message_id: int
    alert: AlertState | None = None
    latest: LatestRetry | None = None


@dataclass(frozen=True)
class Asked:
    """What is asked: from which surface, whether as an explicit override, and when."""

    surface: Surface
    now: float
    # An explicit, confirmed override: no refusal above gives way to it (it only skips the worker's check).
    anyway: bool = False
    # How long an accepted retry waits for Partoo's report before another may be asked (NOT_CONFIRMED_MINUTES).
    awaiting_seconds: float = 15 * 60.0


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class Refused:
    """Why not, and who retried the message when (for the sentence every surface shows)."""

    reason: Reason
    who: str | None = None
    when: float | None = None


def admit(state: StoredState, asked: Asked) -> Admitted | Refused:
    """Admit a retry of this message now, or say why not; see the module's docstring for the order."""
    latest = state.latest
    who = latest.requested_by if latest else (state.alert.retry_requested_by if state.alert else None)
    when = latest.requested_at if latest else (state.alert.retry_requested_at if state.alert else None)
    if latest is not None and latest.active:
        return Refused(Reason.UNDER_WAY, who, when)
    if latest is not None and latest.delivery == DELIVERED and not _failed_since(state, latest):
        return Refused(Reason.DELIVERED, who, when)
    if latest is not None and awaiting_report(latest, asked.now, asked.awaiting_seconds):
        return Refused(Reason.AWAITING_REPORT, who, when)
    if state.alert is not None:
        reason = alert_refusal(state.alert)
        if reason is not None:
            return Refused(reason, who, when)
    return Admitted()


def alert_refusal(alert: AlertState) -> Reason | None:
    """The part of the rule an alert's own state decides (bot.domain.lifecycle consults it too)."""
    if alert.phase is Phase.DELIVERED:
        return Reason.DELIVERED
    if alert.retries >= alert.max_retries:
        return Reason.CAP_REACHED
    return None


def awaiting_report(latest: LatestRetry, now: float, awaiting_seconds: float) -> bool:
    """Whether Partoo may be sending the latest retry and has not said how it ended, within the wait."""
    if latest.active or latest.outcome not in MAY_HAVE_SENT or latest.delivery is not None:
        return False
    if latest.not_confirmed_at is not None:
        return False  # the wait is over and the thread said so: another retry may be asked
    return now < (latest.finished_at or latest.requested_at) + awaiting_seconds


def _failed_since(state: StoredState, latest: LatestRetry) -> bool:
    """A failure reported after the delivered retry (a later send failed): the delivery is old news."""
    alert = state.alert
    return alert is not None and alert.phase is not Phase.DELIVERED and alert.latest_failure_at > latest.requested_at

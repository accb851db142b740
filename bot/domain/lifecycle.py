"""A failed message's life: its states and the transitions between them (pure, no I/O).

Everything that happens to a failed message is an event; `apply(state, event)` is the only place that
decides what the event changes. Stores load a state, apply an event and write the result back; message
builders only read states.

    Failed ──> FAILED ──RetryRequested──> RETRY_REQUESTED ──SendingStarted──> SENDING
                 ^                              ^                                │
                 │                              └──Answered (transient, again)───┤
                 │                                 or SendingWithdrawn (not sent)│
                 │                                                               │ Answered (final)
                 │                                                               v  or TakenOver
                 │   Failed (after a retry)                           ANSWERED (accepted, refused,
                 ├──────────────────────────── FAILED_AGAIN <───────── not found, unknown, ...)
                 │                                  ^                            │
                 │                                  └─────── Failed ─────────────┤
                 │                                                               │ NotConfirmed
                 │                                                               v  (accepted only)
                 └── Delivered, from any state ──> DELIVERED             NOT_CONFIRMED

A retry is "in progress" from its request until a later failure or delivery: while it is, the alert shows
who asked and what Partoo answered. Whether another retry may be asked is bot.domain.admission's rule,
applied by every way in before it queues a request; `apply(RetryRequested)` consults the same rule, so an
alert can never show a retry the rule would have refused (from DELIVERED, past the cap).

What a Failed report means depends on when it arrives, because Partoo's payload has no event id and Partoo
redelivers a delivery its receiver answered with a 5xx: a redelivery and a real second failure can be byte for
byte the same. Only a retry *call* can make the message fail again, so:
- a Failed while a retry is requested but not yet sent (RETRY_REQUESTED) is the failure that retry answers,
  arriving again: not news, nothing changes, and no Retry button comes back (the queued retry is the answer);
- a Failed once Partoo answered the call (ANSWERED, NOT_CONFIRMED) is "failed again", and the Retry button
  comes back within the limit. The webhook intake's dedupe key counts the calls made for the same reason.
When a report *arrived* decides, not when the alerter applies it: a report stored before the latest retry's
call was answered (queued, or in flight: the bot cannot know when Partoo received the call, and a failure
that call caused can only follow Partoo's receipt of it) says `before_latest_answer`, and is the failure that
retry answers, in whatever phase it is applied. The cost of that caution: a failure Partoo reports faster than
its own answer reaches the bot shows only as "not confirmed" after NOT_CONFIRMED_MINUTES, never as a second
send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bot.domain import admission
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.phases import RETRY_PHASES as RETRY_PHASES
from bot.domain.phases import Phase as Phase
from bot.domain.silences import Silence
from bot.domain.verdict import Verdict

MAX_RETRIES = 5


@dataclass(frozen=True)
class AlertState:
    """Everything one alert shows: the failure and where its retries stand.

    `recorded_phase` is what `apply` decided; a state built without it (older rows, tests of the
    renderers) gets its phase derived from the times, the way the bot read them before phases existed.
    """

    failure: MessageUpdate
    failed_at: float
    failures: int
    retry_requested_by: str | None
    retry_requested_at: float | None
    retries: int
    last_outcome: OutcomeKind | None
    last_detail: str | None
    delivered_at: float | None
    max_retries: int = MAX_RETRIES
    failed_again_at: float | None = None
    # "command", "button" (a click on the alert) or "retry_all" (a click on a digest).
    retry_source: str | None = None
    sending_since: float | None = None
    not_confirmed_at: float | None = None
    recorded_phase: Phase | None = None
    # The latest check of the conversation (None: not checked yet, or checks are off).
    verdict: Verdict | None = None
    # Whether a check is expected (checks on) while `verdict` is None: the alert then says it is checking.
    check_pending: bool = False
    # How long an accepted retry waits for Success or Failed before it shows as not confirmed (for the text).
    not_confirmed_minutes: int | None = None

    @property
    def phase(self) -> Phase:
        return phase(self)

    @property
    def latest_failure_at(self) -> float:
        """When the latest Failed report arrived."""
        return self.failed_at if self.failed_again_at is None else max(self.failed_at, self.failed_again_at)

    @property
    def retry_in_progress(self) -> bool:
        """Whether a retry was requested after the latest failure (so it is what the alert reports)."""
        return self.phase in RETRY_PHASES

    @property
    def can_retry(self) -> bool:
        return self.retries < self.max_retries

    @property
    def retries_left(self) -> int:
        return retries_left(self)


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """Partoo reported the message Failed (a first failure, or one after a retry)."""

    update: MessageUpdate
    at: float
    # The report arrived before Partoo answered the message's latest retry call (or while it was queued).
    before_latest_answer: bool = False


@dataclass(frozen=True)
class Delivered:
    """Partoo reported the message Success."""

    at: float


@dataclass(frozen=True)
class RetryRequested:
    """Someone asked for a retry: `source` is "command", "button" or "retry_all"."""

    by: str
    source: str
    at: float


@dataclass(frozen=True)
class SendingStarted:
    """A worker opened an attempt: Partoo is being called."""

    at: float


@dataclass(frozen=True)
class SendingWithdrawn:
    """A worker gave its attempt back before calling Partoo (its call slot had passed): not sent yet."""

    at: float


@dataclass(frozen=True)
class Answered:
    """Partoo answered an attempt. A transient answer (`final=False`) means the request waits for another."""

    outcome: OutcomeKind
    detail: str | None
    at: float
    final: bool = True


@dataclass(frozen=True)
class TakenOver:
    """The worker calling Partoo vanished; whoever took the request over closed it without calling again."""

    detail: str
    at: float


@dataclass(frozen=True)
class NotConfirmed:
    """An accepted retry got no delivery report in time (the timer that sends it belongs to diagnosis)."""

    at: float


Event = Failed | Delivered | RetryRequested | SendingStarted | SendingWithdrawn | Answered | TakenOver | NotConfirmed


# -- transitions ----------------------------------------------------------------------------------


def open_alert(event: Failed) -> AlertState:
    """The state of a message's first reported failure."""
    return AlertState(
        failure=event.update,
        failed_at=event.at,
        failures=1,
        retry_requested_by=None,
        retry_requested_at=None,
        retries=0,
        last_outcome=None,
        last_detail=None,
        delivered_at=None,
        recorded_phase=Phase.FAILED,
    )


def apply(state: AlertState, event: Event) -> AlertState:
    """The state after `event`; the same state when the event changes nothing."""
    current = phase(state)
    match event:
        case Failed(update=update, at=at, before_latest_answer=before_latest_answer):
            if current is Phase.RETRY_REQUESTED or (before_latest_answer and state.retries > 0):
                return state  # the failure the latest retry answers, reported again: see the docstring
            # A failure after a retry call is "failed again"; the Retry button comes back (within the limit).
            return replace(
                state,
                failure=update,
                failures=state.failures + 1,
                failed_again_at=at,
                delivered_at=None,
                sending_since=None,
                recorded_phase=Phase.FAILED_AGAIN if state.retries > 0 else Phase.FAILED,
            )
        case Delivered(at=at):
            return replace(state, delivered_at=at, sending_since=None, recorded_phase=Phase.DELIVERED)
        case RetryRequested(by=by, source=source, at=at):
            if admission.alert_refusal(state) is not None:
                return state  # admission refused it first; a request slipped past it changes no alert
            return replace(
                state,
                retry_requested_by=by,
                retry_requested_at=at,
                retry_source=source,
                retries=state.retries + 1,
                last_outcome=None,
                last_detail=None,
                sending_since=None,
                not_confirmed_at=None,
                recorded_phase=Phase.RETRY_REQUESTED,
            )
        case SendingStarted(at=at):
            if current not in (Phase.RETRY_REQUESTED, Phase.SENDING):
                return state  # a failure or delivery reported meanwhile stays the news
            return replace(state, sending_since=at, recorded_phase=Phase.SENDING)
        case Answered(final=False) | SendingWithdrawn():
            if current is not Phase.SENDING:
                return state
            return replace(state, sending_since=None, recorded_phase=Phase.RETRY_REQUESTED)
        case Answered(outcome=outcome, detail=detail):
            return _answered(state, current, outcome, detail)
        case TakenOver(detail=detail):
            return _answered(state, current, OutcomeKind.UNKNOWN, detail)
        case NotConfirmed(at=at):
            if current is not Phase.ANSWERED or state.last_outcome is not OutcomeKind.ACCEPTED:
                return state
            return replace(state, not_confirmed_at=at, recorded_phase=Phase.NOT_CONFIRMED)
    raise TypeError(f"not a lifecycle event: {event!r}")


def _answered(state: AlertState, current: Phase, outcome: OutcomeKind, detail: str | None) -> AlertState:
    # The request's outcome is always kept; it becomes the alert's news only while its retry is the latest
    # thing that happened (a failure or delivery reported before the answer arrived stays on top).
    news = Phase.ANSWERED if current in (Phase.RETRY_REQUESTED, Phase.SENDING) else current
    return replace(state, last_outcome=outcome, last_detail=detail or None, sending_since=None, recorded_phase=news)


# -- reading a state ------------------------------------------------------------------------------


def phase(state: AlertState) -> Phase:
    """The phase `apply` recorded, or for a state built without one, the phase its times tell."""
    if state.recorded_phase is not None:
        return state.recorded_phase
    if state.delivered_at is not None and state.delivered_at >= state.latest_failure_at:
        return Phase.DELIVERED
    if state.retry_requested_at is not None and state.retry_requested_at >= state.latest_failure_at:
        if state.last_outcome is None:
            return Phase.SENDING if state.sending_since is not None else Phase.RETRY_REQUESTED
        if state.last_outcome is OutcomeKind.ACCEPTED and state.not_confirmed_at is not None:
            return Phase.NOT_CONFIRMED
        return Phase.ANSWERED
    if state.failed_again_at is not None and state.retries > 0:
        return Phase.FAILED_AGAIN
    return Phase.FAILED


def retries_left(state: AlertState) -> int:
    return max(state.max_retries - state.retries, 0)


@dataclass(frozen=True)
class DigestState:
    """Many failures grouped in one message, with the progress of its "Retry all"."""

    digest_id: int
    failures: Sequence[MessageUpdate]
    first_at: float
    retry_requested_by: str | None
    requested: int = 0
    accepted: int = 0
    refused: int = 0
    delivered: int = 0
    failed_again: int = 0
    # Requests of the Retry all that the conversation check kept from being sent (counted apart from refused).
    skipped: int = 0
    # Requests of the Retry all removed by Stop before they were sent (counted apart from refused).
    stopped: int = 0
    # Requests of the Retry all not finished yet (queued or with a worker): while any are, it shows Stop.
    going: int = 0
    # The latest verdict on each failure's conversation, by message id (missing: not checked).
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)
    # The silence whose held-back failures this digest sums up, once it ended (None: a flood's digest).
    silence: Silence | None = None


# What became of a message after a retry, as the retry request records it.
DELIVERED = "delivered"
FAILED_AGAIN = "failed_again"

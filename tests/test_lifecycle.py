"""The failed message's state machine, pure: every phase against every event, and what each keeps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.domain.lifecycle import (
    MAX_RETRIES,
    AlertState,
    Answered,
    Delivered,
    Event,
    Failed,
    NotConfirmed,
    Phase,
    RetryRequested,
    SendingStarted,
    SendingWithdrawn,
    TakenOver,
    apply,
    open_alert,
    phase,
    retries_left,
)
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind

UPDATE = MessageUpdate(
    message_id=4567,
    conversation_id=991,
    status="Failed",
    is_deleted=False,
    sender_type="User",
    sender_label="Jane",
    content_type="Text",
    content="hello",
    date=None,
    messaging_partner="Whatsapp",
    consumer_name="John",
    business_id=42,
    org_id=1,
)

FAILED = Failed(UPDATE, 100.0)
RETRY = RetryRequested("U1", "button", 110.0)
SENDING = SendingStarted(111.0)
ACCEPTED = Answered(OutcomeKind.ACCEPTED, "", 112.0)
REFUSED = Answered(OutcomeKind.REFUSED, "bad", 112.0)
TRANSIENT = Answered(OutcomeKind.UNAVAILABLE, "503", 112.0, final=False)
TAKEN_OVER = TakenOver("the worker died", 113.0)
NOT_CONFIRMED = NotConfirmed(900.0)
DELIVERED = Delivered(1000.0)
FAILED_AGAIN = Failed(UPDATE, 1000.0)


def run(*events: Event) -> AlertState:
    state = open_alert(FAILED)
    for event in events:
        state = apply(state, event)
    return state


# One way to reach each phase.
REACH: dict[Phase, tuple[Event, ...]] = {
    Phase.FAILED: (),
    Phase.RETRY_REQUESTED: (RETRY,),
    Phase.SENDING: (RETRY, SENDING),
    Phase.ANSWERED: (RETRY, SENDING, ACCEPTED),
    Phase.NOT_CONFIRMED: (RETRY, SENDING, ACCEPTED, NOT_CONFIRMED),
    Phase.DELIVERED: (RETRY, SENDING, ACCEPTED, DELIVERED),
    Phase.FAILED_AGAIN: (RETRY, SENDING, ACCEPTED, FAILED_AGAIN),
}

EVENTS: dict[str, Event] = {
    "failed": FAILED_AGAIN,
    "delivered": DELIVERED,
    "retry": RetryRequested("U2", "command", 2000.0),
    "sending": SendingStarted(2001.0),
    "accepted": Answered(OutcomeKind.ACCEPTED, "", 2002.0),
    "transient": TRANSIENT,
    "withdrawn": SendingWithdrawn(2002.0),
    "taken_over": TakenOver("gone", 2003.0),
    "not_confirmed": NotConfirmed(2004.0),
}

# phase before → event → phase after. Failed goes to FAILED_AGAIN once a retry call was made (SENDING or later);
# while a retry is only requested it is the failure that retry answers (issue 19: it used to re-arm the button).
# A retry is never requested from DELIVERED: admission refuses it, and the lifecycle consults the same rule.
F, RR, S, A, NC, D, FA = (
    Phase.FAILED,
    Phase.RETRY_REQUESTED,
    Phase.SENDING,
    Phase.ANSWERED,
    Phase.NOT_CONFIRMED,
    Phase.DELIVERED,
    Phase.FAILED_AGAIN,
)
TABLE: dict[Phase, dict[str, Phase]] = {
    F: {"failed": F, "delivered": D, "retry": RR, "sending": F, "accepted": F, "transient": F},
    RR: {"failed": RR, "delivered": D, "retry": RR, "sending": S, "accepted": A, "transient": RR},
    S: {"failed": FA, "delivered": D, "retry": RR, "sending": S, "accepted": A, "transient": RR},
    A: {"failed": FA, "delivered": D, "retry": RR, "sending": A, "accepted": A, "transient": A},
    NC: {"failed": FA, "delivered": D, "retry": RR, "sending": NC, "accepted": NC, "transient": NC},
    D: {"failed": FA, "delivered": D, "retry": D, "sending": D, "accepted": D, "transient": D},
    FA: {"failed": FA, "delivered": D, "retry": RR, "sending": FA, "accepted": FA, "transient": FA},
}
for _before, _row in TABLE.items():
    _row["taken_over"] = _row["accepted"]
    _row["not_confirmed"] = NC if _before is A else _before
    _row["withdrawn"] = RR if _before is S else _before  # given back unsent: requested again, nothing else


@pytest.mark.parametrize("before", list(Phase))
@pytest.mark.parametrize("name", list(EVENTS))
def test_every_phase_against_every_event(before: Phase, name: str) -> None:
    state = run(*REACH[before])
    assert state.phase is before

    after = apply(state, EVENTS[name])

    assert after.phase is TABLE[before][name]


def test_each_phase_is_reachable_and_the_table_is_complete() -> None:
    assert set(REACH) == set(Phase)
    assert all(set(row) == set(EVENTS) for row in TABLE.values())


def test_a_failure_after_a_retry_is_failed_again_and_offers_the_button() -> None:
    state = run(RETRY, SENDING, ACCEPTED, FAILED_AGAIN)

    assert state.phase is Phase.FAILED_AGAIN
    assert state.failures == 2
    assert not state.retry_in_progress
    assert state.can_retry
    assert state.retries == 1
    assert state.retries_left == MAX_RETRIES - 1


def test_a_repeat_failure_without_a_retry_is_still_failed() -> None:
    state = run(FAILED_AGAIN)
    assert state.phase is Phase.FAILED
    assert state.failures == 2


def test_a_retry_request_remembers_who_from_where_and_clears_the_last_answer() -> None:
    state = run(RETRY, SENDING, REFUSED, RetryRequested("U9", "retry_all", 500.0))

    assert (state.retry_requested_by, state.retry_source, state.retry_requested_at) == ("U9", "retry_all", 500.0)
    assert state.last_outcome is None
    assert state.last_detail is None
    assert state.retries == 2
    assert state.retry_in_progress


def test_an_answer_is_kept_and_ends_sending() -> None:
    state = run(RETRY, SENDING, REFUSED)
    assert state.last_outcome is OutcomeKind.REFUSED
    assert state.last_detail == "bad"
    assert state.sending_since is None
    assert state.retry_in_progress  # the refusal is the news, and the button is offered again


def test_a_takeover_ends_in_unknown() -> None:
    state = run(RETRY, SENDING, TAKEN_OVER)
    assert state.last_outcome is OutcomeKind.UNKNOWN
    assert state.last_detail == "the worker died"


def test_a_late_answer_after_a_new_failure_keeps_the_failure_on_top() -> None:
    state = run(RETRY, SENDING, FAILED_AGAIN, ACCEPTED)
    assert state.phase is Phase.FAILED_AGAIN
    assert state.last_outcome is OutcomeKind.ACCEPTED


def test_not_confirmed_applies_only_to_an_accepted_retry() -> None:
    assert run(RETRY, SENDING, REFUSED, NOT_CONFIRMED).phase is Phase.ANSWERED
    assert run(RETRY, SENDING, ACCEPTED, NOT_CONFIRMED).not_confirmed_at == NOT_CONFIRMED.at


def test_the_retry_limit() -> None:
    state = open_alert(FAILED)
    for n in range(MAX_RETRIES):
        assert state.can_retry
        state = apply(apply(state, RetryRequested("U1", "button", 200.0 + n)), FAILED_AGAIN)
    assert not state.can_retry
    assert retries_left(state) == 0


def test_an_event_that_changes_nothing_returns_an_equal_state() -> None:
    state = run()
    assert apply(state, SENDING) == state
    assert apply(state, TRANSIENT) == state


@pytest.mark.parametrize("target", list(Phase))
def test_a_state_without_a_recorded_phase_derives_the_same_phase_from_its_times(target: Phase) -> None:
    state = run(*REACH[target])
    assert phase(replace(state, recorded_phase=None)) is target


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(TypeError):
        apply(run(), "Failed")  # type: ignore[arg-type]

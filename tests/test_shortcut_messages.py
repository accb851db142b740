"""The message shortcut's modal, built without any server: every state renders within Slack's limits."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.admission import Reason, Refused
from bot.domain.commands import MAX_MESSAGE_ID
from bot.domain.lifecycle import AlertState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import KnownMessage, MessageRefusal, RequestView
from bot.rendering import limits
from bot.retries.shortcut_messages import (
    ANYWAY_BLOCK_ID,
    BLOCK_ID_PREFIX,
    CHECKBOXES_ACTION_ID,
    MAX_LISTED,
    ModalContext,
    no_ids_modal,
    retry_modal,
    submitted,
)
from bot.slack.shortcut import message_text, selected_ids

NOW = 1_732_790_000.0
CONTEXT = ModalContext("C0123ABCD", "1732790000.000200", "https://hooks.slack.com/actions/T1/2/abc")
LONG_USER = "W0123456789ABCDEFGH"


def failure(message_id: int, partner: str | None = "Whatsapp") -> MessageUpdate:
    return MessageUpdate(
        message_id=message_id,
        conversation_id=991,
        status="Failed",
        is_deleted=False,
        sender_type="User",
        sender_label="Jane",
        content_type="Text",
        content="hello",
        date=datetime(2026, 11, 28, 14, 2, tzinfo=UTC),
        messaging_partner=partner,
        consumer_name="John",
        business_id=42,
        org_id=7,
    )


def alert(message_id: int, **changes: object) -> AlertState:
    values: dict[str, object] = {
        "failure": failure(message_id),
        "failed_at": NOW,
        "failures": 1,
        "retry_requested_by": None,
        "retry_requested_at": None,
        "retries": 0,
        "last_outcome": None,
        "last_detail": None,
        "delivered_at": None,
    }
    values.update(changes)
    return AlertState(**values)  # type: ignore[arg-type]


def request(
    message_id: int, *, finished: bool = True, outcome: OutcomeKind | None = OutcomeKind.ACCEPTED
) -> RequestView:
    return RequestView(
        id=1,
        batch_id=1,
        message_id=message_id,
        requested_by=LONG_USER,
        requested_at=NOW + 60,
        state="done" if finished else "running",
        attempts=1,
        first_attempt_at=NOW + 61,
        in_flight_since=None,
        outcome=outcome if finished else None,
        http_status=200,
        detail=None,
        finished_at=NOW + 62 if finished else None,
    )


def every_state(message_id: int) -> list[KnownMessage]:
    retried = {"retry_requested_by": LONG_USER, "retry_requested_at": NOW + 60, "retries": 1}
    return [
        KnownMessage(message_id),
        KnownMessage(message_id, alert=alert(message_id)),
        KnownMessage(message_id, alert=alert(message_id, **retried), latest=request(message_id, finished=False)),
        KnownMessage(message_id, alert=alert(message_id, **retried, last_outcome=OutcomeKind.ACCEPTED)),
        KnownMessage(message_id, alert=alert(message_id, **retried, last_outcome=OutcomeKind.REFUSED)),
        KnownMessage(message_id, alert=alert(message_id, **retried, failed_again_at=NOW + 600, failures=2)),
        KnownMessage(message_id, alert=alert(message_id, **retried, delivered_at=NOW + 300)),
        KnownMessage(message_id, alert=alert(message_id, **{**retried, "retries": 5}, failed_again_at=NOW + 900)),
        KnownMessage(message_id, latest=request(message_id, outcome=OutcomeKind.NOT_FOUND)),
        KnownMessage(message_id, latest=request(message_id, finished=False)),
    ]


def rendered_options(known: list[KnownMessage]) -> list[dict[str, object]]:
    view = retry_modal(known, CONTEXT, found=len(known)).to_dict()  # slack_sdk validates Slack's limits here
    groups = [block for block in view["blocks"] if block.get("block_id", "").startswith(BLOCK_ID_PREFIX)]
    return [option for block in groups for option in block["element"]["options"]]


def test_every_state_fits_an_option_even_with_the_longest_ids() -> None:
    for message_id in (1, MAX_MESSAGE_ID):
        for option in rendered_options(every_state(message_id)):
            text, description = option["text"], option["description"]
            assert isinstance(text, dict) and isinstance(description, dict)
            assert len(text["text"]) <= limits.OPTION_TEXT
            assert len(description["text"]) <= limits.OPTION_TEXT
            assert f"`{message_id}`" in text["text"]


def test_only_messages_that_can_be_retried_are_preselected() -> None:
    states = every_state(4567)
    view = retry_modal(states, CONTEXT, found=len(states)).to_dict()

    selected = [states.index(state) for state in states if state.retryable]
    initial = [
        option["value"]
        for block in view["blocks"]
        if block.get("block_id", "").startswith(BLOCK_ID_PREFIX)
        for option in block["element"].get("initial_options", [])
    ]
    # never retried, failed, retry refused, failed again; not: running, waiting for delivery, delivered, exhausted
    assert selected == [0, 1, 4, 5, 8]
    assert len(initial) == len(selected)


@given(st.lists(st.integers(min_value=1, max_value=MAX_MESSAGE_ID), min_size=1, max_size=60, unique=True))
def test_any_number_of_ids_makes_a_valid_modal(message_ids: list[int]) -> None:
    known = [KnownMessage(message_id) for message_id in message_ids]
    view = retry_modal(known[:MAX_LISTED], CONTEXT, found=len(known)).to_dict()

    groups = [block for block in view["blocks"] if block.get("block_id", "").startswith(BLOCK_ID_PREFIX)]
    assert all(len(block["element"]["options"]) <= limits.CHECKBOX_OPTIONS for block in groups)
    assert sum(len(block["element"]["options"]) for block in groups) == min(len(known), MAX_LISTED)
    assert len(view["private_metadata"]) <= limits.PRIVATE_METADATA


def test_the_anyway_box_is_offered_and_never_ticked_by_the_bot() -> None:
    view = retry_modal(every_state(4567), CONTEXT, found=9).to_dict()

    (box,) = [block for block in view["blocks"] if block.get("block_id") == ANYWAY_BLOCK_ID]
    assert box["optional"] is True
    assert "cannot work" in box["element"]["options"][0]["text"]["text"]
    assert "initial_options" not in box["element"]  # an override is asked for, never pre-selected


def test_the_modal_context_survives_the_round_trip_and_garbage_is_refused() -> None:
    assert ModalContext.decode(CONTEXT.encode()) == CONTEXT
    assert ModalContext.decode(ModalContext("C1", "1.2").encode()) == ModalContext("C1", "1.2")
    for garbage in ("", "{", "[]", '{"c": "C1"}', '{"c": "", "t": "1.2"}'):
        assert ModalContext.decode(garbage) is None
    huge = ModalContext("C1", "1.2", "https://x/" + "a" * 4000)
    assert len(huge.encode()) <= limits.PRIVATE_METADATA
    assert ModalContext.decode(huge.encode()) == ModalContext("C1", "1.2")


def test_no_ids_and_answers_render() -> None:
    assert "submit" not in no_ids_modal().to_dict()
    active = MessageRefusal(4568, Refused(Reason.UNDER_WAY, LONG_USER, NOW))
    answer = submitted([4567], [active])
    assert "`4567`" in answer.text and f"<@{LONG_USER}>" in answer.text and "will not send it twice" in answer.text


def test_only_offered_ids_come_back_from_a_submission() -> None:
    view = {
        "state": {
            "values": {
                f"{BLOCK_ID_PREFIX}0": {
                    CHECKBOXES_ACTION_ID: {"selected_options": [{"value": "4567"}, {"value": "4567"}, {"value": "x"}]}
                },
                f"{BLOCK_ID_PREFIX}1": {CHECKBOXES_ACTION_ID: {"selected_options": [{"value": "0"}, {"value": "99"}]}},
                "other": {"a": {"selected_options": [{"value": "1234"}]}},
            }
        }
    }
    assert selected_ids(view) == (4567, 99)
    assert selected_ids({}) == ()


def test_forwarded_messages_and_shared_files_are_read() -> None:
    message = {
        "text": "see below",
        "attachments": [{"text": "message 4567 failed", "fallback": "[fwd]"}],
        "files": [{"title": "Email", "plain_text": "Message ID: 4568"}],
    }
    text = message_text(message)
    assert "message 4567" in text and "Message ID: 4568" in text

"""`/partoo-retry failed …`: the filter's grammar and the plan's grouping, as pure functions (issue 21 item 1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.admission import Asked, LatestRetry, StoredState, Surface
from bot.domain.bulk import Failure, Filter, Group, group_of
from bot.domain.lifecycle import AlertState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import Verdict, VerdictKind
from bot.retries.commands import Failed, UsageError, parse_command

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failed", Filter()),
        ("FAILED since 2h", Filter(since_seconds=7200.0)),
        ("failed since 30m partner WhatsApp", Filter(since_seconds=1800.0, partner="whatsapp")),
        ("failed business 1187 cause closed", Filter(business="1187", cause="closed")),
        (
            "failed since 1d business 5f3a9c0e cause setup partner facebook",
            Filter(86400.0, None, "5f3a9c0e", "facebook", "setup"),
        ),
        ("failed since 2026-12-05T09:30", Filter(since_seconds=None, since_at=NOW - 2.5 * 3600)),
        ("failed since 2026-12-05T10:30+01:00", Filter(since_seconds=None, since_at=NOW - 2.5 * 3600)),
    ],
)
def test_filters_parse(text: str, expected: Filter) -> None:
    assert parse_command(text, now=NOW) == Failed(expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("failed since", "needs a value"),
        ("failed since 2h since 3h", "given twice"),
        ("failed since 0h", "at most 31 days"),
        ("failed since 32d", "at most 31 days"),
        ("failed since 99999999999h", "a span"),
        ("failed since yesterday", "a span"),
        ("failed since 2027-01-01", "not in the future"),
        ("failed partner what$app", "not a messaging partner"),
        ("failed business <!channel>", "not a business id"),
        ("failed cause broken", "`cause` is one of"),
        ("failed 4567", "`failed` takes"),
        ("failed <@U1> x", "`failed` takes"),
    ],
)
def test_bad_filters_say_what_is_wrong(text: str, problem: str) -> None:
    parsed = parse_command(text, now=NOW)
    assert isinstance(parsed, UsageError), parsed
    assert problem in parsed.problem
    assert "<" not in parsed.problem and "`@" not in parsed.problem  # a mention typed in comes back escaped


def test_the_filter_in_words() -> None:
    assert Filter(3600.0, None, "42", "whatsapp", "closed").words() == (
        "in the last 1 hour, business 42, partner whatsapp, cause closed"
    )
    assert Filter(None, NOW).words() == "since 2026-12-05 12:00 UTC"


def test_a_filter_matches_business_partner_cause_and_time() -> None:
    closed = Verdict(VerdictKind.CLOSED, checked_at=NOW)
    failure = Failure(1, NOW - 60, "42", "Whatsapp", closed)
    start = NOW - 3600
    assert Filter(partner="whatsapp", business="42", cause="closed").matches(failure, start)
    assert not Filter(partner="facebook").matches(failure, start)
    assert not Filter(business="43").matches(failure, start)
    assert not Filter(cause="setup").matches(failure, start)
    assert not Filter().matches(failure, NOW)  # failed before the start
    assert Filter(cause="unchecked").matches(Failure(2, NOW, None, None, None), start)


def _alert(**changes: object) -> AlertState:
    update = MessageUpdate(
        message_id=7,
        conversation_id=991,
        status="Failed",
        is_deleted=False,
        sender_type="User",
        sender_label="Jane",
        content_type="Text",
        content="Hello",
        date=None,
        messaging_partner="Whatsapp",
        consumer_name="John",
        business_id=42,
        org_id=7,
    )
    values: dict[str, object] = {
        "failure": update,
        "failed_at": NOW - 600,
        "failures": 1,
        "retry_requested_by": None,
        "retry_requested_at": None,
        "retries": 0,
        "last_outcome": None,
        "last_detail": None,
        "delivered_at": None,
    }
    return AlertState(**{**values, **changes})  # type: ignore[arg-type]


def _latest(**changes: object) -> LatestRetry:
    values: dict[str, object] = {
        "requested_by": "U9",
        "requested_at": NOW - 60,
        "active": False,
        "outcome": OutcomeKind.ACCEPTED,
        "finished_at": NOW - 59,
        "delivery": None,
        "not_confirmed_at": None,
    }
    return LatestRetry(**{**values, **changes})  # type: ignore[arg-type]


ASKED = Asked(Surface.COMMAND, now=NOW)
CLOSED = Verdict(VerdictKind.CLOSED, checked_at=NOW)
SETUP = Verdict(VerdictKind.SETUP_PROBLEM, checked_at=NOW, issues=("facebook_no_page_linked",))
OPEN = Verdict(VerdictKind.CAN_RETRY, checked_at=NOW)


# The model, written by hand: what the bot knows of a message → the group a plan shows it in.
@pytest.mark.parametrize(
    ("state", "verdict", "group"),
    [
        (StoredState(7, _alert()), None, Group.CAN_RETRY),
        (StoredState(7, _alert()), OPEN, Group.CAN_RETRY),
        (StoredState(7, _alert()), CLOSED, Group.CLOSED),
        (StoredState(7, _alert()), SETUP, Group.SETUP),
        (StoredState(7, _alert(), _latest(active=True, outcome=None, finished_at=None)), OPEN, Group.WAITING),
        (StoredState(7, _alert(), _latest()), OPEN, Group.WAITING),  # accepted, awaiting Partoo's report
        (StoredState(7, _alert(), _latest(delivery="delivered")), OPEN, Group.DELIVERED),
        (StoredState(7, _alert(retries=3, max_retries=3)), OPEN, Group.CAP),
        # Refusals come first: a closed conversation already under way is "waiting", not "closed".
        (StoredState(7, _alert(), _latest(active=True, outcome=None, finished_at=None)), CLOSED, Group.WAITING),
        (StoredState(7, _alert(retries=3, max_retries=3)), CLOSED, Group.CAP),
    ],
)
def test_grouping_follows_admission_then_the_verdict(state: StoredState, verdict: Verdict | None, group: Group) -> None:
    assert group_of(state, verdict, ASKED) is group

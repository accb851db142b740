"""Verdicts, Partoo's conversation answers and their rendering, without any server."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bot.alerts.digest_messages import digest_message
from bot.alerts.messages import RETRY_ACTION_ID, alert_message
from bot.config import ConfigError, load_settings
from bot.domain.lifecycle import AlertState, DigestState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import (
    ConversationSnapshot,
    Verdict,
    VerdictKind,
    could_not_check,
    verdict_for,
    verdict_from_json,
    verdict_to_json,
)
from bot.failures import verdict_messages
from bot.platform.conversations import CheckOutcome, parse_conversation
from bot.platform.partoo import PartooClient

NOW = 1_700_000_000.0


def snapshot(**fields: object) -> ConversationSnapshot:
    values: dict[str, object] = {
        "conversation_id": 991,
        "status": "Open",
        "is_expired": False,
        "is_solved": False,
        "messaging_partner": "Whatsapp",
        "business_id": "42",
        "issues": (),
    }
    values.update(fields)
    return ConversationSnapshot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({}, VerdictKind.CAN_RETRY),
        ({"status": "Closed"}, VerdictKind.CLOSED),
        ({"is_expired": True}, VerdictKind.CLOSED),
        ({"issues": ("facebook_no_page_linked",)}, VerdictKind.SETUP_PROBLEM),
        ({"status": "Closed", "issues": ("x",)}, VerdictKind.SETUP_PROBLEM),
        ({"status": "Snoozed"}, VerdictKind.COULD_NOT_CHECK),
        ({"status": None}, VerdictKind.COULD_NOT_CHECK),
    ],
)
def test_the_verdict_follows_the_conversation(fields: dict[str, object], kind: VerdictKind) -> None:
    verdict = verdict_for(snapshot(**fields), NOW)

    assert verdict.kind is kind
    assert verdict.blocks_retry is (kind in (VerdictKind.CLOSED, VerdictKind.SETUP_PROBLEM))


def test_each_verdict_says_what_to_do_next() -> None:
    whatsapp = verdict_for(snapshot(status="Closed"), NOW)
    facebook = verdict_for(snapshot(status="Closed", is_expired=True, messaging_partner="Facebook"), NOW)
    setup = verdict_for(snapshot(issues=("facebook_no_page_linked", "brand_new")), NOW)

    assert "24-hour WhatsApp window" in whatsapp.sentence
    assert "template message" in whatsapp.next_step
    assert "expired" in facebook.sentence
    assert "template" not in facebook.next_step
    assert setup.cause == "Facebook page not linked, brand_new"
    assert "Fix the channel's setup in Partoo first" in setup.summary
    assert "retry is allowed" in could_not_check("Partoo answered HTTP 503", NOW).sentence


def test_a_verdict_survives_the_database_and_garbage_reads_as_none() -> None:
    verdict = verdict_for(snapshot(issues=("a", "b")), NOW)

    assert verdict_from_json(verdict_to_json(verdict)) == verdict
    assert verdict_from_json(None) is None
    assert verdict_from_json('{"kind": "no-such-kind", "checked_at": 1}') is None
    assert verdict_from_json("not json") is None


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"not json", b'{"status": 3}', b'{"status": "Open", "issues": "x"}'],
)
def test_bodies_that_are_not_a_conversation_are_refused(body: bytes) -> None:
    assert parse_conversation(body, 1) is None


def test_a_conversation_is_read_leniently() -> None:
    body = {
        "status": "Open",
        "is_expired": "yes",  # not a boolean: not trusted
        "business": {"id": 42},
        "messaging_partner": "Whatsapp",
        "issues": ["a", "a", {"nested": 1}, 7, "  b  c "],
    }

    parsed = parse_conversation(json.dumps(body).encode(), 991)

    assert parsed is not None
    assert parsed.is_expired is False
    assert parsed.business_id == "42"
    assert parsed.issues == ("a", "7", "b c")


def _handler(status: int, body: object = None, delay: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.path == "/v2/conversations/991"
        assert request.headers["x-APIKey"] == "key"
        if delay:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(status, json=body, headers={"Retry-After": "7"})

    return handle


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (_handler(200, {"status": "Closed", "issues": []}), CheckOutcome.FOUND),
        (_handler(200, ["not", "an", "object"]), CheckOutcome.UNREADABLE),
        (_handler(404, {"error": {"json": "Resource not found"}}), CheckOutcome.NOT_FOUND),
        (_handler(403, {}), CheckOutcome.REFUSED),
        (_handler(429, {}), CheckOutcome.RATE_LIMITED),
        (_handler(503, {}), CheckOutcome.UNAVAILABLE),
        (_handler(200, delay=True), CheckOutcome.UNAVAILABLE),
    ],
)
async def test_get_conversation_classifies_every_answer(
    handler: Callable[[httpx.Request], httpx.Response], outcome: CheckOutcome
) -> None:
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        PartooClient(base_url="https://partoo.test/v2", api_key="key", http=http) as partoo,
    ):
        answer = await partoo.get_conversation(991)

    assert answer.outcome is outcome
    assert (answer.snapshot is not None) is (outcome is CheckOutcome.FOUND)
    if outcome is CheckOutcome.RATE_LIMITED:
        assert answer.retry_after == 7.0
    if outcome is not CheckOutcome.FOUND:
        assert answer.reason


# -- rendering ----------------------------------------------------------------------------------


def failure(message_id: int = 4567, business_id: int = 42) -> MessageUpdate:
    return MessageUpdate(
        message_id=message_id,
        conversation_id=991,
        status="Failed",
        is_deleted=False,
        sender_type="User",
        sender_label="Jane",
        content_type="Text",
        content="Hello",
        date=None,
        messaging_partner="Facebook",
        consumer_name="John",
        business_id=business_id,
        org_id=7,
    )


def alert_state(verdict: Verdict | None = None, **fields: object) -> AlertState:
    values: dict[str, object] = {
        "failure": failure(),
        "failed_at": NOW,
        "failures": 1,
        "retry_requested_by": None,
        "retry_requested_at": None,
        "retries": 0,
        "last_outcome": None,
        "last_detail": None,
        "delivered_at": None,
        "verdict": verdict,
    }
    values.update(fields)
    return AlertState(**values)  # type: ignore[arg-type]


def action_ids(blocks: list[dict[str, object]]) -> list[str]:
    return [
        str(element["action_id"])
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]  # type: ignore[attr-defined]
    ]


def test_a_blocked_alert_offers_retry_anyway_behind_a_confirmation() -> None:
    verdict = verdict_for(snapshot(issues=("<!here> odd",)), NOW)

    message = alert_message(alert_state(verdict)).as_kwargs()

    assert action_ids(message["blocks"]) == [verdict_messages.RETRY_ANYWAY_ACTION_ID]
    text = json.dumps(message["blocks"])
    assert "&lt;!here&gt; odd" in text
    assert "<!here>" not in text
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["confirm"]["confirm"]["text"] == "Retry anyway"
    assert message["text"].endswith("; a retry cannot succeed: &lt;!here&gt; odd")


def test_an_alert_being_checked_has_no_button_and_an_unchecked_one_keeps_retry() -> None:
    assert action_ids(alert_message(alert_state(check_pending=True)).as_kwargs()["blocks"]) == []
    assert action_ids(alert_message(alert_state()).as_kwargs()["blocks"]) == [RETRY_ACTION_ID]
    unsure = could_not_check("Partoo answered HTTP 503", NOW)
    assert action_ids(alert_message(alert_state(unsure)).as_kwargs()["blocks"]) == [RETRY_ACTION_ID]


def test_not_confirmed_shows_only_while_the_accepted_retry_waits() -> None:
    waiting = alert_state(
        retry_requested_by="U1",
        retry_requested_at=NOW + 10,
        retries=1,
        last_outcome=OutcomeKind.ACCEPTED,
        not_confirmed_at=NOW + 1000,
        not_confirmed_minutes=15,
    )

    assert "Not confirmed after 15 min" in alert_message(waiting).text + json.dumps(
        alert_message(waiting).as_kwargs()["blocks"]
    )
    delivered = alert_message(alert_state(**{**waiting.__dict__, "delivered_at": NOW + 2000}))
    assert "Not confirmed" not in json.dumps(delivered.as_kwargs()["blocks"])


def test_a_digest_groups_failures_by_cause_and_offers_only_what_can_work() -> None:
    failures = [failure(n, business_id=7) for n in range(1, 6)] + [failure(10, business_id=8)]
    setup = verdict_for(snapshot(issues=("facebook_no_page_linked",)), NOW)
    verdicts = {n: setup for n in range(1, 6)}
    verdicts[10] = verdict_for(snapshot(), NOW)
    state = DigestState(digest_id=3, failures=failures, first_at=NOW, retry_requested_by=None, verdicts=verdicts)

    blocks = digest_message(state).as_kwargs()["blocks"]

    text = json.dumps(blocks)
    assert "5 failures: Facebook page not linked, business `7`" in text
    assert "1 failure: can be retried" in text
    button = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert button["text"]["text"] == "Retry the 1 that can work"
    assert "5 of 6 cannot" in button["confirm"]["text"]["text"]


# -- configuration ------------------------------------------------------------------------------

REQUIRED = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PARTOO_API_KEY": "k"}


def test_checks_are_on_by_default_and_can_be_tuned_or_turned_off() -> None:
    defaults = load_settings(REQUIRED)
    tuned = load_settings(
        {
            **REQUIRED,
            "CONVERSATION_CHECK": "false",
            "CONVERSATION_CHECK_CACHE_SECONDS": "5",
            "NOT_CONFIRMED_MINUTES": "30",
        }
    )

    assert (defaults.conversation_check, defaults.conversation_check_cache_seconds) == (True, 60)
    assert defaults.not_confirmed_minutes == 15
    assert (tuned.conversation_check, tuned.conversation_check_cache_seconds, tuned.not_confirmed_minutes) == (
        False,
        5,
        30,
    )


def test_bad_check_settings_are_all_reported() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(
            {
                **REQUIRED,
                "CONVERSATION_CHECK": "maybe",
                "CONVERSATION_CHECK_CACHE_SECONDS": "-1",
                "NOT_CONFIRMED_MINUTES": "0",
            }
        )

    problems = " ".join(error.value.problems)
    assert all(
        name in problems
        for name in ("CONVERSATION_CHECK ", "CONVERSATION_CHECK_CACHE_SECONDS", "NOT_CONFIRMED_MINUTES")
    )


def test_many_unconfirmed_retries_in_one_thread_get_one_reply() -> None:
    one = verdict_messages.not_confirmed_reply([4567], 15)
    many = verdict_messages.not_confirmed_reply(list(range(1, 31)), 15)

    assert one.text.startswith(":hourglass: Partoo message `4567`: Not confirmed after 15 min")
    assert many.text.startswith(":hourglass: 30 Partoo messages (`1`, `2`")
    assert "and 10 more): Not confirmed after 15 min" in many.text

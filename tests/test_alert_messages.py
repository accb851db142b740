"""Failure alerts and digests: what each state shows, escaping of everything Partoo sends, Slack's limits."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alerts.digest_messages import digest_message, retry_all_confirmation
from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID, alert_message
from bot.domain.lifecycle import AlertState, DigestState
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.rendering.message import SlackMessage

FAILED_AT = 1_700_000_000.0
USER = "U0RETRIER"
# Outside text that would ping, mention or hide a link if it reached mrkdwn unescaped.
HOSTILE = ["<!channel>", "<@U1>", "<https://x|y>", "&"]
BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def failure(**fields: Any) -> MessageUpdate:
    values: dict[str, Any] = {
        "message_id": 123,
        "conversation_id": 456,
        "status": "Failed",
        "is_deleted": False,
        "sender_type": "User",
        "sender_label": "Jane Doe",
        "content_type": "Text",
        "content": "Your order is ready",
        "date": datetime(2023, 1, 31, 16, 22, 17, tzinfo=UTC),
        "messaging_partner": "Whatsapp",
        "consumer_name": "John Doe",
        "business_id": 789,
        "org_id": 1,
    }
    values.update(fields)
    return MessageUpdate(**values)


def state(**fields: Any) -> AlertState:
    values: dict[str, Any] = {
        "failure": failure(),
        "failed_at": FAILED_AT,
        "failures": 1,
        "retry_requested_by": None,
        "retry_requested_at": None,
        "retries": 0,
        "last_outcome": None,
        "last_detail": None,
        "delivered_at": None,
    }
    values.update(fields)
    return AlertState(**values)


def requested(**fields: Any) -> AlertState:
    """A retry asked for by USER a minute after the failure."""
    values: dict[str, Any] = {"retry_requested_by": USER, "retry_requested_at": FAILED_AT + 60, "retries": 1}
    values.update(fields)
    return state(**values)


def rendered(message: SlackMessage) -> dict[str, Any]:
    """The message as sent to Slack; slack_sdk checks its limits while rendering."""
    kwargs = message.as_kwargs()
    json.dumps(kwargs)
    return kwargs


def texts(message: SlackMessage) -> list[str]:
    """Every mrkdwn or plain text in the message, fallback text first."""
    found = [message.text]

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(rendered(message)["blocks"])
    return found


def everything(message: SlackMessage) -> str:
    return "\n".join(texts(message))


def buttons(message: SlackMessage) -> list[dict[str, Any]]:
    return [
        element for block in rendered(message)["blocks"] if block["type"] == "actions" for element in block["elements"]
    ]


def retry_buttons(message: SlackMessage) -> list[dict[str, Any]]:
    return [button for button in buttons(message) if button["action_id"] == RETRY_ACTION_ID]


def assert_within_limits(message: SlackMessage) -> None:
    kwargs = rendered(message)
    assert kwargs["text"]
    assert len(kwargs["text"]) <= 4000
    blocks = kwargs["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            for field in block.get("fields", []):
                assert len(field["text"]) <= 2000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element["action_id"]) <= 255
                assert len(element.get("value", "")) <= 2000


def assert_escaped(rendered_text: str) -> None:
    assert "<!channel>" not in rendered_text
    assert "<@U1>" not in rendered_text
    assert "<https://x|y>" not in rendered_text
    assert not BARE_AMPERSAND.search(rendered_text)


# The action ids are part of every posted button


def test_action_ids_never_change() -> None:
    assert RETRY_ACTION_ID == "partoo_retry.retry"
    assert RETRY_ALL_ACTION_ID == "partoo_retry.retry_all"


# A first failure


def test_a_first_failure_offers_the_retry_button() -> None:
    message = alert_message(state())

    (button,) = buttons(message)
    assert button["action_id"] == RETRY_ACTION_ID
    assert button["value"] == "123"
    assert button["style"] == "primary"
    assert button["text"]["text"] == "Retry"
    assert "confirm" not in button
    body = everything(message)
    assert ":rotating_light: *Message to John Doe failed on WhatsApp*" in body
    assert "> Your order is ready" in body
    assert "Failures" not in body


def test_the_fields_say_where_the_message_belongs() -> None:
    fields = [field["text"] for field in rendered(alert_message(state()))["blocks"][1]["fields"]]

    assert fields[:4] == [
        "*Business*\n`789`",
        "*Conversation*\n`456`",
        "*Message*\n`123`",
        "*Sent by*\nJane Doe",
    ]
    assert fields[4].startswith("*Sent at*\n<!date^1675182137^")
    assert len(fields) == 5


def test_unknown_fields_say_so() -> None:
    update = failure(conversation_id=None, business_id=None, sender_label=" ", date=None)

    body = everything(alert_message(state(failure=update)))

    assert "*Business*\n_unknown_" in body
    assert "*Conversation*\n_unknown_" in body
    assert "*Sent by*\n_unknown_" in body
    assert "*Sent at*\n_unknown_" in body


@pytest.mark.parametrize("year", [1, 9999])
def test_dates_at_the_edges_of_the_calendar_still_render(year: int) -> None:
    update = failure(date=datetime(year, 12 if year == 9999 else 1, 31 if year == 9999 else 1, tzinfo=UTC))

    assert f"{year}" in everything(alert_message(state(failure=update)))


def test_the_fallback_text_is_meaningful() -> None:
    assert alert_message(state()).text == "Partoo message 123 to John Doe failed (WhatsApp)"


@pytest.mark.parametrize(
    ("partner", "shown"),
    [
        ("Google", "Google"),
        ("Facebook", "Facebook"),
        ("Instagram", "Instagram"),
        ("SMS", "SMS"),
        ("Whatsapp", "WhatsApp"),
        ("whatsapp", "WhatsApp"),
        ("Telegram", "Telegram"),
        (None, "an unknown channel"),
        ("", "an unknown channel"),
    ],
)
def test_the_messaging_partner_is_named(partner: str | None, shown: str) -> None:
    message = alert_message(state(failure=failure(messaging_partner=partner)))

    assert f"failed on {shown}*" in everything(message)


def test_an_unknown_partner_and_consumer_in_the_fallback_text() -> None:
    message = alert_message(state(failure=failure(messaging_partner=None, consumer_name=None)))

    assert message.text == "Partoo message 123 to a customer failed (unknown channel)"


def test_repeated_failures_are_counted() -> None:
    body = everything(alert_message(state(failures=3)))

    assert "*Failures*\n3" in body


# Content previews


@pytest.mark.parametrize(
    ("content_type", "content", "preview"),
    [
        ("Image", "https://cdn.example.com/a.png", "_(an image)_"),
        ("Video", None, "_(a video)_"),
        ("Audio", None, "_(an audio message)_"),
        ("Document", "https://cdn.example.com/a.pdf", "_(a document)_"),
        ("IgStoryReply", "x", "_(a reply to an Instagram story)_"),
        ("IgStoryMention", "x", "_(a mention in an Instagram story)_"),
        ("Unsupported", "raw stuff", "_(content not shown: Unsupported)_"),
        ("Hologram", "raw stuff", "_(content not shown: Hologram)_"),
        ("<!channel>", "raw stuff", "_(content not shown: &lt;!channel&gt;)_"),
        ("Text", None, "_(no content)_"),
        ("Text", "", "_(no content)_"),
        ("Text", "   \n ", "_(no content)_"),
        ("", None, "_(no content)_"),
        ("", "raw stuff", "_(content not shown: unknown type)_"),
        ("Unsupported", None, "_(no content)_"),
    ],
)
def test_content_previews(content_type: str, content: str | None, preview: str) -> None:
    update = failure(content_type=content_type, content=content)

    blocks = rendered(alert_message(state(failure=update)))["blocks"]

    assert blocks[2]["text"]["text"] == preview


def test_text_is_quoted_line_by_line() -> None:
    update = failure(content="Hello\nyour order is ready")

    blocks = rendered(alert_message(state(failure=update)))["blocks"]

    assert blocks[2]["text"]["text"] == "> Hello\n> your order is ready"


def test_long_text_is_shortened() -> None:
    update = failure(content="word " * 2_000)

    preview = rendered(alert_message(state(failure=update)))["blocks"][2]["text"]["text"]

    assert len(preview) < 260
    assert preview.endswith("…")


def test_many_lines_are_cut() -> None:
    update = failure(content="\n".join(str(n) for n in range(100)))

    preview = rendered(alert_message(state(failure=update)))["blocks"][2]["text"]["text"]

    assert preview.count("\n") <= 9
    assert preview.endswith("> …")


# The retry states


def test_a_requested_retry_shows_who_and_when_without_a_button() -> None:
    message = alert_message(requested())

    assert not buttons(message)
    assert f":hourglass_flowing_sand: Retry requested by <@{USER}> <!date^{int(FAILED_AT + 60)}^" in everything(message)


def test_an_accepted_retry_waits_for_delivery_without_a_button() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.ACCEPTED))

    assert not buttons(message)
    assert f":arrows_counterclockwise: Retried by <@{USER}>: Partoo is sending it again." in everything(message)


def test_a_refused_retry_shows_why_and_offers_the_button_again() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.REFUSED, last_detail="message too old"))

    body = everything(message)
    assert "Partoo refused the retry: message too old" in body
    assert f"<@{USER}>" in body
    assert len(retry_buttons(message)) == 1


@pytest.mark.parametrize(
    "outcome", [kind for kind in OutcomeKind if kind not in (OutcomeKind.ACCEPTED, OutcomeKind.REFUSED)]
)
def test_other_unaccepted_outcomes_show_their_sentence_and_the_button(outcome: OutcomeKind) -> None:
    message = alert_message(requested(last_outcome=outcome, last_detail="HTTP 503"))

    body = everything(message)
    assert "(HTTP 503)" in body
    if outcome.is_final:
        assert outcome.sentence in body
    else:
        assert "gave up" in body
    assert len(retry_buttons(message)) == 1


def test_unaccepted_retries_stop_offering_the_button_at_the_limit() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.REFUSED, retries=5))

    assert not buttons(message)
    assert "Retried 5 times without success: the Retry button is no longer offered." in everything(message)


def test_delivery_after_a_retry_says_how_long_it_took() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.ACCEPTED, retries=2, delivered_at=FAILED_AT + 30 * 60))

    assert not buttons(message)
    assert (
        f":white_check_mark: Delivered after retry by <@{USER}>, after 2 attempts, 30 min after the failure"
        in everything(message)
    )
    assert "delivered" in message.text


def test_delivery_after_one_attempt_is_singular() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.ACCEPTED, delivered_at=FAILED_AT + 90))

    assert "after 1 attempt, 1 min 30 s after the failure" in everything(message)


def test_a_failure_after_a_retry_offers_the_button_again() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.ACCEPTED, failures=2, failed_again_at=FAILED_AT + 120))

    body = everything(message)
    assert f":x: Failed again after retry by <@{USER}>" in body
    assert "*Failures*\n2" in body
    assert len(retry_buttons(message)) == 1


def test_a_failure_reported_before_partoo_answered_still_counts_as_failed_again() -> None:
    # Partoo's Failed webhook can arrive before the bot has recorded Partoo's 200.
    message = alert_message(requested(last_outcome=None, failures=2, failed_again_at=FAILED_AT + 61))

    assert ":x: Failed again" in everything(message)
    assert len(retry_buttons(message)) == 1


def test_a_new_retry_after_failing_again_is_in_progress() -> None:
    message = alert_message(
        requested(failures=2, failed_again_at=FAILED_AT + 120, retry_requested_at=FAILED_AT + 180, retries=2)
    )

    assert not buttons(message)
    assert "Retry requested by" in everything(message)


def test_failed_again_too_often_stops_offering_the_button() -> None:
    message = alert_message(
        requested(last_outcome=OutcomeKind.ACCEPTED, retries=5, failures=6, failed_again_at=FAILED_AT + 3600)
    )

    body = everything(message)
    assert not buttons(message)
    assert ":x: Failed again after retry by" in body
    assert "Retried 5 times without success: the Retry button is no longer offered." in body
    assert "Check the conversation in Partoo." in body


def test_a_caller_that_moves_failed_at_gets_the_same_answer() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.ACCEPTED, failures=2, failed_at=FAILED_AT + 120))

    assert ":x: Failed again after retry by" in everything(message)


def test_the_max_retries_is_configurable() -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.REFUSED, retries=1, max_retries=1))

    assert not buttons(message)
    assert "Retried 1 time without success" in everything(message)


def test_failed_twice_without_any_retry_by_the_bot() -> None:
    message = alert_message(state(failures=2, failed_again_at=FAILED_AT + 10))

    assert ":x: Failed 2 times" in everything(message)
    assert len(retry_buttons(message)) == 1


def test_every_state_has_a_fallback_text() -> None:
    for alert in [
        state(),
        requested(),
        requested(last_outcome=OutcomeKind.ACCEPTED),
        requested(last_outcome=OutcomeKind.REFUSED),
        requested(delivered_at=FAILED_AT + 100),
        requested(failures=2, failed_again_at=FAILED_AT + 100),
    ]:
        assert alert_message(alert).text.startswith("Partoo message 123 to John Doe failed")


# Escaping


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("field", ["consumer_name", "sender_label", "content", "messaging_partner"])
def test_text_from_partoo_is_escaped(field: str, hostile: str) -> None:
    message = alert_message(state(failure=failure(**{field: f"Bob {hostile} Smith"})))

    for text in texts(message):
        assert_escaped(text)
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in everything(message)


def test_a_consumer_named_channel_pings_no_one() -> None:
    message = alert_message(state(failure=failure(consumer_name="<!channel>")))

    assert message.text == "Partoo message 123 to &lt;!channel&gt; failed (WhatsApp)"
    assert "Message to &lt;!channel&gt; failed" in everything(message)


def test_an_ampersand_is_escaped_once() -> None:
    message = alert_message(state(failure=failure(consumer_name="Smith & Sons")))

    assert "Smith &amp; Sons" in message.text
    assert "&amp;amp;" not in everything(message)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_partoos_detail_is_escaped(hostile: str) -> None:
    message = alert_message(requested(last_outcome=OutcomeKind.REFUSED, last_detail=f"bad {hostile} id"))

    for text in texts(message):
        assert_escaped(text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_digest_partners_are_escaped(hostile: str) -> None:
    failures = [failure(message_id=n, messaging_partner=f"X{hostile}") for n in range(3)]

    message = digest_message(digest(failures=failures))

    for text in texts(message):
        assert_escaped(text)


def test_shortening_never_splits_an_entity() -> None:
    update = failure(consumer_name="&" * 500, sender_label="<" * 500, content="<" * 10_000)

    body = everything(alert_message(state(failure=update)))

    for entity_start in ("&am…", "&a…", "&l…", "&lt…"):
        assert entity_start not in body


# Limits


def test_a_huge_content_stays_within_limits() -> None:
    update = failure(
        content="<!channel> " * 1_000,
        consumer_name="N" * 10_000,
        sender_label="L&" * 5_000,
        messaging_partner="P<" * 5_000,
    )
    for alert in [
        state(failure=update),
        requested(failure=update, last_outcome=OutcomeKind.REFUSED, last_detail="<&>" * 10_000),
        requested(failure=update, last_outcome=OutcomeKind.UNKNOWN, last_detail="d" * 10_000, retries=9),
        requested(failure=update, delivered_at=FAILED_AT + 10**9),
    ]:
        message = alert_message(alert)
        assert_within_limits(message)
        assert len(message.text) < 400


def test_unsupported_content_of_any_size_stays_within_limits() -> None:
    update = failure(content_type="T" * 10_000, content="x" * 10_000)

    assert_within_limits(alert_message(state(failure=update)))


# Digests


def digest(**fields: Any) -> DigestState:
    values: dict[str, Any] = {
        "digest_id": 42,
        "failures": [failure(message_id=n) for n in range(1, 4)],
        "first_at": FAILED_AT,
        "retry_requested_by": None,
    }
    values.update(fields)
    return DigestState(**values)


def test_a_digest_offers_retry_all_with_a_confirmation() -> None:
    message = digest_message(digest())

    (button,) = buttons(message)
    assert button["action_id"] == RETRY_ALL_ACTION_ID
    assert button["value"] == "42"
    assert button["style"] == "primary"
    assert button["text"]["text"] == "Retry all 3"
    assert button["confirm"] == retry_all_confirmation(3)
    body = everything(message)
    assert ":rotating_light: *3 messages failed in the last minutes*" in body
    assert "`1`, `2`, `3`" in body
    assert message.text == "3 Partoo messages failed in the last minutes"


def test_the_confirmation_dialog() -> None:
    confirmation = retry_all_confirmation(12)

    assert confirmation["title"]["text"] == "Retry all 12 messages?"
    assert confirmation["text"]["text"] == "Partoo will send each of these 12 messages to its customer again."
    assert confirmation["confirm"]["text"] == "Retry all"
    assert confirmation["deny"]["text"] == "Cancel"


def test_digest_counts_by_partner_and_business_biggest_first() -> None:
    failures = (
        [failure(message_id=n, messaging_partner="SMS", business_id=1) for n in range(2)]
        + [failure(message_id=n, messaging_partner="Whatsapp", business_id=2) for n in range(10, 15)]
        + [failure(message_id=99, messaging_partner=None, business_id=None)]
    )

    fields = rendered(digest_message(digest(failures=failures)))["blocks"][2]["fields"]

    assert fields[0]["text"] == "*By channel*\n• WhatsApp: 5\n• SMS: 2\n• _unknown channel_: 1"
    assert fields[1]["text"] == "*By business*\n• `2`: 5\n• `1`: 2\n• _unknown business_: 1"


def test_digest_shows_the_top_ten_groups_then_the_rest() -> None:
    failures = [failure(message_id=n, business_id=n % 15, messaging_partner=f"P{n % 12}") for n in range(150)]

    fields = rendered(digest_message(digest(failures=failures)))["blocks"][2]["fields"]

    assert fields[0]["text"].count("\n•") == 11
    assert fields[0]["text"].endswith("• 2 other channels: 24")
    assert fields[1]["text"].endswith("• 5 other businesses: 50")


def test_a_message_reported_twice_counts_once() -> None:
    failures = [failure(message_id=1), failure(message_id=2), failure(message_id=1)]

    message = digest_message(digest(failures=failures))

    assert "*2 messages failed" in everything(message)
    assert buttons(message)[0]["text"]["text"] == "Retry all 2"


def test_a_digest_of_500_failures_stays_within_limits() -> None:
    failures = [
        failure(
            message_id=10**12 + n,
            messaging_partner=f"<!channel>{'&' * 100}{n}",
            business_id=n,
            consumer_name="<" * 1000,
            content="x" * 10_000,
        )
        for n in range(500)
    ]

    message = digest_message(digest(failures=failures))

    assert_within_limits(message)
    body = everything(message)
    assert "and 480 more" in body
    assert "*500 messages failed" in body
    assert buttons(message)[0]["text"]["text"] == "Retry all 500"


def test_retry_all_requested_shows_progress_without_a_button() -> None:
    message = digest_message(
        digest(retry_requested_by=USER, requested=3, accepted=2, refused=1, delivered=1, failed_again=1)
    )

    assert not buttons(message)
    assert (
        f"Retry all requested by <@{USER}>: 3 requested, 2 accepted, 1 not accepted, "
        "1 delivered, 1 failed again" in everything(message)
    )
    assert "Retry all requested by" in message.text


def test_a_single_failure_digest_is_singular() -> None:
    message = digest_message(digest(failures=[failure()]))

    assert "*1 message failed" in everything(message)
    assert retry_all_confirmation(1)["title"]["text"] == "Retry all 1 message?"


def test_an_empty_digest_offers_nothing() -> None:
    message = digest_message(digest(failures=[]))

    assert not buttons(message)
    assert_within_limits(message)


def test_digest_state_is_immutable() -> None:
    state = digest()

    assert replace(state, requested=1).requested == 1
    with pytest.raises(AttributeError):
        state.requested = 2  # type: ignore[misc]

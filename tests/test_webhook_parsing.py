"""Parsing Partoo's webhook deliveries: strict with what the bot acts on, lenient with the rest."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.message import MessageUpdate, is_failure_alert
from bot.failures.webhook_events import MAX_BODY_BYTES, PayloadError, parse_event

# The example of Partoo's documentation (shared/partoo/NOTES.md), verbatim.
EXAMPLE = b"""{
  "type": "message_updated",
  "payload": {
    "message": {
      "id": 123, "conversation_id": 123, "date": "2023-01-31 16:22:17.327878+00:00",
      "content_type": "Text", "sender_type": "User", "sender_label": "Jane Doe",
      "status": "Failed", "is_deleted": false, "content": "<string>",
      "user_id": "<string>", "custom_channel": null
    },
    "conversation": {
      "id": 123, "consumer_img": "https://www.example.com/profile-picture.jpg",
      "consumer_name": "John Doe", "business": {"id": 123},
      "messaging_partner": "Facebook", "custom_channel": null
    },
    "org_id": 123
  }
}"""


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE)
    return document


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def with_message(**fields: object) -> bytes:
    document = example()
    document["payload"]["message"].update(fields)
    return encode(document)


def without_message_field(name: str) -> bytes:
    document = example()
    del document["payload"]["message"][name]
    return encode(document)


def parsed_message(body: bytes) -> MessageUpdate:
    message = parse_event(body).message
    assert message is not None
    return message


# The documented example


def test_the_documented_example_parses() -> None:
    event = parse_event(EXAMPLE)

    assert event.type == "message_updated"
    assert event.message == MessageUpdate(
        message_id=123,
        conversation_id=123,
        status="Failed",
        is_deleted=False,
        sender_type="User",
        sender_label="Jane Doe",
        content_type="Text",
        content="<string>",
        date=datetime(2023, 1, 31, 16, 22, 17, 327878, tzinfo=UTC),
        messaging_partner="Facebook",
        consumer_name="John Doe",
        business_id=123,
        org_id=123,
    )
    assert len(event.dedupe_key) == 64
    assert is_failure_alert(event.message)


def test_message_created_carries_a_message_too() -> None:
    document = example()
    document["type"] = "message_created"

    assert parsed_message(encode(document)).message_id == 123


@pytest.mark.parametrize("event_type", ["business_created", "lead_received", "something_new", ""])
def test_other_event_types_parse_without_a_message(event_type: str) -> None:
    event = parse_event(encode({"type": event_type, "payload": {"whatever": [1, 2]}}))

    assert event.type == event_type
    assert event.message is None


def test_other_event_types_need_no_payload() -> None:
    assert parse_event(b'{"type": "business_deleted"}').message is None


# Required fields


@pytest.mark.parametrize("field", ["id", "status"])
def test_a_missing_required_field_is_refused(field: str) -> None:
    with pytest.raises(PayloadError, match=rf"payload\.message\.{field}.*missing"):
        parse_event(without_message_field(field))


@pytest.mark.parametrize(
    "value",
    ["123", 12.0, 12.5, True, False, None, [123], {"id": 123}, 2**63, -(2**63) - 1, 10**30],
)
def test_an_ill_typed_message_id_is_refused(value: object) -> None:
    with pytest.raises(PayloadError, match=r"payload\.message\.id"):
        parse_event(with_message(id=value))


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 0])
def test_message_ids_within_64_bits_are_accepted(value: int) -> None:
    assert parsed_message(with_message(id=value)).message_id == value


@pytest.mark.parametrize("value", [1, None, True, ["Failed"], {"value": "Failed"}])
def test_an_ill_typed_status_is_refused(value: object) -> None:
    with pytest.raises(PayloadError, match=r"payload\.message\.status"):
        parse_event(with_message(status=value))


def test_a_new_status_value_is_kept_as_sent() -> None:
    assert parsed_message(with_message(status="Pending")).status == "Pending"


@pytest.mark.parametrize("value", [None, 1, [], True, {"name": "message_updated"}])
def test_type_must_be_a_string(value: object) -> None:
    document = example()
    document["type"] = value

    with pytest.raises(PayloadError, match='"type"'):
        parse_event(encode(document))


def test_a_missing_type_is_refused() -> None:
    with pytest.raises(PayloadError, match=r'"type".*missing'):
        parse_event(b'{"payload": {}}')


@pytest.mark.parametrize("payload", [None, [], "x", 1])
def test_a_message_event_needs_a_payload_object(payload: object) -> None:
    with pytest.raises(PayloadError, match='"payload"'):
        parse_event(encode({"type": "message_updated", "payload": payload}))


@pytest.mark.parametrize("message", [None, [], "x", 1])
def test_a_message_event_needs_a_message_object(message: object) -> None:
    with pytest.raises(PayloadError, match=r'"payload\.message"'):
        parse_event(encode({"type": "message_updated", "payload": {"message": message}}))


def test_the_minimal_message_event_parses() -> None:
    update = parsed_message(b'{"type": "message_updated", "payload": {"message": {"id": 7, "status": "Failed"}}}')

    assert update.message_id == 7
    assert update.status == "Failed"
    assert update.conversation_id is None
    assert update.sender_type == ""
    assert update.content_type == ""
    assert update.is_deleted is False
    assert update.date is None
    assert (update.consumer_name, update.messaging_partner, update.business_id, update.org_id) == (
        None,
        None,
        None,
        None,
    )
    assert not is_failure_alert(update)  # no sender type: not known to be the business's message


# Optional fields: wrong types read as unknown


def test_ill_typed_optional_fields_read_as_none() -> None:
    document = example()
    message = document["payload"]["message"]
    message.update(
        conversation_id="123", sender_label=5, content=["x"], date=1675182137, is_deleted="yes", sender_type=1
    )
    message["content_type"] = None
    document["payload"]["conversation"] = {
        "id": True,
        "consumer_name": {"first": "John"},
        "business": {"id": "123"},
        "messaging_partner": 3,
    }
    document["payload"]["org_id"] = 1.5

    update = parsed_message(encode(document))

    assert update.conversation_id is None
    assert update.sender_label is None
    assert update.content is None
    assert update.date is None
    assert update.is_deleted is False
    assert update.sender_type == ""
    assert update.content_type == ""
    assert update.consumer_name is None
    assert update.business_id is None
    assert update.messaging_partner is None
    assert update.org_id is None


@pytest.mark.parametrize("conversation", [None, [], "x"])
def test_a_missing_conversation_leaves_its_fields_unknown(conversation: object) -> None:
    document = example()
    document["payload"]["conversation"] = conversation

    update = parsed_message(encode(document))

    assert update.consumer_name is None
    assert update.business_id is None
    assert update.conversation_id == 123  # still known from the message itself


def test_the_conversation_id_falls_back_to_the_conversation() -> None:
    document = example()
    del document["payload"]["message"]["conversation_id"]
    document["payload"]["conversation"]["id"] = 456

    assert parsed_message(encode(document)).conversation_id == 456


def test_huge_optional_ints_read_as_none() -> None:
    document = example()
    document["payload"]["org_id"] = 10**40
    document["payload"]["conversation"]["business"]["id"] = -(10**40)

    update = parsed_message(encode(document))

    assert update.org_id is None
    assert update.business_id is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-31 16:22:17.327878+00:00", datetime(2023, 1, 31, 16, 22, 17, 327878, tzinfo=UTC)),
        ("2023-01-31T16:22:17Z", datetime(2023, 1, 31, 16, 22, 17, tzinfo=UTC)),
        ("2023-01-31T18:22:17+02:00", datetime(2023, 1, 31, 16, 22, 17, tzinfo=UTC)),
        ("2023-01-31 16:22:17", datetime(2023, 1, 31, 16, 22, 17, tzinfo=UTC)),
        (" 2023-01-31T16:22:17.1234567+00:00 ", datetime(2023, 1, 31, 16, 22, 17, 123456, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        ("2023-13-45 99:99:99", None),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
    ],
)
def test_dates_are_read_as_utc(text: str, expected: datetime | None) -> None:
    date = parsed_message(with_message(date=text)).date

    assert date == expected
    assert date is None or date.tzinfo is UTC


def test_lone_surrogates_and_nul_are_replaced() -> None:
    body = with_message(content="a\ud800b\x00c", sender_label="\udfff")

    update = parsed_message(body)

    assert update.content == "a\ufffdb\ufffdc"
    assert update.sender_label == "\ufffd"
    update.content.encode("utf-8")  # sendable to Slack and PostgreSQL


# Failure alerts


@pytest.mark.parametrize(
    ("fields", "alert"),
    [
        ({}, True),
        ({"status": "Success"}, False),
        ({"status": "Sending"}, False),
        ({"status": "failed"}, False),
        ({"sender_type": "Consumer"}, False),
        ({"sender_type": "Metadata"}, False),
        ({"is_deleted": True}, False),
    ],
)
def test_only_the_businesss_undeleted_failed_messages_alert(fields: dict[str, object], alert: bool) -> None:
    assert is_failure_alert(parsed_message(with_message(**fields))) is alert


# Dedupe keys


def test_a_redelivery_with_keys_in_another_order_has_the_same_key() -> None:
    document = example()

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        return value

    shuffled = json.dumps(reversed_keys(document), indent=4).encode()

    assert shuffled != EXAMPLE
    assert parse_event(shuffled).dedupe_key == parse_event(EXAMPLE).dedupe_key


def test_a_different_status_has_a_different_key() -> None:
    assert parse_event(with_message(status="Success")).dedupe_key != parse_event(EXAMPLE).dedupe_key


def test_the_same_message_in_another_event_type_has_a_different_key() -> None:
    document = example()
    document["type"] = "message_created"

    assert parse_event(encode(document)).dedupe_key != parse_event(EXAMPLE).dedupe_key


def test_unicode_escapes_and_raw_unicode_give_the_same_key() -> None:
    raw = '{"type": "x", "name": "Zoë"}'.encode()
    escaped = b'{"type": "x", "name": "Zo\\u00eb"}'

    assert parse_event(raw).dedupe_key == parse_event(escaped).dedupe_key


def test_a_lone_surrogate_still_gets_a_key() -> None:
    assert len(parse_event(b'{"type": "x", "v": "\\ud800"}').dedupe_key) == 64


# Bodies that are not deliveries


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not json",
        b"{",
        b'{"type": "message_updated",}',
        b"\xff\xfe{}",
        b'{"type": "\xc3\x28"}',
        b"\xed\xa0\x80",  # an encoded surrogate is not UTF-8
    ],
)
def test_non_json_or_non_utf8_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_event(body)


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"message_updated"', b"123", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="JSON object"):
        parse_event(body)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    body = b'{"type": "message_updated", "payload": ' + b"[" * depth + b"]" * depth + b"}"

    with pytest.raises(PayloadError, match="nested"):
        parse_event(body)


def test_an_int_too_long_to_read_is_refused() -> None:
    body = b'{"type": "message_updated", "payload": {"message": {"id": ' + b"9" * 5000 + b"}}}"

    with pytest.raises(PayloadError) as caught:
        parse_event(body)

    assert len(str(caught.value)) < 200


def test_a_huge_message_id_is_refused_without_echoing_it() -> None:
    body = with_message(id=int("9" * 4000))

    with pytest.raises(PayloadError, match=r"payload\.message\.id") as caught:
        parse_event(body)

    assert "999" not in str(caught.value)


def test_an_oversized_body_is_refused_without_echoing_it() -> None:
    body = with_message(content="x" * MAX_BODY_BYTES)

    with pytest.raises(PayloadError, match="larger") as caught:
        parse_event(body)

    assert "xxx" not in str(caught.value)


def test_errors_do_not_echo_the_body() -> None:
    junk = b"<script>" + b"A" * 10_000

    with pytest.raises(PayloadError) as caught:
        parse_event(junk)

    assert "AAA" not in str(caught.value)
    assert "script" not in str(caught.value)


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


# Any input whatsoever: PayloadError or a result, never anything else


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

message_values = st.one_of(
    json_values,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["Failed", "Success", "User", "Text", "Image", "2023-01-31 16:22:17+00:00", "9999-12-31"]),
)


@st.composite
def message_documents(draw: st.DrawFn) -> object:
    """Documents shaped like Partoo's, with any values where the fields are."""
    document = example()
    message = document["payload"]["message"]
    for key in draw(st.lists(st.sampled_from(sorted(message)), unique=True)):
        if draw(st.booleans()):
            del message[key]
        else:
            message[key] = draw(message_values)
    conversation = document["payload"]["conversation"]
    for key in draw(st.lists(st.sampled_from(sorted(conversation)), unique=True)):
        conversation[key] = draw(message_values)
    if draw(st.booleans()):
        document["payload"]["org_id"] = draw(message_values)
    if draw(st.booleans()):
        document["type"] = draw(st.sampled_from(["message_created", "message_updated"]) | json_values)
    if draw(st.booleans()):
        document["payload"] = draw(json_values)
    return document


def parses_or_refuses(body: bytes) -> None:
    try:
        event = parse_event(body)
    except PayloadError as error:
        problem = str(error)
    else:
        assert isinstance(event.type, str)
        assert len(event.dedupe_key) == 64
        return
    assert len(problem) < 300  # short enough for a 400 answer: the input is never echoed


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_payload_error(body: bytes) -> None:
    parses_or_refuses(body)


@settings(max_examples=300)
@given(json_values)
def test_any_json_value_parses_or_raises_payload_error(value: object) -> None:
    parses_or_refuses(json.dumps(value).encode())
    parses_or_refuses(json.dumps({"type": "message_updated", "payload": value}).encode())


@settings(max_examples=300)
@given(message_documents())
def test_any_message_shaped_document_parses_or_raises_payload_error(document: object) -> None:
    parses_or_refuses(json.dumps(document).encode())


@given(message_documents())
def test_parsing_does_not_depend_on_key_order(document: object) -> None:
    body = json.dumps(document).encode()
    reordered = json.dumps(copy.deepcopy(document), sort_keys=True, indent=1).encode()
    try:
        first = parse_event(body)
    except PayloadError:
        with pytest.raises(PayloadError):
            parse_event(reordered)
        return

    assert parse_event(reordered) == first

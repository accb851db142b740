"""Finding Partoo message ids in text: what people write is found, personal data never is."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.commands import MAX_MESSAGE_ID
from bot.domain.message_ids import find_message_ids

ids = st.integers(min_value=1, max_value=MAX_MESSAGE_ID)
words = st.sampled_from(["please", "failed", "again", "hi", "ok", "thanks", "the", "client", "merci", ""])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("message 4567 failed", (4567,)),
        ("Message ID: 4567", (4567,)),
        ("msg #12", (12,)),
        ("messages 4567, 4568 and 4569 bounced", (4567, 4568, 4569)),
        ("messages 4567 4568", (4567, 4568)),
        ("#4567 is stuck", (4567,)),
        ("`4567`, `4568`", (4567, 4568)),
        ("ids 4567; 4568", (4567, 4568)),
        ("it was 123456, then 234567", (123456, 234567)),
        ("message 4567.", (4567,)),
        ("Business 42 · Conversation 991 · Message 4567", (4567,)),
        ("message 4567 then message 4567 again", (4567,)),
        ("see <https://partoo.example/m|message 777>", (777,)),
        ("<@U1234567> asked about 1234567", (1234567,)),
    ],
)
def test_ids_written_as_ids_are_found(text: str, expected: tuple[int, ...]) -> None:
    assert find_message_ids(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "message \u0664\u0665\u0666\u0667",  # Arabic-Indic digits: not what the bot shows or Partoo writes
        "message 45\u0666\u0667",
        "message \uff14\uff15\uff16\uff17",  # fullwidth
        "message " + "9" * 5000,  # int() raises beyond 4,300 digits
        "messages " + ", ".join(["9" * 30] * 3),
    ],
)
def test_other_digits_and_huge_numbers_are_not_ids(text: str) -> None:
    assert find_message_ids(text) == ()


@pytest.mark.parametrize(
    "text",
    [
        "call +33 6 12 34 56 78",
        "call +33612345678",
        "call 06 12 34 56 78 or 06-12-34-56-78 or 06.12.34.56.78 or 0612345678",
        "(415) 555 2671",
        "4155552671",
        "on 2026-11-28 at 14:02:59",
        "le 28/11/2026 à 14h02",
        "in 2026",
        "price 123456 € or 123456 EUR or 99.50",
        "75011 Paris",
        "your code: 482913",
        "order #123456",
        "business 123456 and conversation 234567",
        "ts 1700000000.000100",
        "https://app.example/messages/123456",
        "john123456@example.com",
        "<!date^1700000000^{date_short_pretty}|2023-11-14>",
        "v1.2.3 and 10.0.0.1",
        "1 234 567 messages",
        "message 0123",
    ],
)
def test_personal_data_dates_and_amounts_are_never_taken_for_ids(text: str) -> None:
    assert find_message_ids(text) == ()


@given(ids, words, words)
def test_an_id_after_the_word_message_is_found(message_id: int, before: str, after: str) -> None:
    assert find_message_ids(f"{before} message {message_id} {after}") == (message_id,)


@given(st.lists(ids, min_size=1, max_size=30, unique=True))
def test_ids_as_the_bot_writes_them_are_found_in_order(message_ids: list[int]) -> None:
    text = ", ".join(f"`{message_id}`" for message_id in message_ids)
    assert find_message_ids(f"asked to retry {text}.") == tuple(message_ids)


@given(
    st.integers(min_value=1, max_value=999),
    st.lists(st.integers(min_value=0, max_value=9999), min_size=2, max_size=5),
    st.sampled_from([" ", "-", ".", ""]),
)
def test_international_phone_numbers_are_never_ids(country: int, parts: list[int], joiner: str) -> None:
    phone = f"+{country} " + joiner.join(str(part) for part in parts)
    assert find_message_ids(f"message from {phone} failed") == ()


@given(st.lists(st.integers(min_value=0, max_value=99), min_size=4, max_size=4), st.sampled_from([" ", "-", ".", ""]))
def test_national_phone_numbers_are_never_ids(pairs: list[int], joiner: str) -> None:
    phone = "06" + joiner + joiner.join(f"{pair:02d}" for pair in pairs)
    assert find_message_ids(f"message to {phone}") == ()


@given(st.datetimes())
def test_dates_and_times_are_never_ids(moment: datetime) -> None:
    for text in (f"{moment}", f"{moment:%d/%m/%Y %H:%M}", f"{moment:%Y-%m-%dT%H:%M:%S}"):
        assert find_message_ids(f"message failed on {text}") == ()


@given(st.text(max_size=400))
def test_any_text_gives_plausible_ids_without_duplicates(text: str) -> None:
    found = find_message_ids(text)
    assert len(found) == len(set(found))
    assert all(1 <= message_id <= MAX_MESSAGE_ID for message_id in found)

"""Businesses shown by name ("Le Bistrot · Paris") rather than by id, through the running app, on both databases.

The names come from the conversation check the bot already makes (the fake Partoo's conversations carry
`business.name` and `city` as Partoo documents them); an unnamed business, or one the bot never checked,
is shown by its id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bot.failures.businesses import BusinessNames
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.fakes.partoo import OPEN
from tests.harness import ALERT_CHANNEL, FAST, USER, RunningBot, running_bot, section_texts
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually

BISTROT = replace(OPEN, business_name="Le Bistrot", business_city="Paris")
UNNAMED = replace(OPEN, business_name=None, business_city=None)
HOSTILE = "*bold* <!channel> & <https://x|y>"
HEX_ID = "5f3a9c0e1d2b4a6f8e7d6c5b"


@pytest.fixture
async def bot(slack: FakeSlack, environment: dict[str, str]) -> AsyncIterator[RunningBot]:
    async with running_bot(slack, environment, FAST) as running:
        yield running


def shown(message: SlackMessage) -> str:
    """What Slack shows of a message: its fallback text and the mrkdwn of its sections, fields and context."""
    return "\n".join([message.text or "", *section_texts(message.blocks or [])])


async def alert_showing(bot: RunningBot, message_id: int, says: str) -> str:
    """The text of the alert of `message_id` once it shows `says` (it is re-rendered after the check)."""

    def current() -> str | None:
        for message in bot.slack.root_messages(ALERT_CHANNEL):
            text = shown(message)
            if f"Partoo message {message_id} " in text and says in text:
                return text
        return None

    text = await eventually(current, timeout=15)
    assert text is not None
    return text


async def fail(bot: RunningBot, signer: PartooSigner, message_id: int, **fields: Any) -> None:
    assert (await bot.webhook(message_updated_event(message_id, **fields), signer)).status_code == 200


async def test_an_alert_shows_the_business_name_and_city_after_the_check_without_another_call(
    bot: RunningBot, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, BISTROT)

    await fail(bot, signer, 4567, conversation_id=991, business_id=42)

    text = await alert_showing(bot, 4567, "*Business*\nLe Bistrot · Paris")
    assert "`42`" not in text
    # The name came with the check the alert gets anyway: one call to Partoo, not one more for the name.
    assert [call.message_id for call in partoo.conversation_calls] == ["991"]


async def test_a_business_partoo_gave_no_name_for_is_shown_by_its_id(
    bot: RunningBot, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, UNNAMED)

    await fail(bot, signer, 4567, conversation_id=991, business_id=42)

    text = await alert_showing(bot, 4567, "a retry can work")  # checked, and still no name
    assert "*Business*\n`42`" in text


async def test_a_hostile_business_name_is_escaped(bot: RunningBot, partoo: FakePartoo, signer: PartooSigner) -> None:
    partoo.conversation(991, replace(OPEN, business_name=HOSTILE, business_city="<@U999>"))

    await fail(bot, signer, 4567, conversation_id=991, business_id=42)

    text = await alert_showing(bot, 4567, "&lt;!channel&gt;")
    assert "*Business*\n*bold* &lt;!channel&gt; &amp; &lt;https://x|y&gt; · &lt;@U999&gt;" in text
    assert "<!channel>" not in text
    assert "<https://x|y>" not in text
    assert "<@U999>" not in text


async def test_a_business_id_partoo_spells_as_a_string_is_kept_as_text(
    bot: RunningBot, partoo: FakePartoo, signer: PartooSigner
) -> None:
    # Partoo's conversation names the business by a 24-hex string; its webhook said 42.
    partoo.conversation(991, replace(BISTROT, business_id=HEX_ID))

    await fail(bot, signer, 4567, conversation_id=991, business_id=42)

    await alert_showing(bot, 4567, "*Business*\nLe Bistrot · Paris")
    labels = await BusinessNames(bot.bot.engine).labels([HEX_ID, 42, "999"])
    assert labels == {HEX_ID: "Le Bistrot · Paris", "42": "Le Bistrot · Paris", "999": "999"}


async def test_a_digest_counts_by_business_and_shows_names_with_the_id_as_fallback(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    for conversation in (300, 301, 302):
        partoo.conversation(conversation, BISTROT)
    partoo.conversation(303, replace(UNNAMED, business_id="1187"))

    for n in range(4):
        await fail(bot, signer, 5000 + n, conversation_id=300 + n, business_id=42 if n < 3 else 1187)

    def by_business() -> str | None:
        for message in slack.root_messages(ALERT_CHANNEL):
            for text in section_texts(message.blocks or []):
                if text.startswith("*By business*") and "Le Bistrot · Paris" in text:
                    return text
        return None

    text = await eventually(by_business, timeout=15)
    assert text == "*By business*\n• Le Bistrot · Paris: 3\n• `1187`: 1"


async def test_with_checks_off_a_business_is_shown_by_id_unless_its_name_was_learned_before(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    async with running_bot(slack, {**environment, "CONVERSATION_CHECK": "false"}, FAST) as bot:
        # A name an earlier check recorded (before checks were turned off, or by another replica).
        await BusinessNames(bot.bot.engine).remember([43], "Chez Marcel", "Lyon")

        await fail(bot, signer, 4567, conversation_id=991, business_id=42)
        await fail(bot, signer, 4568, conversation_id=992, business_id=43)

        assert "*Business*\n`42`" in await alert_showing(bot, 4567, "*Business*")
        assert "*Business*\nChez Marcel · Lyon" in await alert_showing(bot, 4568, "*Business*")
    assert partoo.conversation_calls == []


async def test_status_and_app_home_show_the_business_name(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, BISTROT)
    await fail(bot, signer, 4567, conversation_id=991, business_id=42)
    await alert_showing(bot, 4567, "Le Bistrot · Paris")
    await bot.command("4567")
    await eventually(lambda: partoo.count(4567) == 1, timeout=10)

    await bot.command("status 4567", response_url=slack.response_url("status"))
    answer = (await eventually(lambda: slack.responses("status")))[0]
    assert "*Business*: Le Bistrot · Paris" in section_texts(answer["blocks"])

    await bot.event(
        {
            "type": "event_callback",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event_id": "EvNames",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"},
        }
    )
    view = await eventually(lambda: slack.published_view(USER))
    assert view is not None
    lines = "\n".join(section_texts(view["blocks"]))
    assert "`4567` · Le Bistrot · Paris · " in lines


def test_partoo_names_are_kept_as_text_on_one_line_and_a_label_falls_back_to_the_id() -> None:
    from bot.domain.businesses import business_label
    from bot.platform.conversations import parse_conversation

    body = b'{"status": "Open", "business": {"id": 1187, "name": "Le\\n Bistrot\\u0000", "city": 75}}'
    snapshot = parse_conversation(body, 991)
    assert snapshot is not None
    assert (snapshot.business_id, snapshot.business_name, snapshot.business_city) == ("1187", "Le Bistrot\ufffd", None)
    assert business_label("1187", "Le Bistrot", "Paris") == "Le Bistrot · Paris"
    assert business_label("1187", "Le Bistrot", None) == "Le Bistrot"
    assert business_label("1187", "  ", "Paris") == "1187"

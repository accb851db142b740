"""Diagnose before retrying: every verdict through the running app, with the fake Partoo's scripted conversations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from bot.failures.verdict_messages import CHECKING_LINE, RETRY_ANYWAY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack, Reply, SlackMessage
from tests.fakes.partoo import CLOSED, EXPIRED, NO_PAGE_LINKED, Conversation
from tests.harness import ALERT_CHANNEL, FAST, USER, RunningBot, buttons, message_text, running_bot, section_texts
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async

TUNING = replace(
    FAST,
    check_timeout=httpx.Timeout(connect=1.0, read=0.5, write=1.0, pool=1.0),
    not_confirmed_seconds=0.5,
)


@pytest.fixture
async def bot(slack: FakeSlack, environment: dict[str, str]) -> AsyncIterator[RunningBot]:
    async with running_bot(slack, environment, TUNING) as running:
        yield running


async def _failure(bot: RunningBot, signer: PartooSigner, message_id: int, **fields: object) -> SlackMessage:
    """Deliver a failure and return its alert once the bot has posted it (with its verdict, if any)."""
    assert (await bot.webhook(message_updated_event(message_id, **fields), signer)).status_code == 200  # type: ignore[arg-type]

    def posted() -> SlackMessage | None:
        # Past ALERT_CHECK_WAIT (a loaded machine) the alert is posted as "checking", then edited with the verdict.
        for message in bot.slack.root_messages(ALERT_CHANNEL):
            if f"Partoo message {message_id} " in (message.text or "") and CHECKING_LINE not in message_text(message):
                return message
        return None

    alert = await eventually(posted, timeout=20)
    assert alert is not None
    await bot.alert_recorded(message_id, alert.ts)
    return alert


def _current(slack: FakeSlack, message: SlackMessage) -> SlackMessage:
    current = slack.message(ALERT_CHANNEL, message.ts)
    assert current is not None
    return current


async def _click(bot: RunningBot, alert: SlackMessage, action_id: str, value: str) -> None:
    response = await bot.click(
        action_id=action_id,
        value=value,
        user_id=USER,
        channel_id=ALERT_CHANNEL,
        message_ts=alert.ts,
        response_url=bot.slack.response_url("click"),
    )
    assert response.status_code == 200


def _action_ids(message: SlackMessage) -> list[str]:
    return [str(button["action_id"]) for button in buttons(message)]


async def test_an_open_conversation_keeps_the_plain_retry(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    alert = await _failure(bot, signer, 4567, conversation_id=991)

    assert _action_ids(alert) == [RETRY_ACTION_ID]
    assert "a retry can work" in message_text(alert)
    await _click(bot, alert, RETRY_ACTION_ID, "4567")
    await eventually(lambda: partoo.count(4567) == 1)
    # One check when the alert was created, one re-run when someone asked to retry.
    assert [call.message_id for call in partoo.conversation_calls] == ["991", "991"]


@pytest.mark.parametrize(
    ("state", "partner", "says"),
    [
        (CLOSED, "Whatsapp", "24-hour WhatsApp window"),
        (EXPIRED, "Facebook", "conversation is expired"),
    ],
    ids=["closed-whatsapp", "expired-facebook"],
)
async def test_a_closed_or_expired_conversation_gets_only_a_confirmed_retry_anyway(
    bot: RunningBot,
    slack: FakeSlack,
    partoo: FakePartoo,
    signer: PartooSigner,
    state: Conversation,
    partner: str,
    says: str,
) -> None:
    partoo.conversation(991, replace(state, messaging_partner=partner))

    alert = await _failure(bot, signer, 4567, conversation_id=991, messaging_partner=partner)

    text = message_text(alert)
    assert says in text
    assert "a retry cannot reach the customer" in text
    if partner == "Whatsapp":
        assert "The customer must write first, or send an approved WhatsApp template message" in text
    assert _action_ids(alert) == [RETRY_ANYWAY_ACTION_ID]
    anyway = buttons(alert)[0]
    assert "confirm" in anyway
    assert anyway.get("style") is None  # secondary, not the primary call to action

    await _click(bot, alert, RETRY_ANYWAY_ACTION_ID, "4567")
    await eventually(lambda: partoo.count(4567) == 1)
    assert len(partoo.conversation_calls) == 1  # "Retry anyway" does not check again


async def test_setup_problems_are_named_and_unknown_issues_shown_escaped(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, replace(NO_PAGE_LINKED, issues=("facebook_no_page_linked", "<!channel> brand_new_issue")))

    alert = await _failure(bot, signer, 4567, conversation_id=991, messaging_partner="Facebook")

    text = message_text(alert)
    assert "Facebook page not linked" in text
    assert "&lt;!channel&gt; brand_new_issue" in text
    assert "<!channel>" not in text
    assert "Fix the channel's setup in Partoo first" in text
    assert _action_ids(alert) == [RETRY_ANYWAY_ACTION_ID]


@pytest.mark.parametrize(
    "reply",
    [Reply(503), Reply(404), Reply(200, delay=2.0)],
    ids=["5xx", "404", "slow"],
)
async def test_a_check_that_fails_never_blocks_the_retry(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, reply: Reply
) -> None:
    partoo.conversation(991, reply)

    alert = await _failure(bot, signer, 4567, conversation_id=991)

    assert "could not check the conversation" in message_text(alert)
    assert _action_ids(alert) == [RETRY_ACTION_ID]
    await _click(bot, alert, RETRY_ACTION_ID, "4567")
    await eventually(lambda: partoo.count(4567) == 1, timeout=10)


async def test_the_check_is_rerun_before_a_retry_and_a_fix_in_partoo_unlocks_it(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    alert = await _failure(bot, signer, 4567, conversation_id=991)
    assert _action_ids(alert) == [RETRY_ACTION_ID]

    # The conversation closes after the alert was posted: the click's re-check catches it, nothing is sent.
    partoo.conversation(991, CLOSED)
    await _click(bot, alert, RETRY_ACTION_ID, "4567")
    await eventually(lambda: _action_ids(_current(slack, alert)) == [RETRY_ANYWAY_ACTION_ID])
    thread = await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts))
    assert "Not sent" in message_text(thread[-1])
    assert partoo.count(4567) == 0

    # Fixed in Partoo: the command re-checks and sends it.
    partoo.conversation(991, Conversation())
    await bot.command("4567")
    await eventually(lambda: partoo.count(4567) == 1)
    await eventually(lambda: _action_ids(_current(slack, alert)) == [])


async def test_a_command_for_a_message_never_seen_retries_without_a_check(bot: RunningBot, partoo: FakePartoo) -> None:
    await bot.command("777")

    await eventually(lambda: partoo.count(777) == 1)
    assert partoo.conversation_calls == []
    # Nor is it flagged "not confirmed": no webhook reported it, so none is expected about its delivery.
    await eventually_async(lambda: _finished(bot, 777))
    assert await bot.bot.diagnosis.store.mark_not_confirmed(accepted_before=time.time() + 3600) == []


async def test_a_command_for_a_closed_conversation_is_not_sent_and_says_why(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, CLOSED)
    # A Failed report: the bot knows the message's conversation from its alert. (A message seen only in
    # Success reports is not remembered: such events are dropped once applied, see bot.alerts.store.)
    webhook = message_updated_event(4567, conversation_id=991)
    assert (await bot.webhook(webhook, signer)).status_code == 200
    await eventually_async(lambda: _processed(bot))

    await bot.command("4567")

    replies = await eventually(lambda: [m for m in slack.messages() if "Not sent" in (m.text or "")])
    assert "24-hour WhatsApp window" in message_text(replies[0])
    assert partoo.count(4567) == 0


async def _finished(bot: RunningBot, message_id: int) -> bool:
    history = await bot.bot.retry_log.history(message_id)
    return bool(history) and history[-1][0].finished_at is not None


async def _processed(bot: RunningBot) -> bool:
    return (
        await bot.bot.diagnosis.store.conversation_of(4567) is not None
        and not await bot.bot.diagnosis.store.intake_busy()
    )


async def test_status_shows_the_latest_verdict(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, EXPIRED)
    await _failure(bot, signer, 4567, conversation_id=991)

    response = await bot.command("status 4567", response_url=slack.response_url("status"))

    assert response.status_code == 200
    answer = await eventually(lambda: slack.responses("status"))
    text = " ".join(str(block) for block in answer[0].get("blocks", []))
    assert "Latest check of the conversation" in text
    assert "a retry cannot reach the customer" in text


async def test_a_digest_groups_by_cause_and_retry_all_sends_only_what_can_succeed(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    for conversation in (100, 101, 102, 103):
        partoo.conversation(conversation, replace(NO_PAGE_LINKED, business_id="7"))
    broken = [(1000 + n, 100 + n) for n in range(4)]
    fine = [(2000, 200), (2001, 201)]
    for message_id, conversation in broken:
        event = message_updated_event(
            message_id, conversation_id=conversation, messaging_partner="Facebook", business_id=7
        )
        assert (await bot.webhook(event, signer)).status_code == 200
    for message_id, conversation in fine:
        assert (
            await bot.webhook(message_updated_event(message_id, conversation_id=conversation), signer)
        ).status_code == 200

    def digest_with_causes() -> SlackMessage | None:
        for message in slack.root_messages(ALERT_CHANNEL):
            text = " ".join(section_texts(message.blocks or []))  # not JSON: the name's "·" stays as it is
            if (
                "4 failures: Facebook page not linked, business Shop · Paris" in text
                and "2 failures: can be retried" in text
            ):
                return message
        return None

    digest = await eventually(digest_with_causes, timeout=15)
    assert digest is not None
    retry_all = next(b for b in buttons(digest) if b["action_id"] == RETRY_ALL_ACTION_ID)
    assert retry_all["text"]["text"] == "Retry the 2 that can work"
    # The channel's setup problem was checked once for its four conversations.
    assert sum(1 for call in partoo.conversation_calls if int(call.message_id) in range(100, 104)) == 1

    async def digest_recorded() -> bool:
        stored = await bot.bot.alerts.digest(int(str(retry_all["value"])))
        return stored is not None and stored.ts == digest.ts

    await eventually_async(digest_recorded)
    await _click(bot, digest, RETRY_ALL_ACTION_ID, str(retry_all["value"]))

    await eventually(lambda: "4 not sent" in message_text(_current(slack, digest)), timeout=15)
    await eventually(lambda: all(partoo.count(m) == 1 for m, _ in fine))
    assert all(partoo.count(m) == 0 for m, _ in broken)
    # Re-checked at the click: once more for the broken channel, not once per conversation.
    assert sum(1 for call in partoo.conversation_calls if int(call.message_id) in range(100, 104)) == 2


async def test_an_accepted_retry_without_a_delivery_report_is_not_confirmed_until_a_late_webhook(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    alert = await _failure(bot, signer, 4567, conversation_id=991)
    await _click(bot, alert, RETRY_ACTION_ID, "4567")

    await eventually(lambda: "Not confirmed after 15 min" in message_text(_current(slack, alert)), timeout=10)
    thread = await eventually(
        lambda: [m for m in slack.thread(ALERT_CHANNEL, alert.ts) if "Not confirmed after 15 min" in (m.text or "")]
    )
    assert len(thread) == 1

    await bot.webhook(message_updated_event(4567, conversation_id=991, status="Success"), signer)
    await eventually(lambda: "Delivered after retry" in message_text(_current(slack, alert)))
    assert "Not confirmed" not in message_text(_current(slack, alert))


async def test_with_checks_off_alerts_keep_their_retry_and_partoo_is_not_asked(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    partoo.conversation(991, CLOSED)
    async with running_bot(slack, {**environment, "CONVERSATION_CHECK": "false"}, TUNING) as bot:
        alert = await _failure(bot, signer, 4567, conversation_id=991)
        assert _action_ids(alert) == [RETRY_ACTION_ID]
        await _click(bot, alert, RETRY_ACTION_ID, "4567")
        await eventually(lambda: partoo.count(4567) == 1)
    assert partoo.conversation_calls == []

"""Failure alerts: signed Partoo webhooks in, alerts with Retry buttons out, followed to the final outcome."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import ALERT_CHANNEL, USER, RunningBot, buttons, message_text, retryable_alert, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async


async def _alert(slack: FakeSlack, count: int = 1, *, within: float = 5.0) -> list[SlackMessage]:
    """The alert channel's root messages, once there are at least `count`."""
    return await eventually(lambda: _roots_if(slack, count), timeout=within)


def _roots_if(slack: FakeSlack, count: int) -> list[SlackMessage]:
    roots = slack.root_messages(ALERT_CHANNEL)
    return roots if len(roots) >= count else []


async def test_a_failed_message_raises_an_alert_with_a_retry_button(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    event = message_updated_event(
        4567, consumer_name="<!channel> Bob & co", content="Your order <https://evil.example|is ready>"
    )

    response = await bot.webhook(event, signer)

    assert response.status_code == 200
    alert = await retryable_alert(slack)
    text = message_text(alert)
    assert "&lt;!channel&gt; Bob &amp; co" in text
    assert "<!channel>" not in text
    assert "<https://evil.example|" not in text
    assert "4567" in text
    assert [button["action_id"] for button in buttons(alert)] == [RETRY_ACTION_ID]
    assert buttons(alert)[0]["value"] == "4567"


@pytest.mark.parametrize(
    "change",
    [
        {"sender_type": "Consumer"},
        {"status": "Sending"},
        {"is_deleted": True},
    ],
)
async def test_only_failures_of_business_messages_raise_alerts(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner, change: dict[str, object]
) -> None:
    event = message_updated_event(1)
    event["payload"]["message"].update(change)

    assert (await bot.webhook(event, signer)).status_code == 200
    assert (await bot.webhook(message_updated_event(2), signer)).status_code == 200

    alerts = await _alert(slack)
    assert len(alerts) == 1
    assert "`2`" in message_text(alerts[0]) or " 2" in message_text(alerts[0])


async def test_a_redelivered_event_raises_one_alert(bot: RunningBot, slack: FakeSlack, signer: PartooSigner) -> None:
    event = message_updated_event(4567)
    answers = [await bot.webhook(event, signer) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["status"] for answer in answers] == ["stored", "duplicate", "duplicate"]
    await _alert(slack)
    # The events are processed in order: once a later failure is alerted, a wrong second alert would be too.
    await bot.webhook(message_updated_event(9), signer)
    await _alert(slack, count=2)
    assert len(slack.root_messages(ALERT_CHANNEL)) == 2


async def test_forged_and_broken_webhooks_are_refused_and_change_nothing(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    event = message_updated_event(4567)
    body = json.dumps(event).encode()
    other = PartooSigner()

    missing = await bot.http.post("/partoo/webhook", content=body, headers={"Content-Type": "application/json"})
    wrong_key = await bot.http.post("/partoo/webhook", content=body, headers=other.headers(body))
    other_body = await bot.http.post("/partoo/webhook", content=body + b" ", headers={**signer.headers(body)})
    not_base64 = await bot.http.post(
        "/partoo/webhook", content=body, headers={"X-Partoo-Signature-v1": "%%%not-base64%%%"}
    )
    too_large = await bot.webhook(b"{" + b" " * (1024 * 1024) + b"}", signer)
    not_json = await bot.webhook(b"<html>hello</html>", signer)
    wrong_shape = await bot.webhook({"type": "message_updated", "payload": {"message": {"id": "x"}}}, signer)

    assert [r.status_code for r in (missing, wrong_key, other_body, not_base64)] == [401, 401, 401, 401]
    assert too_large.status_code == 413
    assert not_json.status_code == 400
    assert wrong_shape.status_code == 400
    assert (await bot.webhook(message_updated_event(1), signer)).status_code == 200  # the bot still works
    await _alert(slack)
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1
    assert "`4567`" not in message_text(slack.root_messages(ALERT_CHANNEL)[0])


async def test_unknown_events_and_test_deliveries_are_answered_200_and_ignored(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    unknown = await bot.webhook({"type": "business_created", "payload": {"business": {"id": 1}}}, signer)
    tryout = await bot.webhook(message_updated_event(5), signer, **{"X-Partoo-Webhook-Tryout": "true"})
    new_status = message_updated_event(6, status="Queued")

    assert unknown.status_code == 200
    assert tryout.status_code == 200
    assert (await bot.webhook(new_status, signer)).status_code == 200
    assert (await bot.webhook(message_updated_event(7), signer)).status_code == 200
    alerts = await _alert(slack)
    assert len(alerts) == 1  # only message 7


async def test_the_same_message_failing_again_updates_its_alert(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567, content="first"), signer)
    alert = (await _alert(slack))[0]
    await bot.webhook(message_updated_event(4567, content="second"), signer)

    await eventually(lambda: "second" in message_text(slack.message(ALERT_CHANNEL, alert.ts)))
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1


async def _click(
    bot: RunningBot,
    alert: SlackMessage,
    *,
    user_id: str = USER,
    action_id: str = RETRY_ACTION_ID,
    value: str | None = None,
    channel_id: str = ALERT_CHANNEL,
) -> httpx.Response:
    await bot.alert_recorded(int(buttons(alert)[0]["value"]), alert.ts)
    return await bot.click(
        action_id=action_id,
        value=value if value is not None else buttons(alert)[0]["value"],
        user_id=user_id,
        channel_id=channel_id,
        message_ts=alert.ts,
        response_url=bot.slack.response_url(f"click-{user_id}"),
    )


async def test_a_click_retries_once_updates_the_alert_and_answers_in_its_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]

    response = await _click(bot, alert)

    assert response.status_code == 200
    await eventually(
        lambda: (
            "Retry requested by" in message_text(slack.message(ALERT_CHANNEL, alert.ts))
            or "Retried by" in message_text(slack.message(ALERT_CHANNEL, alert.ts))
        )
    )
    reply = (await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts)))[0]
    assert f"Retried by <@{USER}>" in message_text(reply)
    assert "accepted" in message_text(reply)
    assert partoo.count(4567) == 1
    current = slack.message(ALERT_CHANNEL, alert.ts)
    assert buttons(current) == []  # no second retry while Partoo is sending it


async def test_many_clicks_from_many_people_send_one_retry(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]
    gate = partoo.hold()
    try:
        answers = await asyncio.gather(*(_click(bot, alert, user_id=f"U{n}") for n in range(8)))
        assert all(answer.status_code == 200 for answer in answers)
        await eventually(lambda: partoo.count(4567) == 1)
    finally:
        gate.release()
    await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts))
    assert partoo.count(4567) == 1
    await eventually(lambda: len(_responses(slack, 8)) == 7)
    assert all("already" in response["text"] for response in _responses(slack, 8))


async def test_a_click_is_answered_before_what_it_sets_off(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]
    await bot.webhook(message_updated_event(4567, status="Success"), signer)
    await eventually(lambda: "elivered" in message_text(slack.message(ALERT_CHANNEL, alert.ts)))
    held = slack.hold_responses()
    try:
        # The alert as the clicker still saw it: its refusal goes to a response_url that Slack holds.
        response = await asyncio.wait_for(_click(bot, alert), timeout=10)

        assert response.status_code == 200
        assert slack.responses(f"click-{USER}") == []  # answered while the refusal was still on its way
    finally:
        held.release()
    refusal = (await eventually(lambda: slack.responses(f"click-{USER}")))[0]
    assert "was delivered" in refusal["text"]
    assert partoo.calls == []


async def test_delivery_after_retry_closes_the_loop_in_place(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]
    await _click(bot, alert)
    await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts))

    await bot.webhook(message_updated_event(4567, status="Success"), signer)

    await eventually(lambda: "Delivered after retry" in message_text(slack.message(ALERT_CHANNEL, alert.ts)))
    assert f"<@{USER}>" in message_text(slack.message(ALERT_CHANNEL, alert.ts))
    assert buttons(slack.message(ALERT_CHANNEL, alert.ts)) == []
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1


async def test_failing_again_brings_the_button_back_until_five_retries(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567, content="try 0"), signer)
    alert = (await _alert(slack))[0]
    for attempt in range(1, 6):
        await eventually(lambda: buttons(_current(slack, alert)))
        await _click(bot, alert)
        await eventually(lambda: partoo.count(4567) == attempt)  # noqa: B023 - awaited within the iteration
        await eventually(lambda: len(slack.thread(ALERT_CHANNEL, alert.ts)) == attempt)  # noqa: B023
        await bot.webhook(message_updated_event(4567, content=f"try {attempt}"), signer)
        await eventually(lambda: f"try {attempt}" in message_text(_current(slack, alert)))  # noqa: B023

    final = slack.message(ALERT_CHANNEL, alert.ts)
    assert buttons(final) == []
    assert "no longer offered" in message_text(final)
    assert partoo.count(4567) == 5


async def test_forged_clicks_are_refused(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]

    no_alert = await _click(bot, alert, value="999", user_id="U1")
    other_channel = await _click(bot, alert, channel_id="COTHER", user_id="U2")
    garbage = await _click(bot, alert, value="<!channel>", user_id="U3")
    # int() raises on 5,000 digits, and reads Arabic-Indic digits as 4567: neither is a value the bot posts.
    huge = await _click(bot, alert, value="9" * 5000, user_id="U4")
    other_digits = await _click(bot, alert, value="\u0664\u0665\u0666\u0667", user_id="U5")

    answers = (no_alert, other_channel, garbage, huge, other_digits)
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 200]
    for user in ("U1", "U2", "U3", "U4", "U5"):
        answer = (await eventually(lambda: slack.responses(f"click-{user}")))[0]  # noqa: B023
        assert answer["response_type"] == "ephemeral"
        assert "nothing was retried" in answer["text"] or "not one the bot posted" in answer["text"]
    assert partoo.calls == []


async def test_a_user_who_may_not_retry_gets_an_explanation_and_nothing_changes(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    async with running_bot(slack, {**environment, "RETRY_ALLOWED_USERS": "UBOSS"}) as bot:
        await bot.webhook(message_updated_event(4567), signer)
        alert = (await _alert(slack))[0]
        edits = _current(slack, alert).edits

        await _click(bot, alert, user_id="UINTERN")

        answer = (await eventually(lambda: slack.responses("click-UINTERN")))[0]
    assert "You may not retry" in answer["text"]
    assert "UBOSS" in answer["text"]
    assert partoo.calls == []
    assert _current(slack, alert).edits == edits


async def test_a_command_for_an_alerted_message_reports_into_the_alert(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await _alert(slack))[0]
    await bot.alert_recorded(4567, alert.ts)  # Slack shows the alert a moment before the bot knows its ts

    await bot.command("4567", channel_id="COPS")

    # Generous waits: on a loaded machine the command, the Partoo call and two Slack writes can take seconds.
    reply = (await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts), timeout=15))[0]
    assert f"Retried by <@{USER}>" in message_text(reply)
    assert slack.root_messages("COPS") == []
    await eventually(lambda: "Retried by" in message_text(slack.message(ALERT_CHANNEL, alert.ts)), timeout=15)


@pytest.mark.long(4)
async def test_a_slack_outage_delays_alerts_but_loses_none(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    slack.fail_next("chat.postMessage", times=8, status=503)

    for message_id in (1, 2):
        assert (await bot.webhook(message_updated_event(message_id), signer)).status_code == 200

    alerts = await _alert(slack, count=2, within=30)
    assert len(alerts) == 2


@pytest.mark.long(25)
async def test_a_flood_becomes_a_digest_and_retry_all_sends_each_once(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    slack.enforce_post_rate(per_second=1.0, burst=3)
    partners = ["Whatsapp", "Google", "Facebook"]
    async with running_bot(slack, environment) as bot:
        answers = await asyncio.gather(
            *(
                bot.webhook(message_updated_event(n, messaging_partner=partners[n % 3], business_id=n % 4), signer)
                for n in range(1, 301)
            )
        )
        assert all(answer.status_code == 200 for answer in answers)

        # Every failure becomes visible: alone in its alert, or counted in a digest.
        # Bounds, not waits: 300 failures and as many retries take a loaded 2-core machine a while.
        await eventually_async(lambda: _visible_failures(bot, slack, 300), timeout=60)
        roots = slack.root_messages(ALERT_CHANNEL)
        assert len(roots) <= 6
        assert slack.rate_limited_count == 0
        digest = next(m for m in roots if _retry_all_button(m))
        retry_all = _retry_all_button(digest)
        assert retry_all is not None
        assert "confirm" in retry_all
        grouped = [alert.message_id for alert in await bot.bot.alerts.digest_alerts(int(str(retry_all["value"])))]
        assert f"{len(grouped)} messages failed" in message_text(digest)

        digest_id = int(str(retry_all["value"]))

        async def digest_recorded() -> bool:
            stored = await bot.bot.alerts.digest(digest_id)
            return stored is not None and stored.ts == digest.ts

        await eventually_async(digest_recorded)
        await bot.click(
            action_id=RETRY_ALL_ACTION_ID,
            value=str(retry_all["value"]),
            channel_id=ALERT_CHANNEL,
            message_ts=digest.ts,
            response_url=slack.response_url("retry-all"),
        )

        await eventually(lambda: all(partoo.count(n) == 1 for n in grouped), timeout=90)
        await eventually(
            lambda: f"{len(grouped)} accepted" in message_text(slack.message(ALERT_CHANNEL, digest.ts)), timeout=30
        )
        assert _retry_all_button(slack.message(ALERT_CHANNEL, digest.ts)) is None
    assert sorted(int(n) for n in partoo.received_ids()) == sorted(grouped)
    assert slack.responses("retry-all") == []  # nothing to complain about


def _responses(slack: FakeSlack, users: int) -> list[dict[str, Any]]:
    return [response for n in range(users) for response in slack.responses(f"click-U{n}")]


def _current(slack: FakeSlack, message: SlackMessage) -> SlackMessage:
    current = slack.message(ALERT_CHANNEL, message.ts)
    assert current is not None
    return current


def _retry_all_button(message: object) -> dict[str, object] | None:
    return next((b for b in buttons(message) if b["action_id"] == RETRY_ALL_ACTION_ID), None)


async def _visible_failures(bot: RunningBot, slack: FakeSlack, expected: int) -> bool:
    alone = grouped = 0
    for message in slack.root_messages(ALERT_CHANNEL):
        retry_all = _retry_all_button(message)
        if retry_all is not None:
            count = len(await bot.bot.alerts.digest_alerts(int(str(retry_all["value"]))))
            if f"{count} messages failed" not in message_text(message):
                return False  # the digest has not caught up with what it groups yet
            grouped += count
        else:
            alone += 1
    return alone + grouped == expected


@pytest.mark.parametrize(("setting", "kept"), [("true", "A" * 200), ("false", None)])
async def test_only_a_preview_of_the_content_is_stored(
    slack: FakeSlack, signer: PartooSigner, environment: dict[str, str], setting: str, kept: str | None
) -> None:
    async with running_bot(slack, {**environment, "STORE_MESSAGE_PREVIEW": setting}) as bot:
        await bot.webhook(message_updated_event(4567, content="A" * 5000), signer)
        await _alert(slack)
        alert = await bot.bot.alerts.alert_for(4567)
        async with bot.bot.engine.connect() as connection:
            payloads = [row[0] for row in await connection.execute(text("SELECT payload FROM webhook_events"))]
    assert alert is not None
    assert alert.state.failure.content == kept
    assert len(payloads) == 1
    assert "A" * 201 not in payloads[0]

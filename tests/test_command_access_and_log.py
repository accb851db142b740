"""Who may retry, and the retry log the whole team can read: `status`, `log` and the App Home."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.fakes import FakePartoo, FakeSlack, Reply
from tests.harness import (
    CHANNEL,
    USER,
    RunningBot,
    assert_whole_entities,
    ephemeral_text,
    message_text,
    running_bot,
    section_texts,
)
from tests.waiting import eventually, eventually_async


@pytest.mark.parametrize(
    ("policy", "user", "channel", "allowed"),
    [
        ({"RETRY_ALLOWED_USERS": "U1,U2"}, "U2", CHANNEL, True),
        ({"RETRY_ALLOWED_USERS": "U1,U2"}, USER, CHANNEL, False),
        ({"RETRY_ALLOWED_USERGROUPS": "S0ONCALL"}, "U777", CHANNEL, True),
        ({"RETRY_ALLOWED_USERGROUPS": "S0ONCALL"}, USER, CHANNEL, False),
        ({"RETRY_ALLOWED_USERS": "U1", "RETRY_ALLOWED_USERGROUPS": "S0ONCALL"}, "U1", CHANNEL, True),
        ({"RETRY_ALLOWED_CHANNELS": "COPS"}, USER, "COPS", True),
        ({"RETRY_ALLOWED_CHANNELS": "COPS"}, USER, CHANNEL, False),
        ({"RETRY_ALLOWED_USERS": "U2", "RETRY_ALLOWED_CHANNELS": "COPS"}, "U2", CHANNEL, False),
    ],
)
async def test_access_policy(
    slack: FakeSlack,
    partoo: FakePartoo,
    environment: dict[str, str],
    policy: dict[str, str],
    user: str,
    channel: str,
    allowed: bool,
) -> None:
    async with running_bot(slack, {**environment, **policy}) as bot:
        response = await bot.command("4567", user_id=user, channel_id=channel)
        if allowed:
            assert response.text == ""
            await eventually(lambda: partoo.count(4567) == 1)
        else:
            answer = ephemeral_text(response)
            assert "You may not retry" in answer
            for who in policy.values():
                for slack_id in who.split(","):
                    assert slack_id in answer  # says who may
            assert partoo.calls == []
            assert await bot.bot.retry_log.recent(5) == []


async def test_someone_who_may_not_retry_may_still_read_the_log(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    # Authorization guards what retries (bot.slack.authorization); help, status and log only read.
    async with running_bot(slack, {**environment, "RETRY_ALLOWED_USERS": "UBOSS"}) as bot:
        assert "How to use" in ephemeral_text(await bot.command("help"))
        assert (await bot.command("log", response_url=slack.response_url("log"))).text == ""
        assert (await bot.command("status 4567", response_url=slack.response_url("status"))).text == ""
        log_answer = (await eventually(lambda: slack.responses("log")))[0]
        status_answer = (await eventually(lambda: slack.responses("status")))[0]
    assert "You may not retry" not in str(log_answer) + str(status_answer)
    assert "No retries in the log yet" in log_answer["text"]
    assert partoo.calls == []


async def test_usergroup_members_are_cached_briefly(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    async with running_bot(slack, {**environment, "RETRY_ALLOWED_USERGROUPS": "S0ONCALL"}) as bot:
        for message_id in (1, 2, 3):
            assert (await bot.command(str(message_id), user_id="U777")).text == ""
    assert len(slack.calls_to("usergroups.users.list")) == 1


async def test_a_usergroup_that_cannot_be_checked_refuses_safely(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    async with running_bot(slack, {**environment, "RETRY_ALLOWED_USERGROUPS": "S0MISSING"}) as bot:
        answer = ephemeral_text(await bot.command("4567", user_id="U777"))
    assert "could not check" in answer
    assert partoo.calls == []


async def test_status_shows_every_request_and_attempt_with_a_thread_link(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.script(4567, [Reply(status=503), Reply(status=400, body={"errors": {"json": "Message not failed"}})])
    await bot.command("4567")
    await eventually(lambda: len(slack.calls_to("chat.update")) >= 1, timeout=10)

    response = await bot.command("status 4567", response_url=slack.response_url("status"))

    assert response.text == ""
    answer = (await eventually(lambda: slack.responses("status")))[0]
    assert answer["response_type"] == "ephemeral"
    text = " ".join(str(block) for block in answer["blocks"])
    assert f"<@{USER}>" in text
    assert "HTTP 503" in text
    assert "HTTP 400" in text
    assert "Message not failed" in text
    assert "fake.slack.com/archives" in text  # the permalink of the thread


async def test_status_of_an_unknown_message_says_so(bot: RunningBot, slack: FakeSlack) -> None:
    await bot.command("status 999", response_url=slack.response_url("status"))
    answer = (await eventually(lambda: slack.responses("status")))[0]
    assert "No retry of Partoo message `999`" in answer["text"]


async def test_log_lists_the_latest_retries_newest_first(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    partoo.answer(2, 404)
    for message_id in (1, 2, 3):
        await bot.command(str(message_id))
    await eventually(lambda: all(partoo.count(message_id) == 1 for message_id in (1, 2, 3)))

    await bot.command("log 2", response_url=slack.response_url("log"))

    answer = (await eventually(lambda: slack.responses("log")))[0]
    text = " ".join(str(block) for block in answer["blocks"])
    assert text.index("`3`") < text.index("`2`")
    assert "`1`" not in text


@pytest.mark.long(12)
async def test_log_50_shows_all_fifty_retries_whole(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    # The longest ids and outcome labels make the longest lines: fifty of them never fit in one section.
    ids = [9_000_000_000_000_000_000 + n for n in range(50)]
    for message_id in ids:
        partoo.answer(message_id, 503)
    await bot.command(" ".join(map(str, ids)))

    async def all_finished() -> bool:
        return all(request.finished_at is not None for request in await bot.bot.retry_log.recent(50))

    await eventually_async(all_finished, timeout=30)
    await bot.command("log 50", response_url=slack.response_url("log"))

    answer = (await eventually(lambda: slack.responses("log")))[0]
    texts = section_texts(answer["blocks"])
    assert "The last 50 retries" in texts[0]
    shown = "\n".join(texts[1:])
    assert re.findall(r"`(\d+)`", shown) == [str(n) for n in reversed(ids)]
    assert shown.count("<!date^") == 50
    for text in texts:
        assert_whole_entities(text)


async def test_app_home_shows_counts_and_recent_retries(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    partoo.answer(2, 404)
    await bot.command("1 2")
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    await eventually(lambda: "2/2 done" in message_text(slack.message(CHANNEL, root.ts)))

    response = await bot.event(
        {
            "type": "event_callback",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event_id": "Ev1",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"},
        }
    )

    assert response.status_code == 200
    view = await eventually(lambda: slack.published_view(USER))
    text = str(view)
    assert "*2* requested" in text
    assert "*1* accepted" in text
    assert "*1* not accepted" in text
    assert "`1`" in text
    assert "`2`" in text


def _home_opened(event_id: str) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event_id": event_id,
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"},
    }


async def test_app_home_answers_slack_before_it_publishes_the_view(bot: RunningBot, slack: FakeSlack) -> None:
    # The first event also makes Bolt check the token (auth.test, once); the second meets Slack held.
    assert (await bot.event(_home_opened("Ev1"))).status_code == 200
    await eventually(lambda: len(slack.calls_to("views.publish")) == 1)

    # Slack retries an event not answered within 3 seconds: a slow views.publish must not hold the answer.
    with slack.hold():
        answer = asyncio.create_task(bot.event(_home_opened("Ev2")))
        await eventually(lambda: slack.in_flight == 1, message="views.publish was never called")
        await eventually(answer.done, message="the event was not answered while views.publish was in flight")
        assert answer.result().status_code == 200
        assert len(slack.calls_to("views.publish")) == 1

    await eventually(lambda: len(slack.calls_to("views.publish")) == 2)
    assert "Partoo retries" in str(slack.published_view(USER))

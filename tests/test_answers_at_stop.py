"""What the bot acknowledged and still had to answer is answered before it stops (a restart cuts nothing off).

A command, click or shortcut is acknowledged at once and answered afterwards, through its response_url (or by
opening a modal): the bot's stop waits for those answers under way before it closes anything.
"""

from __future__ import annotations

import asyncio

from tests.fakes import FakeSlack
from tests.harness import running_bot
from tests.waiting import eventually


async def test_an_answer_slack_holds_when_the_bot_stops_reaches_the_asker_before_the_bot_is_gone(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    held = slack.hold_responses()
    async with running_bot(slack, environment) as bot:
        assert (await bot.command("log", response_url=slack.response_url("log"))).status_code == 200
        await eventually(lambda: held.waiting == 1)  # acknowledged; its answer is on its way, held by Slack
        after_ack = bot.bot.after_ack

        async def let_slack_answer_once_the_bot_is_stopping() -> None:
            await eventually(lambda: after_ack.draining)
            held.release()

        releasing = asyncio.create_task(let_slack_answer_once_the_bot_is_stopping())
    # The lifespan has ended: the bot is stopped, and the answer got there first.
    assert [answer["response_type"] for answer in slack.responses("log")] == ["ephemeral"]
    await releasing

"""`/partoo-retry <id>` end to end: signed commands through the ASGI app, fake Slack and Partoo behind it."""

from __future__ import annotations

import time

from tests.fakes import FakePartoo, FakeSlack, Reply
from tests.harness import CHANNEL, USER, RunningBot, message_text
from tests.waiting import eventually


async def test_one_id_is_retried_once_and_answered_in_a_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    response = await bot.command("4567")

    assert response.status_code == 200
    assert response.text == ""  # acknowledged silently; the answer goes to the channel
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    assert f"<@{USER}> asked to retry Partoo message `4567`" in message_text(root)
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "accepted" in message_text(reply)
    assert "`4567`" in message_text(reply)
    assert partoo.count(4567) == 1
    await eventually(lambda: "accepted" in message_text(slack.message(CHANNEL, root.ts)))
    assert len(slack.root_messages(CHANNEL)) == 1


async def test_the_command_is_acknowledged_before_partoo_answers(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    gate = partoo.hold()
    try:
        started = time.perf_counter()
        response = await bot.command("4567")
        acknowledged = time.perf_counter() - started
        assert response.status_code == 200
        # Partoo has the call but has not answered: the ack did not wait for it.
        await eventually(lambda: partoo.count(4567) == 1)
        assert not slack.thread(CHANNEL, slack.root_messages(CHANNEL)[0].ts)
        assert acknowledged < 2.0
    finally:
        gate.release()
    root = slack.root_messages(CHANNEL)[0]
    await eventually(lambda: slack.thread(CHANNEL, root.ts))


async def test_refusal_shows_partoos_reason_escaped(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.answer(88, 400, body={"errors": {"json": {"message_id": ["<!channel> not in a failed state"]}}})

    await bot.command("88")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "refused" in message_text(reply)
    assert "&lt;!channel&gt; not in a failed state" in message_text(reply)
    assert "<!channel>" not in message_text(reply)
    assert partoo.count(88) == 1


async def test_transient_failures_are_retried_then_accepted(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.script(5, [Reply(status=503), Reply(status=429, headers={"Retry-After": "1"}), Reply(status=200)])

    await bot.command("5")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=10))[0]
    assert "accepted" in message_text(reply)
    assert partoo.count(5) == 3


async def test_bad_key_tells_what_to_check(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    partoo.answer(7, 401)

    await bot.command("7")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "PARTOO_API_KEY" in message_text(reply)
    assert "PARTOO_ENV" in message_text(reply)
    assert partoo.count(7) == 1

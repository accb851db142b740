"""One admission rule on every way in (issue 19): a command, a stale click, a shortcut submission and the
`anyway` confirmation each send nothing when the stored state says no, and say why, who and when."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.alerts.messages import RETRY_ACTION_ID
from bot.retries.refusal_messages import CONFIRM_ANYWAY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import ALERT_CHANNEL, CHANNEL, USER, RunningBot, ephemeral_text, message_text
from tests.signing import PartooSigner, message_updated_event
from tests.test_shortcut import acked_view, colleague_message, submit, use_shortcut
from tests.waiting import eventually, eventually_async

OTHER = "U999"


async def _accepted(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, message_id: int) -> None:
    """`/partoo-retry <id>` by USER, until Partoo accepted it and the thread said so."""
    await bot.command(str(message_id))
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    await eventually(lambda: "accepted" in " ".join(message_text(m) for m in slack.thread(CHANNEL, root.ts)))
    assert partoo.count(message_id) == 1


async def _requests(bot: RunningBot, message_id: int) -> int:
    return len(await bot.bot.retry_log.history(message_id))


async def test_a_second_command_after_partoo_accepted_sends_nothing_and_says_who_and_when(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    await _accepted(bot, slack, partoo, 63001)

    text = ephemeral_text(await bot.command("63001", user_id=OTHER))

    assert "accepted" in text and "delivery report" in text
    assert f"<@{USER}>" in text and "<!date^" in text  # who retried, and when
    # Acknowledged only after the enqueue's transaction: nothing was stored, so nothing can be sent.
    assert await _requests(bot, 63001) == 1
    assert partoo.count(63001) == 1


async def test_a_command_for_a_delivered_message_sends_nothing(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await _accepted(bot, slack, partoo, 63002)
    await bot.webhook(message_updated_event(63002, status="Success"), signer)

    async def refused_as_delivered() -> str:
        # The Success is applied in the background; meanwhile the answer is "awaiting the report" (a
        # refusal too: nothing is stored either way, so asking again is harmless).
        text = ephemeral_text(await bot.command("63002", user_id=OTHER))
        return text if "was delivered" in text else ""

    text = await eventually_async(refused_as_delivered, timeout=10)

    assert f"<@{USER}>" in text
    assert await _requests(bot, 63002) == 1
    assert partoo.count(63002) == 1


async def test_a_stale_click_after_an_accepted_retry_sends_nothing_and_says_who(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    alert = (await eventually(lambda: slack.root_messages(ALERT_CHANNEL)))[0]
    await _click(bot, alert, USER)
    await eventually(lambda: "accepted" in " ".join(message_text(m) for m in slack.thread(ALERT_CHANNEL, alert.ts)))

    # The alert as OTHER still saw it, with its Retry button.
    answer = await _click(bot, alert, OTHER)

    assert answer.status_code == 200
    refusal = (await eventually(lambda: slack.responses(f"click-{OTHER}")))[0]
    assert "accepted" in refusal["text"] and f"<@{USER}>" in refusal["text"]
    assert await _requests(bot, 4567) == 1
    assert partoo.count(4567) == 1


async def test_a_shortcut_submission_after_an_accepted_retry_sends_nothing_and_says_why(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    view = await use_shortcut(bot, colleague_message("message 4567"))  # opened before the retry
    await _accepted(bot, slack, partoo, 4567)

    answer = acked_view(await submit(bot, view, ["4567"], user_id=OTHER))

    text = json.dumps(answer["view"])
    assert "accepted" in text and USER in text
    assert await _requests(bot, 4567) == 1
    assert partoo.count(4567) == 1


async def test_anyway_is_confirmed_and_never_puts_two_calls_in_flight(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    asked = await bot.command("4567 anyway")

    body = asked.json()
    confirm = next(b for block in body["blocks"] if block["type"] == "actions" for b in block["elements"])
    assert confirm["action_id"] == CONFIRM_ANYWAY_ACTION_ID and "confirm" in confirm  # Slack's dialog
    assert await _requests(bot, 4567) == 0  # nothing until confirmed

    gate = partoo.hold()
    try:
        clicks = [_confirm(bot, confirm["value"], user) for user in (USER, USER, OTHER)]
        answers = await asyncio.gather(*clicks)
        assert all(answer.status_code == 200 for answer in answers)
        await eventually(lambda: partoo.count(4567) == 1)
        await eventually(lambda: len(slack.responses("confirm")) == 2)
        refusals = slack.responses("confirm")
        assert all("already being retried" in refusal["text"] for refusal in refusals)
    finally:
        gate.release()
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    await eventually(lambda: "accepted" in " ".join(message_text(m) for m in slack.thread(CHANNEL, root.ts)))
    # Confirmed again once Partoo accepted: awaiting its report, anyway or not.
    await _confirm(bot, confirm["value"], OTHER)
    refusal = (await eventually(lambda: slack.responses("confirm")[2:]))[0]
    assert "accepted" in refusal["text"]
    assert await _requests(bot, 4567) == 1
    assert partoo.count(4567) == 1


async def _click(bot: RunningBot, alert: SlackMessage, user_id: str) -> Any:
    await bot.alert_recorded(4567, alert.ts)
    return await bot.click(
        action_id=RETRY_ACTION_ID,
        value="4567",
        user_id=user_id,
        channel_id=ALERT_CHANNEL,
        message_ts=alert.ts,
        response_url=bot.slack.response_url(f"click-{user_id}"),
    )


async def _confirm(bot: RunningBot, value: str, user_id: str) -> Any:
    return await bot.click(
        action_id=CONFIRM_ANYWAY_ACTION_ID,
        value=value,
        user_id=user_id,
        channel_id=CHANNEL,
        message_ts="1700000000.000900",
        response_url=bot.slack.response_url("confirm"),
    )

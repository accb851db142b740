"""A failure reported after a retry is news, even when Partoo's body is byte for byte the first one."""

from __future__ import annotations

from bot.alerts.messages import RETRY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import ALERT_CHANNEL, USER, RunningBot, buttons, message_text
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually


def _current(slack: FakeSlack, alert: SlackMessage) -> SlackMessage:
    current = slack.message(ALERT_CHANNEL, alert.ts)
    assert current is not None
    return current


async def _retry(bot: RunningBot, alert: SlackMessage) -> None:
    await bot.alert_recorded(4567, alert.ts)
    await bot.click(
        action_id=RETRY_ACTION_ID,
        value="4567",
        user_id=USER,
        channel_id=ALERT_CHANNEL,
        message_ts=alert.ts,
        response_url=bot.slack.response_url("click"),
    )


async def test_an_identical_failure_after_a_retry_shows_failed_again_and_its_redelivery_does_not(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    failure = message_updated_event(4567)  # Partoo's bodies carry no event id and no update time
    assert (await bot.webhook(failure, signer)).json()["status"] == "stored"
    assert (await bot.webhook(failure, signer)).json()["status"] == "duplicate"
    alert = (await eventually(lambda: slack.root_messages(ALERT_CHANNEL)))[0]

    await _retry(bot, alert)
    await eventually(lambda: partoo.count(4567) == 1)
    await eventually(lambda: "sending it again" in message_text(_current(slack, alert)))
    assert buttons(_current(slack, alert)) == []

    # The retried message fails again: the very same bytes arrive.
    assert (await bot.webhook(failure, signer)).json()["status"] == "stored"
    await eventually(lambda: "Failed again after retry" in message_text(_current(slack, alert)))
    assert [button["action_id"] for button in buttons(_current(slack, alert))] == [RETRY_ACTION_ID]

    # Partoo redelivering that second failure is still a redelivery.
    assert (await bot.webhook(failure, signer)).json()["status"] == "duplicate"
    stored = await bot.bot.alerts.alert_for(4567)
    assert stored is not None
    assert stored.state.failures == 2
    assert stored.state.retries == 1
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1

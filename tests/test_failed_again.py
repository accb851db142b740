"""A failure reported after a retry is news, even when Partoo's body is byte for byte the first one."""

from __future__ import annotations

from bot.alerts.messages import RETRY_ACTION_ID
from bot.domain.phases import Phase
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import ALERT_CHANNEL, USER, RunningBot, buttons, ephemeral_text, message_text
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


async def test_a_failure_reported_before_the_retry_call_but_applied_after_it_is_not_failed_again(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    """Partoo reported the message failed again *before* anyone retried it; the alerter, busy, applied that
    report only after the retry's call. It is the failure the retry answers: the accepted retry still awaits
    Partoo's report, and a second ask sends nothing (found by tests/test_lifecycle_stateful.py under load)."""
    assert (await bot.webhook(message_updated_event(4567), signer)).json()["status"] == "stored"
    alert = (await eventually(lambda: slack.root_messages(ALERT_CHANNEL)))[0]
    await bot.alert_recorded(4567, alert.ts)

    await bot.bot.alerter.stop()  # a busy alerter: what arrives now is stored, applied later
    second_report = message_updated_event(4567, content="Hello again")
    assert (await bot.webhook(second_report, signer)).json()["status"] == "stored"
    await bot.command("4567")
    await eventually(lambda: partoo.count(4567) == 1)
    await eventually(lambda: "accepted" in " ".join(message_text(m) for m in slack.thread(ALERT_CHANNEL, alert.ts)))

    await bot.bot.alerter.tick()  # the report that came before the call, applied after it

    answer = ephemeral_text(await bot.command("4567", user_id="U999"))
    assert "accepted" in answer and "delivery report" in answer, answer
    assert partoo.count(4567) == 1
    assert (await bot.bot.alerts.alert_for(4567)).state.phase is not Phase.FAILED_AGAIN

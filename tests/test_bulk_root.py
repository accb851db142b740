"""A bulk's progress message always appears, in a busy channel too: it carries Stop, the only way to stop the bulk
(issue 21). A one-message retry still never waits for Slack's pace."""

from __future__ import annotations

from typing import Any

from bot.assembly import Tuning
from bot.domain.outcomes import OutcomeKind
from bot.retries.messages import STOP_ACTION_ID
from bot.retries.plan_messages import PLAN_RETRY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import CHANNEL, FAST, USER, buttons, finished_outcomes, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.test_bulk_plans import _button, _click, _plan
from tests.waiting import eventually, eventually_async

PLANNED = (6001, 6002, 6003, 6004)
# Posts another replica has waiting for CHANNEL's slots (about one a second): no slot is free for seconds.
QUEUED_POSTS = 6


def _stop(message: Any) -> dict[str, Any]:
    return next((b for b in buttons(message) if b["action_id"] == STOP_ACTION_ID), {})


async def test_a_plans_progress_message_with_stop_appears_in_a_busy_channel_before_any_retry_is_sent(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    # One worker, and Partoo holds every call: what is not in flight when Stop is clicked must never be sent.
    tuning = Tuning(**{**FAST.__dict__, "worker_concurrency": 1})
    async with running_bot(slack, environment, tuning) as bot:
        for message_id in PLANNED:
            event = message_updated_event(message_id, conversation_id=message_id - 6000)
            assert (await bot.webhook(event, signer)).status_code == 200

        async def alerted() -> bool:
            return all([await bot.bot.alerts.alert_for(n) for n in PLANNED])

        await eventually_async(alerted, timeout=20)
        plan = await _plan(bot, slack, "failed since 1h", "plan")
        retry = _button(plan, PLAN_RETRY_ACTION_ID)
        assert retry["text"]["text"] == f"Retry {len(PLANNED)} that can succeed"

        # The channel is busy: posts are waiting for its next slots, as another replica's would (every post
        # holds its slot in the shared pace while it waits). No slot is free now.
        pace = await bot.bot.poster.paces.for_channel(CHANNEL)
        slots = [await pace.reserve() for _ in range(QUEUED_POSTS)]
        assert slots[-1] > pace.clock() + 2, slots
        gate = partoo.hold()
        await _click(bot, slack, PLAN_RETRY_ACTION_ID, retry["value"], "retry")

        # The progress message appears, with Stop, once the channel has a slot for it.
        root = (await eventually(lambda: [m for m in slack.root_messages(CHANNEL) if _stop(m)], timeout=20))[0]
        posted_at = next(
            call.at
            for call in slack.calls_to("chat.postMessage")
            if call.response.get("ok") and call.response.get("ts") == root.ts
        )
        # Its retries waited for it: no call reached Partoo before the message that can stop them was in Slack.
        await eventually(lambda: gate.waiting == 1, timeout=10)
        assert min(call.at for call in partoo.calls) > posted_at
        in_flight = int(partoo.calls[0].message_id)

        await bot.click(
            action_id=STOP_ACTION_ID,
            value=_stop(root)["value"],
            user_id=USER,
            channel_id=CHANNEL,
            message_ts=root.ts,
            response_url=slack.response_url("stop"),
        )
        told = (await eventually(lambda: slack.responses("stop"), timeout=10))[0]["text"]
        assert f"Stopped {len(PLANNED) - 1} retries not yet sent" in told and "1 already on its way" in told, told
        gate.release()

        finished = await finished_outcomes(bot, PLANNED)
        # Nothing in flight was cancelled, nothing stopped was sent.
        assert [int(n) for n in partoo.received_ids()] == [in_flight]
        assert finished[in_flight] is OutcomeKind.ACCEPTED
        assert {n for n, outcome in finished.items() if outcome is OutcomeKind.STOPPED} == set(PLANNED) - {in_flight}
        await eventually(lambda: not _stop(slack.message(CHANNEL, root.ts)), timeout=20)
        assert slack.rate_limited_count == 0 and slack.refusals == []


async def test_a_single_retry_in_a_busy_channel_does_not_wait_for_its_root_message(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    async with running_bot(slack, environment) as bot:
        pace = await bot.bot.poster.paces.for_channel(CHANNEL)
        for _ in range(QUEUED_POSTS):
            await pace.reserve()
        gate = partoo.hold()
        await bot.command("7001")
        # Partoo is called at once, while the channel has no slot for a root message.
        await eventually(lambda: gate.waiting == 1, timeout=10)
        assert slack.root_messages(CHANNEL) == []
        gate.release()
        # Its outcome is posted whole once the channel has a slot.
        outcome = await eventually(lambda: slack.root_messages(CHANNEL), timeout=20)
        assert "7001" in (outcome[0].text or "")

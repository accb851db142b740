"""Stop on a many-message retry's progress message, and on a digest whose Retry all runs: nothing in flight is
cancelled, nothing stopped is sent."""

from __future__ import annotations

import asyncio

from bot.alerts.messages import RETRY_ALL_ACTION_ID
from bot.assembly import Tuning
from bot.domain.outcomes import OutcomeKind
from bot.retries.messages import STOP_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.partoo import ANY_MESSAGE, Reply
from tests.harness import ALERT_CHANNEL, CHANNEL, FAST, USER, buttons, finished_outcomes, message_text, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async

IDS = (3001, 3002, 3003, 3004)


async def test_stop_removes_what_is_not_sent_and_lets_the_call_in_flight_finish(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    # One worker, and Partoo holds its first answer: one request is in flight, three wait their turn.
    partoo.script(ANY_MESSAGE, [Reply(200, delay=2.0)])
    tuning = Tuning(**{**FAST.__dict__, "worker_concurrency": 1})
    async with running_bot(slack, {**environment, "RETRY_ALLOWED_USERS": "U1"}, tuning) as bot:
        await bot.command(" ".join(map(str, IDS)), user_id="U1")
        root = await eventually(lambda: [m for m in slack.root_messages(CHANNEL) if _stop(m)], timeout=10)
        stop = _stop(root[0])
        in_flight = await eventually(lambda: partoo.calls, timeout=10)
        assert len(in_flight) == 1 and in_flight[0].status is None  # held by Partoo's fake

        # Someone the access policy does not allow: refused, nothing stopped.
        refused = await bot.click(
            action_id=STOP_ACTION_ID,
            value=stop["value"],
            user_id=USER,
            channel_id=CHANNEL,
            message_ts=root[0].ts,
            response_url=slack.response_url("refused"),
        )
        assert refused.status_code == 200
        assert "You may not retry" in (await eventually(lambda: slack.responses("refused")))[0]["text"]

        await bot.click(
            action_id=STOP_ACTION_ID,
            value=stop["value"],
            user_id="U1",
            channel_id=CHANNEL,
            message_ts=root[0].ts,
            response_url=slack.response_url("stop"),
        )
        told = (await eventually(lambda: slack.responses("stop")))[0]["text"]
        assert "Stopped 3 retries not yet sent" in told and "1 already on its way" in told, told

        outcomes = await finished_outcomes(bot, IDS)
        sent = [int(n) for n in partoo.received_ids()]
        assert len(sent) == 1 and outcomes[sent[0]] is OutcomeKind.ACCEPTED  # the call in flight finished
        assert sorted(n for n, outcome in outcomes.items() if outcome is OutcomeKind.STOPPED) == sorted(
            set(IDS) - set(sent)
        )
        # Stopping twice stops nothing more; the progress message drops its Stop once all are done.
        await eventually(lambda: not _stop(slack.message(CHANNEL, root[0].ts)), timeout=20)
        assert len(partoo.calls) == 1


def _stop(message: object) -> dict[str, object]:
    return next((b for b in buttons(message) if b["action_id"] == STOP_ACTION_ID), {})


async def test_stop_on_a_digest_stops_its_retry_all_and_lets_the_call_in_flight_finish(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    # A flood of eight failures makes one digest; one worker, and Partoo holds the first call of its Retry all.
    flood = range(5001, 5009)
    tuning = Tuning(**{**FAST.__dict__, "worker_concurrency": 1})
    async with running_bot(slack, environment, tuning) as bot:
        await asyncio.gather(*(bot.webhook(message_updated_event(n), signer) for n in flood))
        digest = (await eventually(lambda: [m for m in slack.root_messages(ALERT_CHANNEL) if _retry_all(m)]))[0]
        digest_id = int(str(_retry_all(digest)["value"]))

        async def recorded() -> bool:
            stored = await bot.bot.alerts.digest(digest_id)
            return stored is not None and stored.ts == digest.ts

        await eventually_async(recorded)
        grouped = {alert.message_id for alert in await bot.bot.alerts.digest_alerts(digest_id)}
        assert len(grouped) == len(flood)
        gate = partoo.hold()
        await bot.click(
            action_id=RETRY_ALL_ACTION_ID,
            value=str(digest_id),
            user_id=USER,
            channel_id=ALERT_CHANNEL,
            message_ts=digest.ts,
            response_url=slack.response_url("retry_all"),
        )
        # The digest, re-rendered with its Retry all's progress, offers Stop while it runs.
        await eventually(lambda: _stop(slack.message(ALERT_CHANNEL, digest.ts)), timeout=20)
        stop = _stop(slack.message(ALERT_CHANNEL, digest.ts))
        assert stop["value"] == str(digest_id)
        await eventually(lambda: gate.waiting == 1, timeout=10)  # one call in flight, held by Partoo's fake
        in_flight = int(partoo.calls[-1].message_id)

        # The digest's id on another message (a batch's root, say) stops nothing: only the digest's own message.
        await bot.click(
            action_id=STOP_ACTION_ID,
            value=str(digest_id),
            user_id=USER,
            channel_id=ALERT_CHANNEL,
            message_ts="1.000001",
            response_url=slack.response_url("elsewhere"),
        )
        assert "nothing stopped" in (await eventually(lambda: slack.responses("elsewhere")))[0]["text"]

        await bot.click(
            action_id=STOP_ACTION_ID,
            value=str(digest_id),
            user_id=USER,
            channel_id=ALERT_CHANNEL,
            message_ts=digest.ts,
            response_url=slack.response_url("stop"),
        )
        told = (await eventually(lambda: slack.responses("stop")))[0]["text"]
        stopped_count = len(flood) - 1
        assert f"Stopped {stopped_count} retries not yet sent" in told and "1 already on its way" in told, told
        gate.release()

        outcomes = await finished_outcomes(bot, grouped)
        # Nothing in flight was cancelled, nothing stopped was sent.
        assert [int(n) for n in partoo.received_ids()] == [in_flight]
        assert outcomes[in_flight] is OutcomeKind.ACCEPTED
        assert {n for n, outcome in outcomes.items() if outcome is OutcomeKind.STOPPED} == grouped - {in_flight}
        # The digest says so, and drops its Stop once nothing of its Retry all is left to run.
        await eventually(
            lambda: (
                f"{stopped_count} stopped before they were sent"
                in message_text(slack.message(ALERT_CHANNEL, digest.ts))
            ),
            timeout=20,
        )
        await eventually(lambda: not _stop(slack.message(ALERT_CHANNEL, digest.ts)), timeout=20)
        assert len(partoo.calls) == 1


def _retry_all(message: object) -> dict[str, object]:
    return next((b for b in buttons(message) if b["action_id"] == RETRY_ALL_ACTION_ID), {})

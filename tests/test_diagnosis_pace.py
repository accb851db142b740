"""Checks and retries share one Partoo budget, and checks give way to retries."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import insert

from bot.failures.diagnosis_store import DiagnosisStore
from bot.failures.state import failure_json
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.models import Alert
from bot.platform.pace import SharedPace
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.partoo import CLOSED
from tests.harness import ALERT_CHANNEL, buttons, message_text, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async


async def test_a_background_check_takes_only_a_slot_no_retry_is_waiting_for(database_url: str) -> None:
    now = [1000.0]
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        pace = SharedPace(engine, 60, clock=lambda: now[0])  # one slot every 1.02 s

        assert await pace.reserve_if_idle()  # idle: the check goes at once
        assert not await pace.reserve_if_idle()  # its own slot is still running
        now[0] += 1.1
        assert await pace.reserve() == now[0]  # a retry takes the free slot…
        await pace.reserve()  # …and a second retry queues behind it
        now[0] += 1.1
        assert not await pace.reserve_if_idle()  # retries still waiting: the check gives way
        now[0] += 1.1
        assert await pace.reserve_if_idle()
        await pace.pause(5.0)
        now[0] += 2.0
        assert not await pace.reserve_if_idle()  # nor during a 429 pause
    finally:
        await engine.dispose()


async def test_a_flood_with_checks_on_gets_no_429_and_retry_all_skips_what_cannot_succeed(
    slack: FakeSlack, signer: PartooSigner, environment: dict[str, str]
) -> None:
    # Partoo allows 30 calls in any 3 s here (its minute, shortened, with the same 1.2 s a late call may take);
    # the bot is told 420 a minute (7 a second), as in tests/test_operations.py.
    with FakePartoo(api_key=environment["PARTOO_API_KEY"], rate_limit_per_minute=30, rate_window_seconds=3.0) as partoo:
        closed = set(range(1, 21, 3))
        for message_id in closed:
            partoo.conversation(5000 + message_id, CLOSED)
        settings = {**environment, "PARTOO_API_URL": partoo.api_url, "PARTOO_RATE_LIMIT_PER_MINUTE": "420"}
        async with running_bot(slack, settings) as bot:
            answers = await asyncio.gather(
                *(
                    bot.webhook(message_updated_event(n, conversation_id=5000 + n, business_id=n), signer)
                    for n in range(1, 21)
                )
            )
            assert all(answer.status_code == 200 for answer in answers)

            def digest_checked() -> object:
                for message in slack.root_messages(ALERT_CHANNEL):
                    if f"{len(closed)} failures: conversation closed" in message_text(message):
                        return message
                return None

            digest = await eventually(digest_checked, timeout=30)
            retry_all = next(b for b in buttons(digest) if b["action_id"] == "partoo_retry.retry_all")
            digest_id = int(str(retry_all["value"]))

            async def recorded() -> bool:
                stored = await bot.bot.alerts.digest(digest_id)
                return stored is not None and stored.ts == digest.ts  # type: ignore[attr-defined]

            await eventually_async(recorded)
            await bot.click(
                action_id="partoo_retry.retry_all",
                value=str(digest_id),
                channel_id=ALERT_CHANNEL,
                message_ts=digest.ts,  # type: ignore[attr-defined]
                response_url=slack.response_url("retry-all"),
            )
            grouped = [alert.message_id for alert in await bot.bot.alerts.digest_alerts(digest_id)]
            sendable = [n for n in grouped if n not in closed]
            await eventually(lambda: all(partoo.count(n) == 1 for n in sendable), timeout=30)
            await eventually(lambda: f"{len(closed)} not sent" in message_text(slack.message(ALERT_CHANNEL, digest.ts)))  # type: ignore[attr-defined]

            def counted_alike() -> int:
                # Partoo records a check when it arrives, the bot counts it once answered: one may be in flight.
                counted = bot.bot.diagnosis.checker.calls
                return counted if counted == len(partoo.conversation_calls) else 0

            checks = await eventually(counted_alike, message="the bot's count of checks never matched Partoo's")

        assert partoo.rate_limited_count == 0
        assert partoo.max_calls_in_any_window(3.0, with_checks=True) <= 30
        assert all(partoo.count(n) == 0 for n in closed)
        assert checks > 0  # and equal to what Partoo received, once nothing was in flight


async def test_only_recent_unchecked_alerts_are_checked_in_the_background(database_url: str) -> None:
    now = [10_000.0]
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        failure = failure_json(parse_event(json.dumps(message_updated_event(1)).encode()).message)  # type: ignore[arg-type]
        async with engine.begin() as connection:
            for message_id, failed_at in ((1, now[0] - 7200), (2, now[0] - 60)):
                await connection.execute(
                    insert(Alert).values(
                        message_id=message_id,
                        channel_id=ALERT_CHANNEL,
                        failure=failure,
                        failed_at=failed_at,
                        failures=1,
                        retries=0,
                        version=1,
                        posted_version=1,
                    )
                )
        store = DiagnosisStore(engine, clock=lambda: now[0])

        claimed = await store.claim_unchecked_alerts(10, 20.0, max_age=3600.0)

        # An alert from before the checks (say, before an upgrade) is left as it is: no burst of re-renders.
        assert [alert.message_id for alert in claimed] == [2]
        assert await store.claim_unchecked_alerts(10, 20.0, max_age=3600.0) == []  # claimed: not taken twice
    finally:
        await engine.dispose()

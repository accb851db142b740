"""Retention: what is worth keeping is kept, the rest is dropped or pruned, and pruning never holds anyone up.

Each test runs on SQLite and on PostgreSQL, through the running app where a user would notice (webhooks,
commands, `status`), with the pruner's clock moved instead of waiting months.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.alerts.store import AlertStore
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.models import Attempt, Batch, Request, RequestState, WebhookEvent
from bot.platform.retention import DAY
from bot.retries.export import COLUMNS
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, CHANNEL, FAST, RunningBot, bot_environment, message_text, running_bot
from tests.signing import PartooSigner, json_body, message_updated_event
from tests.waiting import eventually, eventually_async

OLD = time.time() - 100 * DAY


async def _events(bot: RunningBot) -> list[tuple[int, str]]:
    async with bot.bot.engine.connect() as connection:
        rows = await connection.execute(select(WebhookEvent.message_id, WebhookEvent.status).order_by(WebhookEvent.id))
        return [(row.message_id, row.status) for row in rows]


async def _count(bot: RunningBot, table: Any, *conditions: Any) -> int:
    async with bot.bot.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table).where(*conditions))).scalar_one())


async def _alert_posted(slack: FakeSlack, message_id: int) -> None:
    await eventually(lambda: any(f"{message_id}" in message_text(m) for m in slack.root_messages(ALERT_CHANNEL)))


# -- what is worth keeping ------------------------------------------------------------------------------------


async def test_unrelated_success_events_leave_no_rows_behind(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    for message_id in range(1, 21):
        answer = await bot.webhook(message_updated_event(message_id, status="Success"), signer)
        assert answer.json()["status"] == "stored"  # durable before Partoo's 200, like every event
    await bot.webhook(message_updated_event(99), signer)
    await _alert_posted(slack, 99)

    # Applied in order, the twenty changed nothing and are gone; the failure an alert rests on stays.
    async def only_the_failure() -> bool:
        return await _events(bot) == [(99, "Failed")]

    await eventually_async(only_the_failure)

    # A redelivery of a dropped event is stored, applied and dropped again: it changes nothing either.
    again = await bot.webhook(message_updated_event(5, status="Success"), signer)
    assert again.json()["status"] == "stored"
    await bot.webhook(message_updated_event(99, status="Success"), signer)  # concerns the alert: kept

    async def settled() -> bool:
        alert = await bot.bot.alerts.alert_for(99)
        delivered = alert is not None and alert.state.delivered_at is not None
        return delivered and await _events(bot) == [(99, "Failed"), (99, "Success")]

    await eventually_async(settled)


async def test_a_success_taken_before_its_earlier_failure_waits_for_it(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        store = AlertStore(engine)
        for status in ("Failed", "Success"):
            body = json_body(message_updated_event(7, status=status))
            assert await store.store_event(parse_event(body))
        # Two replicas: one holds the Failed, the other takes the Success that arrived after it.
        failed = await store.claim_events(30.0, limit=1)
        success = await store.claim_events(30.0, limit=1)
        assert [e.event.message.status for e in failed + success if e.event.message] == ["Failed", "Success"]

        await store.apply(success[0], ALERT_CHANNEL)  # too early: given back, not applied, not dropped
        await store.apply(failed[0], ALERT_CHANNEL)
        again = await store.claim_events(30.0)
        assert [e.event.message.status for e in again if e.event.message] == ["Success"]
        await store.apply(again[0], ALERT_CHANNEL)

        alert = await store.alert_for(7)
        assert alert is not None
        assert alert.state.delivered_at is not None  # not an alert for a message that was delivered
    finally:
        await engine.dispose()


async def test_a_chunk_applies_in_arrival_order_and_holds_back_every_later_event_of_a_waiting_message(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        store = AlertStore(engine)
        arrivals = [(7, "Failed"), (8, "Failed"), (7, "Success"), (9, "Success"), (8, "Success"), (7, "Failed")]
        for index, (message_id, status) in enumerate(arrivals):
            # Distinct bodies: the second failure of 7 is news, not a redelivery of the first.
            body = json_body(message_updated_event(message_id, status=status, content=f"update {index}"))
            assert await store.store_event(parse_event(body))
        held_elsewhere = await store.claim_events(30.0, limit=1)  # another replica holds 7's first failure
        rest = await store.claim_events(30.0)

        await store.apply_claimed(rest, lambda _stored: ALERT_CHANNEL)

        # 8 failed then was delivered, within the chunk; 9 concerned nothing and is gone; both of 7's later
        # events wait for its first one, still unapplied.
        eight = await store.alert_for(8)
        assert eight is not None
        assert eight.state.delivered_at is not None
        assert await store.alert_for(7) is None
        async with engine.connect() as connection:
            columns = (WebhookEvent.message_id, WebhookEvent.status, WebhookEvent.processed_at)
            rows = await connection.execute(select(*columns).order_by(WebhookEvent.id))
            left = [(row.message_id, row.status, row.processed_at is not None) for row in rows]
        assert left == [
            (7, "Failed", False),
            (8, "Failed", True),
            (7, "Success", False),
            (8, "Success", True),
            (7, "Failed", False),
        ]

        await store.apply(held_elsewhere[0], ALERT_CHANNEL)
        await store.apply_claimed(await store.claim_events(30.0), lambda _stored: ALERT_CHANNEL)

        seven = await store.alert_for(7)
        assert seven is not None
        assert seven.state.failures == 2  # failed, delivered, then failed again: applied in that order
        assert seven.state.failed_again_at is not None
    finally:
        await engine.dispose()


# -- retention ------------------------------------------------------------------------------------------------


async def test_retention_prunes_what_is_old_and_finished_and_keeps_the_rest(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.command("10")  # finished, accepted
    await bot.webhook(message_updated_event(20), signer)  # an alert, then delivered
    await _alert_posted(slack, 20)
    await bot.webhook(message_updated_event(20, status="Success"), signer)
    await bot.webhook(message_updated_event(30), signer)  # an alert whose retry is in flight
    await _alert_posted(slack, 30)

    async def finished(message_id: int) -> bool:
        # Finished *and reported*: retention keeps an outcome nobody was told about, whatever its age.
        return (
            await _count(
                bot,
                Request,
                Request.message_id == message_id,
                Request.state == RequestState.DONE,
                Request.reported_at.is_not(None),
            )
            == 1
        )

    await eventually_async(lambda: finished(10))
    gate = partoo.hold()
    await bot.command("30")
    await eventually(lambda: partoo.count(30) == 1)

    async def delivered() -> bool:
        alert = await bot.bot.alerts.alert_for(20)
        return alert is not None and alert.state.delivered_at is not None and alert.posted_version >= alert.version

    await eventually_async(delivered)

    pruner = bot.bot.pruner
    pruner.clock = lambda: time.time() + 91 * DAY
    report = await pruner.prune()

    assert report.deleted["requests"] == 1
    assert report.deleted["alerts"] == 1
    assert await _count(bot, Request, Request.message_id == 10) == 0
    assert await _count(bot, Attempt) == 1  # the one in flight, for 30
    assert await bot.bot.alerts.alert_for(20) is None
    assert await bot.bot.alerts.alert_for(30) is not None  # its retry is running
    assert await _count(bot, Request, Request.message_id == 30) == 1
    assert await _count(bot, WebhookEvent) == 0  # all processed

    # `status` says where the log now begins.
    await bot.command("status 10", response_url=slack.response_url("status"))
    answer = str((await eventually(lambda: slack.responses("status")))[0])
    assert "No retry of Partoo message `10` is in the log." in answer
    assert "The log keeps finished retries since" in answer

    gate.release()
    await eventually_async(lambda: finished(30))

    # Its outcome goes once it is reported in Slack (never before: see test_retention_untold.py).
    async def request_pruned() -> bool:
        await pruner.prune()
        return await _count(bot, Request, Request.message_id == 30) == 0

    await eventually_async(request_pruned)
    assert await _count(bot, Attempt) == 0
    assert await _count(bot, Batch) == 0

    # Its alert goes as soon as its Slack message shows the retry's outcome (the alerter renders it).
    async def alert_pruned() -> bool:
        await pruner.prune()
        return await bot.bot.alerts.alert_for(30) is None

    await eventually_async(alert_pruned)


async def _seed_old_history(bot: RunningBot, requests: int) -> None:
    """`requests` finished retries (in batches of 10, one attempt each) and as many processed events, 100 days old."""
    async with bot.bot.engine.begin() as connection:
        batches = [
            {
                "source": "command",
                "requested_by": "U1",
                "channel_id": CHANNEL,
                "total": 10,
                "created_at": OLD,
                "correlation_id": "old",
            }
            for _ in range(requests // 10)
        ]
        await connection.execute(insert(Batch), batches)
        batch_ids = list((await connection.execute(select(Batch.id).order_by(Batch.id))).scalars())
        rows = [
            {
                "batch_id": batch_ids[n // 10],
                "message_id": 1_000_000 + n,
                "requested_by": "U1",
                "requested_at": OLD,
                "state": RequestState.DONE,
                "next_attempt_at": OLD,
                "attempts": 1,
                "outcome": "accepted",
                "finished_at": OLD,
                "reported_at": OLD,
                "logged_at": OLD,
            }
            for n in range(requests)
        ]
        await connection.execute(insert(Request), rows)
        request_ids = list((await connection.execute(select(Request.id))).scalars())
        await connection.execute(
            insert(Attempt), [{"request_id": rid, "worker": "w", "started_at": OLD} for rid in request_ids]
        )
        await connection.execute(
            insert(WebhookEvent),
            [
                {
                    "dedupe_key": f"old-{n}",
                    "received_at": OLD,
                    "type": "message_updated",
                    "message_id": 1_000_000 + n,
                    "status": "Success",
                    "payload": "{}",
                    "processed_at": OLD,
                }
                for n in range(requests)
            ],
        )


async def test_pruning_runs_in_small_batches_while_a_command_is_answered(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    tuning = dataclasses.replace(FAST, retention_batch=50, retention_pause=0.01)
    async with running_bot(slack, environment, tuning) as bot:
        await _seed_old_history(bot, 3000)
        pruning = asyncio.create_task(bot.bot.pruner.prune())

        async def started() -> bool:
            return await _count(bot, Request) < 3000

        await eventually_async(started)
        began = time.perf_counter()
        response = await bot.command("4242")
        answered_in = time.perf_counter() - began

        assert response.status_code == 200
        assert answered_in < 1.5, f"the command waited {answered_in:.2f} s for the pruner"
        assert not pruning.done(), "the pruner finished before the command: nothing was concurrent"
        report = await pruning
        assert report.deleted == {
            "requests": 3000,
            "batches": 300,
            "alerts": 0,
            "digests": 0,
            "events": 3000,
            "plans": 0,
        }
        assert await _count(bot, Request) == 1  # the command's, new
        assert await _count(bot, Attempt, Attempt.request_id.in_(select(Request.id))) == await _count(bot, Attempt)


async def test_retention_days_0_keeps_everything(slack: FakeSlack, environment: dict[str, str]) -> None:
    async with running_bot(slack, {**environment, "RETENTION_DAYS": "0"}) as bot:
        await _seed_old_history(bot, 20)
        await bot.bot.pruner.tick()
        assert await _count(bot, Request) == 20
        ready = (await bot.http.get("/readyz")).json()
        assert ready["retention"] == {"days": 0, "history_starts_at": None}


async def _export(environment: dict[str, str], since: str) -> tuple[str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "log",
        "export",
        "--since",
        since,
        env={"PATH": os.environ.get("PATH", ""), **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


@pytest.mark.long(12)
async def test_the_log_export_says_when_history_starts(
    slack: FakeSlack, partoo: FakePartoo, sqlite_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, signer, LOG_FORMAT="text")
    # The export only reads, and refuses a database without the bot's schema: the bot's start makes it.
    engine = create_engine(sqlite_url)
    await migrate(engine)
    await engine.dispose()
    out, err = await _export(environment, "200d")
    assert out.strip() == ",".join(COLUMNS)  # stdout stays pure CSV
    assert "the log keeps finished retries since" in err
    assert "earlier ones were pruned" in err

    _, err = await _export({**environment, "RETENTION_DAYS": "0"}, "200d")
    assert "keeps finished retries" not in err

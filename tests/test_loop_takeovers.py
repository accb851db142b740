"""Every loop's lease is fenced: a replica whose lease ran out and was taken over writes nothing after.

For the alerter's alert and digest posts, the webhook watch's notice, the diagnosis loop's check claims and
retention's pass
(the worker's lease: tests/test_fencing.py; the notifier's: tests/test_notifier_fencing.py), replica A
claims, its lease runs out (the stores' clock is moved, nobody sleeps), replica B claims the same job, and
A's renewal, "done" and "give back" match nothing while B's stand. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.health import WebhookHealth
from bot.alerts.store import AlertStore
from bot.domain.webhook_activity import SILENT
from bot.failures.diagnosis_store import DiagnosisStore
from bot.failures.state import failure_json
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.models import Alert, Digest, WebhookEvent, WebhookWatch
from bot.platform.retention import DAY, RETENTION, RETENTION_CLAIM_SECONDS, Pruner
from tests.harness import ALERT_CHANNEL
from tests.signing import message_updated_event
from tests.test_fencing import Clock

LEASE = 20.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


async def _alert(engine: AsyncEngine, now: float, message_id: int = 1) -> int:
    event = message_updated_event(message_id, conversation_id=9000 + message_id)
    failure = failure_json(parse_event(json.dumps(event).encode()).message)  # type: ignore[arg-type]
    async with engine.begin() as connection:
        values = {"message_id": message_id, "channel_id": ALERT_CHANNEL, "failure": failure, "failed_at": now}
        return int((await connection.execute(insert(Alert).values(values).returning(Alert.id))).scalar_one())


async def _one(engine: AsyncEngine, column: Any) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(select(column))).scalar_one()


async def test_a_taken_over_alert_post_is_neither_marked_nor_given_back(engine: AsyncEngine) -> None:
    clock = Clock()
    store = AlertStore(engine, clock=clock)
    alert_id = await _alert(engine, clock())
    first = await store.claim_alert(alert_id, LEASE, unposted=True)
    assert first is not None
    clock.advance(LEASE + 1)  # A's post waits out a long Retry-After, its renewals failing
    second = await store.claim_alert(alert_id, LEASE, unposted=True)
    assert second is not None and second != first

    assert not await store.renew_alert_claim(alert_id, first, LEASE)
    assert not await store.mark_alert_posted(alert_id, 1, "1.0", first)
    assert not await store.mark_alert_unpostable(alert_id, 1, first, "channel_not_found")
    await store.release_alert(alert_id, first)
    assert await store.claim_alert(alert_id, LEASE, unposted=True) is None  # still B's
    assert await store.mark_alert_posted(alert_id, 1, "2.0", second)
    assert await _one(engine, Alert.ts) == "2.0"


async def test_a_taken_over_digest_post_is_neither_marked_nor_given_back(engine: AsyncEngine) -> None:
    clock = Clock()
    store = AlertStore(engine, clock=clock)
    async with engine.begin() as connection:
        digest = insert(Digest).values(channel_id=ALERT_CHANNEL, created_at=clock()).returning(Digest.id)
        digest_id = int((await connection.execute(digest)).scalar_one())
    first = await store.claim_digest(digest_id, LEASE)
    assert first is not None
    clock.advance(LEASE + 1)
    second = await store.claim_digest(digest_id, LEASE)
    assert second is not None

    assert not await store.renew_digest_claim(digest_id, first, LEASE)
    assert not await store.mark_digest_posted(digest_id, 1, "1.0", first)
    await store.release_digest(digest_id, first)
    assert await store.claim_digest(digest_id, LEASE) is None
    assert await store.mark_digest_posted(digest_id, 1, "2.0", second)
    assert await _one(engine, Digest.ts) == "2.0"


async def test_a_taken_over_webhook_notice_is_neither_cleared_nor_given_back(engine: AsyncEngine) -> None:
    clock = Clock()
    health = WebhookHealth(engine, clock=clock)
    await health.flush()
    clock.advance(6 * 60)
    await health.watch_silence(5 * 60)  # the silence warning is due
    first = await health.claim_notice(LEASE)
    assert first is not None and first[0] == SILENT
    clock.advance(LEASE + 1)
    second = await health.claim_notice(LEASE)
    assert second is not None

    assert not await health.notices.renew(first[2], LEASE)
    assert not await health.notice_done(first[2], SILENT)
    assert not await health.release_notice(first[2])
    assert await _one(engine, WebhookWatch.notice_due) == SILENT  # B still has to post it
    assert await health.claim_notice(LEASE) is None
    assert await health.notice_done(second[2], SILENT)
    assert await _one(engine, WebhookWatch.notice_due) is None


async def test_a_taken_over_conversation_check_claim_is_not_given_back(engine: AsyncEngine) -> None:
    clock = Clock()
    store = DiagnosisStore(engine, clock=clock)
    await _alert(engine, clock())
    [first] = await store.claim_unchecked_alerts(10, LEASE, 3600.0)
    assert first.held is not None
    clock.advance(LEASE + 1)  # A's check waited past its claim: B takes the alert, not a second check beside it
    [second] = await store.claim_unchecked_alerts(10, LEASE, 3600.0)
    assert second.held is not None and second.held != first.held

    assert not await store.checks.renew(first.held, LEASE)
    assert await store.checks.release(first.held) == 0
    assert await store.claim_unchecked_alerts(10, LEASE, 3600.0) == []
    assert await store.checks.renew(second.held, LEASE)


async def _old_events(engine: AsyncEngine, count: int, now: float) -> None:
    rows = [
        {"dedupe_key": f"old-{n}", "received_at": now, "type": "message_updated", "payload": "{}", "processed_at": now}
        for n in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(WebhookEvent), rows)


async def _events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(WebhookEvent))).scalar_one())


async def test_a_taken_over_retention_pass_deletes_nothing_more(engine: AsyncEngine) -> None:
    clock = Clock()
    await _old_events(engine, 30, clock() - 100 * DAY)
    replica_b = Pruner(engine, retention_seconds=90 * DAY, clock=clock)
    taken: list[Any] = []

    async def stall(_seconds: float) -> None:
        # A's pause between two batches lasts past its lease, and B starts a pass meanwhile.
        clock.advance(RETENTION_CLAIM_SECONDS + 1)
        taken.append(await replica_b.passes.claim(RETENTION, RETENTION_CLAIM_SECONDS))

    replica_a = Pruner(engine, retention_seconds=90 * DAY, batch_size=10, clock=clock, sleep=stall)
    report = await replica_a.prune()

    assert report.deleted["events"] == 10  # its first batch, then nothing
    assert await _events(engine) == 20
    assert taken[0] is not None
    assert (await replica_a.prune()).total == 0  # B holds the pass: A waits
    assert await replica_b.passes.release(taken[0]) == 1  # A's release at the end changed nothing of B's
    assert (await replica_b.prune()).deleted["events"] == 20

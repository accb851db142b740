"""The diagnosis loop never blocks the not-confirmed scan, however long the pace has no slot for checks.

The shared pace is paused for ten minutes (a 429's Retry-After) and every background check would wait for an
idle slot. The loop's round still marks an overdue accepted retry "not confirmed", its checks give their
alerts back after a bounded wait (no call to Partoo), and nothing waits in real time: the pace sleeps by
moving the test's clock.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from bot.alerts.diagnosis_loop import DiagnosisLoop
from bot.domain.outcomes import OutcomeKind
from bot.failures.diagnosis import ConversationChecker
from bot.failures.diagnosis_store import DiagnosisStore
from bot.failures.state import failure_json
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.models import Alert, Batch, Request, RequestState
from bot.platform.pace import SharedPace
from tests.harness import ALERT_CHANNEL
from tests.signing import message_updated_event
from tests.test_fencing import Clock

PAUSE = 600.0
SLOT_WAIT = 5.0


class _Partoo:
    def __init__(self) -> None:
        self.calls = 0

    async def get_conversation(self, conversation_id: int) -> Any:
        self.calls += 1
        raise AssertionError("no slot was free: no check may reach Partoo")


class _Poster:
    def __init__(self) -> None:
        self.posts: list[tuple[str, str | None]] = []

    async def post(self, channel: str, message: Any, *, thread_ts: str | None = None) -> str:
        self.posts.append((channel, thread_ts))
        return "1.0"


async def _seed(engine: Any, now: float) -> None:
    """Alert 1 (never checked, its conversation unknown) and an accepted retry of message 2 an hour ago."""
    async with engine.begin() as connection:
        for message_id in (1, 2):
            event = message_updated_event(message_id, conversation_id=9000 + message_id)
            failure = failure_json(parse_event(json.dumps(event).encode()).message)  # type: ignore[arg-type]
            await connection.execute(
                insert(Alert).values(
                    message_id=message_id,
                    channel_id=ALERT_CHANNEL,
                    failure=failure,
                    failed_at=now - 60 if message_id == 1 else now - 3600,
                    verdict=None if message_id == 1 else "{}",
                    version=1,
                    posted_version=1,
                )
            )
        batch = await connection.execute(
            insert(Batch).values(
                source="click",
                requested_by="U1",
                channel_id=ALERT_CHANNEL,
                total=1,
                created_at=now - 3600,
                correlation_id="bound",
                announced_at=now - 3600,
                root_channel=ALERT_CHANNEL,
                root_ts="5.0",
            )
        )
        await connection.execute(
            insert(Request).values(
                batch_id=batch.inserted_primary_key[0],
                message_id=2,
                requested_by="U1",
                requested_at=now - 3600,
                state=RequestState.DONE,
                next_attempt_at=now - 3600,
                outcome=OutcomeKind.ACCEPTED.value,
                finished_at=now - 3600,
            )
        )


async def test_an_exhausted_pace_for_minutes_does_not_hold_up_not_confirmed(database_url: str) -> None:
    clock = Clock()
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await _seed(engine, clock())

        async def sleep(seconds: float) -> None:
            clock.advance(seconds)  # the pace's wait, in the test's time

        pace = SharedPace(engine, 60, clock=clock, sleep=sleep)
        await pace.pause(PAUSE)
        store = DiagnosisStore(engine, clock=clock)
        partoo = _Partoo()
        partoo_client: Any = partoo
        checker = ConversationChecker(
            store,
            partoo_client,
            pace,
            cache_seconds=60,
            poll_interval=1.0,
            clock=clock,
        )
        poster = _Poster()
        slack: Any = poster
        loop = DiagnosisLoop(
            store,
            checker,
            slack,
            not_confirmed_minutes=15,
            clock=clock,
            slot_wait=SLOT_WAIT,
        )
        started = clock()

        await loop.tick()

        assert clock() - started <= SLOT_WAIT + 1.0  # not the pause's 600 s
        assert partoo.calls == 0
        assert poster.posts == [(ALERT_CHANNEL, "5.0")]  # "not confirmed" in the retry's thread
        async with engine.connect() as connection:
            marked = (await connection.execute(select(Request.not_confirmed_at))).scalar_one()
        assert marked is not None
        # The check gave its alert back: the next round (of any replica) may take it at once.
        assert [alert.message_id for alert in await store.claim_unchecked_alerts(10, 20.0, 3600.0)] == [1]
    finally:
        await engine.dispose()

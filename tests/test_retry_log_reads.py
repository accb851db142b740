"""Reading the retry log costs a fixed number of queries, however many rows there are or how often it is read.

Queries are counted at the driver (SQLAlchemy's `before_cursor_execute`), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.retry_requests import NewBatch
from bot.platform.database import create_engine, migrate
from bot.retries.notifier import Notifier
from bot.retries.retry_log import RetryLog
from bot.retries.store import RetryQueue
from tests.fakes import FakeSlack
from tests.harness import CHANNEL, USER, message_text, paced_poster

ACCEPTED = PartooAnswer(OutcomeKind.ACCEPTED, http_status=200)
UNAVAILABLE = PartooAnswer(OutcomeKind.UNAVAILABLE, http_status=503, detail="busy")
REFUSED = PartooAnswer(OutcomeKind.REFUSED, http_status=400, detail="refused")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.contextmanager
def reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SELECT statements sent to the database inside the block."""
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def _ask(name: str) -> NewBatch:
    return NewBatch(source="command", requested_by=USER, channel_id=CHANNEL, correlation_id=name)


async def _run_once(queue: RetryQueue, answer: PartooAnswer, *, final: bool = True) -> None:
    """What a worker does for the next due request: claim it, open an attempt, record Partoo's answer."""
    request = await queue.claim_next("worker", lease_seconds=30)
    assert request is not None
    attempt_id = await queue.begin_attempt(request.id, request.lease_token, "worker")
    assert attempt_id is not None
    await queue.record_answer(request.id, attempt_id, request.lease_token, answer, retry_at=None if final else 0.0)


async def test_a_messages_history_is_read_in_two_queries_however_many_requests_it_has(engine: AsyncEngine) -> None:
    queue, retry_log = RetryQueue(engine), RetryLog(engine)
    for n in range(6):
        result = await queue.enqueue(_ask(f"r{n}"), [4567])
        assert result.batch_id is not None
        claimed = await queue.claim_announcement(30.0)
        assert claimed is not None and claimed[0].id == result.batch_id
        await queue.mark_announced(claimed[1], root_channel=None, root_ts=None, uses_response_url=False)
        if n == 0:
            await _run_once(queue, UNAVAILABLE, final=False)  # a first attempt, then a second one
        # Refused each time: an accepted retry would rightly keep the next one out until Partoo reports on it.
        await _run_once(queue, REFUSED)
    await queue.enqueue(_ask("other"), [9999])

    with reads(engine) as statements:
        history = await retry_log.history(4567)

    assert [len(attempts) for _request, _batch, attempts in history] == [2, 1, 1, 1, 1, 1]
    assert [batch.correlation_id for _request, batch, _attempts in history] == [f"r{n}" for n in range(6)]
    assert [attempt.outcome for attempt in history[0][2]] == [OutcomeKind.UNAVAILABLE, OutcomeKind.REFUSED]
    assert all(request.message_id == 4567 for request, _batch, _attempts in history)
    assert len(statements) <= 2, statements


async def test_the_notifier_reads_only_the_batches_where_something_changed(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    queue = RetryQueue(engine)
    # Five root messages at once: within FakeSlack's burst of 3 per channel only if spread, so a burst of 5
    # here (this test is about what the notifier reads, not about the pace).
    slack.enforce_post_rate(burst=5)
    notifier = Notifier(queue, paced_poster(slack, engine, burst=5))
    with reads(engine) as nothing_open:
        await notifier.tick()

    for n in range(5):
        await queue.enqueue(_ask(f"b{n}"), [100 * n + 1, 100 * n + 2, 100 * n + 3])
    await notifier.tick()  # posts the five root messages
    assert len(slack.root_messages(CHANNEL)) == 5

    # Five open batches where nothing happened since: a round reads what it reads with none open.
    with reads(engine) as idle:
        await notifier.tick()
    assert len(idle) == len(nothing_open), idle

    # One request finished: that batch alone is read again, and its progress shown.
    await _run_once(queue, ACCEPTED)
    with reads(engine) as one_changed:
        await notifier.tick()
    assert len(one_changed) == len(idle) + 1, one_changed
    assert sum("1/3 done" in message_text(message) for message in slack.root_messages(CHANNEL)) == 1

    # Shown: nothing to read again.
    with reads(engine) as shown:
        await notifier.tick()
    assert len(shown) == len(idle), shown

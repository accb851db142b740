"""Leases are fenced: a worker whose call outlived its lease can no longer change the request.

Two workers share the real store; the store's clock is driven by the test, so a lease expires without
anyone sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.exc import OperationalError

from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.retry_requests import NewBatch, RequestView
from bot.platform.database import create_engine, migrate
from bot.platform.models import RequestState
from bot.platform.pace import LATE_ALLOWANCE
from bot.retries.retry_log import RetryLog
from bot.retries.store import LATE_ANSWER, RetryQueue
from bot.retries.worker import RetryWorker

LEASE = 30.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Queue:
    store: RetryQueue
    clock: Clock

    async def one_request(self, message_id: int) -> None:
        ask = NewBatch(source="command", requested_by="U1", channel_id="C1", correlation_id="fencing")
        result = await self.store.enqueue(ask, [message_id])
        assert result.batch_id is not None
        claimed = await self.store.claim_announcement(30.0)
        assert claimed is not None and claimed[0].id == result.batch_id
        await self.store.mark_announced(claimed[1], root_channel=None, root_ts=None, uses_response_url=False)

    async def claim(self, owner: str) -> RequestView:
        request = await self.store.claim_next(owner, LEASE)
        assert request is not None
        return request


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[Queue]:
    engine = create_engine(database_url)
    await migrate(engine)
    clock = Clock()
    yield Queue(RetryQueue(engine, clock=clock), clock)
    await engine.dispose()


async def _taken_over_in_flight(queue: Queue) -> tuple[RequestView, int, RequestView]:
    """Worker A opened an attempt and its call hangs past the lease; worker B takes the request over."""
    await queue.one_request(501)
    first = await queue.claim("worker-a")
    attempt = await queue.store.begin_attempt(first.id, first.lease_token, "worker-a")
    assert attempt is not None
    queue.clock.advance(LEASE + 1)
    second = await queue.claim("worker-b")
    assert second.id == first.id
    assert second.in_flight_since is not None
    assert second.lease_token != first.lease_token
    return first, attempt, second


async def test_a_late_answer_after_a_takeover_is_history_only_and_never_requeues(queue: Queue) -> None:
    first, attempt, second = await _taken_over_in_flight(queue)
    assert await queue.store.finish_without_call(second.id, second.lease_token, OutcomeKind.UNKNOWN, "taken over")

    # A's call finally returns a 503, which on its own lease would put the request back in the queue.
    late = PartooAnswer(OutcomeKind.UNAVAILABLE, http_status=503, detail="bad gateway")
    recorded = await queue.store.record_answer(first.id, attempt, first.lease_token, late, retry_at=queue.clock() + 1)

    assert recorded is False
    request, _batch, attempts = (await RetryLog(queue.store.engine).history(501))[-1]
    assert request.state == RequestState.DONE
    assert request.outcome is OutcomeKind.UNKNOWN
    assert attempts[-1].outcome is OutcomeKind.UNAVAILABLE
    assert attempts[-1].detail is not None and attempts[-1].detail.startswith(LATE_ANSWER)
    queue.clock.advance(60)
    assert await queue.store.claim_next("worker-c", LEASE) is None  # never sent a second time


async def test_a_late_answer_cannot_overwrite_the_takeover_even_before_it_closed_the_request(queue: Queue) -> None:
    first, attempt, second = await _taken_over_in_flight(queue)

    late = PartooAnswer(OutcomeKind.ACCEPTED, http_status=200)
    assert not await queue.store.record_answer(first.id, attempt, first.lease_token, late, retry_at=None)
    assert await queue.store.finish_without_call(second.id, second.lease_token, OutcomeKind.UNKNOWN, "taken over")

    request, _batch, _attempts = (await RetryLog(queue.store.engine).history(501))[-1]
    assert request.outcome is OutcomeKind.UNKNOWN


async def test_a_stale_holder_closes_nothing(queue: Queue) -> None:
    first, _attempt, second = await _taken_over_in_flight(queue)

    assert not await queue.store.finish_without_call(first.id, first.lease_token, OutcomeKind.UNKNOWN, "stale")
    assert not await queue.store.release(first.id, first.lease_token)
    assert not await queue.store.renew_lease(first.id, first.lease_token, LEASE)

    request, _batch, attempts = (await RetryLog(queue.store.engine).history(501))[-1]
    assert request.state == RequestState.RUNNING
    assert [a.finished_at for a in attempts] == [None]  # the attempt is left for the real holder to close
    assert await queue.store.renew_lease(second.id, second.lease_token, LEASE)


async def test_a_lost_lease_cannot_open_an_attempt(queue: Queue) -> None:
    await queue.one_request(502)
    first = await queue.claim("worker-a")
    queue.clock.advance(LEASE + 1)
    second = await queue.claim("worker-b")

    assert await queue.store.begin_attempt(first.id, first.lease_token, "worker-a") is None
    assert await queue.store.begin_attempt(second.id, second.lease_token, "worker-b") is not None


class _Pace:
    """Slots at once; the 429 pause hits a database hiccup."""

    async def wait_for_slot(self) -> float:
        return 0.0

    def is_late(self, slot: float) -> bool:
        return False

    async def pause(self, seconds: float) -> None:
        raise OperationalError("UPDATE partoo_pace", {}, Exception("database is locked"))


class _RateLimitingPartoo:
    async def retry_message(self, message_id: int) -> PartooAnswer:
        return PartooAnswer(OutcomeKind.RATE_LIMITED, http_status=429, retry_after=2.0)


async def test_a_429_is_recorded_even_when_the_pause_fails(queue: Queue) -> None:
    await queue.one_request(503)
    worker = RetryWorker(
        queue.store,
        _Pace(),  # type: ignore[arg-type]
        _RateLimitingPartoo(),  # type: ignore[arg-type]
        worker_id="worker-a",
        lease_seconds=LEASE,
        clock=queue.clock,
    )
    request = await queue.claim("worker-a")

    await worker._run(request)

    current, _batch, attempts = (await RetryLog(queue.store.engine).history(503))[-1]
    # Partoo said "not now": the request waits for another attempt instead of being left in flight, to be
    # closed as "unknown" by whoever takes it over.
    assert current.state == RequestState.QUEUED
    assert current.outcome is OutcomeKind.RATE_LIMITED
    assert current.in_flight_since is None
    assert attempts[-1].outcome is OutcomeKind.RATE_LIMITED


class _AcceptingPartoo:
    def __init__(self) -> None:
        self.called: list[int] = []

    async def retry_message(self, message_id: int) -> PartooAnswer:
        self.called.append(message_id)
        return PartooAnswer(OutcomeKind.ACCEPTED, http_status=200)


class _SlotPassedWhileOpening:
    """Partoo's pace as a loaded machine sees it: the first slot has passed by the time the attempt is stored
    (a slow commit), and the next one comes when the test says so."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slots = 0
        self.waiting_for_another = asyncio.Event()
        self.next_slot = asyncio.Event()

    async def wait_for_slot(self) -> float:
        self.slots += 1
        if self.slots == 1:
            return self.clock.now - 2 * LATE_ALLOWANCE
        self.waiting_for_another.set()
        await self.next_slot.wait()
        return self.clock.now

    def is_late(self, slot: float) -> bool:
        return self.clock.now - slot > LATE_ALLOWANCE


class _OnTime:
    async def wait_for_slot(self) -> float:
        return 0.0

    def is_late(self, slot: float) -> bool:
        return False


def _worker(queue: Queue, pace: object, partoo: _AcceptingPartoo, name: str) -> RetryWorker:
    return RetryWorker(
        queue.store,
        pace,  # type: ignore[arg-type]
        partoo,  # type: ignore[arg-type]
        worker_id=name,
        lease_seconds=LEASE,
        clock=queue.clock,
    )


async def _waiting_for_a_new_slot(
    queue: Queue, message_id: int
) -> tuple[asyncio.Task[None], _SlotPassedWhileOpening, _AcceptingPartoo]:
    """Worker A opened its attempt too late for its slot and now waits for another."""
    await queue.one_request(message_id)
    partoo = _AcceptingPartoo()
    pace = _SlotPassedWhileOpening(queue.clock)
    running = asyncio.create_task(_worker(queue, pace, partoo, "worker-a")._run(await queue.claim("worker-a")))
    await pace.waiting_for_another.wait()
    return running, pace, partoo


async def test_a_call_too_late_for_its_slot_waits_for_another_and_is_made_once(queue: Queue) -> None:
    running, pace, partoo = await _waiting_for_a_new_slot(queue, 504)
    waiting, _batch, _attempts = (await RetryLog(queue.store.engine).history(504))[-1]
    assert partoo.called == []  # not on the slot that passed
    assert waiting.in_flight_since is None  # and nothing is marked as being sent while it waits

    pace.next_slot.set()
    await running

    current, _batch, attempts = (await RetryLog(queue.store.engine).history(504))[-1]
    assert partoo.called == [504]
    assert current.outcome is OutcomeKind.ACCEPTED
    assert [attempt.outcome for attempt in attempts] == [OutcomeKind.ACCEPTED]


async def test_a_worker_that_dies_waiting_for_a_new_slot_leaves_the_message_to_be_sent(queue: Queue) -> None:
    # Nothing was sent on the slot that passed: whoever takes the request over must send it, not close it as
    # "unknown" as it would a call that may have reached Partoo.
    dying, _pace, partoo = await _waiting_for_a_new_slot(queue, 505)
    dying.cancel()  # the process is killed: nothing more is written
    await asyncio.gather(dying, return_exceptions=True)

    queue.clock.advance(LEASE + 1)
    await _worker(queue, _OnTime(), partoo, "worker-b")._run(await queue.claim("worker-b"))

    current, _batch, attempts = (await RetryLog(queue.store.engine).history(505))[-1]
    assert partoo.called == [505]
    assert current.outcome is OutcomeKind.ACCEPTED
    assert len(attempts) == 1

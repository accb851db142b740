"""The notifier's leases are fenced: a replica whose lease ran out and was taken over writes nothing after.

Two replicas share the real store; the store's clock is driven by the test, so a lease expires without
anyone sleeping. For each post the notifier makes (a batch's root message, a one-message outcome, a batch
summary, log channel lines), replica A claims, its lease runs out, replica B claims the same post, and A's
late "posted", "give back" and "renew" all match nothing, while B's work stands.
"""

from __future__ import annotations

from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import NewBatch
from bot.retries.store import RetryQueue
from tests.test_fencing import Clock

LEASE = 30.0


async def _batch(queue: RetryQueue, message_ids: list[int]) -> int:
    ask = NewBatch(source="command", requested_by="U1", channel_id="C1", correlation_id="notifier-fencing")
    result = await queue.enqueue(ask, message_ids)
    assert result.batch_id is not None
    return result.batch_id


async def _finished(queue: RetryQueue, clock: Clock, message_ids: list[int]) -> int:
    """A batch announced (no root message) whose requests all finished."""
    batch_id = await _batch(queue, message_ids)
    claimed = await queue.claim_announcement(LEASE)
    assert claimed is not None
    assert await queue.mark_announced(claimed[1], root_channel=None, root_ts=None, uses_response_url=False)
    for _ in message_ids:
        request = await queue.claim_next("worker", LEASE)
        assert request is not None
        assert await queue.close_unsent(request.id, request.lease_token, OutcomeKind.SKIPPED, "test")
    clock.advance(1)
    return batch_id


async def test_a_taken_over_announcement_records_nothing(clocked_queue: tuple[RetryQueue, Clock]) -> None:
    queue, clock = clocked_queue
    batch_id = await _batch(queue, [601])
    first = await queue.claim_announcement(LEASE)
    assert first is not None
    clock.advance(LEASE + 1)  # A's Slack call outlived its lease (a long Retry-After)
    second = await queue.claim_announcement(LEASE)
    assert second is not None and second[0].id == batch_id
    assert await queue.mark_announced(second[1], root_channel="C1", root_ts="2.0", uses_response_url=False)

    assert not await queue.announcements.renew(first[1], LEASE)
    assert not await queue.mark_announced(first[1], root_channel="C1", root_ts="1.0", uses_response_url=False)
    assert not await queue.announcements.release(first[1])
    batch = await queue.batch(batch_id)
    assert batch.root_ts == "2.0"  # B's root message is the one the outcomes go under
    assert await queue.claim_announcement(LEASE) is None


async def test_a_taken_over_report_is_neither_marked_nor_given_back(clocked_queue: tuple[RetryQueue, Clock]) -> None:
    queue, clock = clocked_queue
    await _finished(queue, clock, [602])
    [request] = await queue.unreported()
    first = await queue.claim_report(request.id, LEASE)
    assert first is not None
    clock.advance(LEASE + 1)
    second = await queue.claim_report(request.id, LEASE)
    assert second is not None and second.token != first.token

    # A's late "Slack unavailable, try later" must not free B's claim for a third replica.
    assert not await queue.retry_report_in(first, 0.0)
    assert await queue.claim_report(request.id, LEASE) is None
    assert not await queue.mark_reported(first)
    assert await queue.unreported() == []  # still B's, unmarked
    assert await queue.mark_reported(second)
    clock.advance(LEASE + 1)
    assert await queue.claim_report(request.id, LEASE) is None  # reported once, never again


async def test_a_taken_over_summary_marks_nothing(clocked_queue: tuple[RetryQueue, Clock]) -> None:
    queue, clock = clocked_queue
    batch_id = await _finished(queue, clock, [603, 604])
    requests = [request.id for request in await queue.batch_requests(batch_id)]
    first = await queue.claim_summary(batch_id, LEASE)
    assert first is not None
    clock.advance(LEASE + 1)
    second = await queue.claim_summary(batch_id, LEASE)
    assert second is not None

    assert not await queue.retry_summary_in(first, 0.0)
    assert await queue.claim_summary(batch_id, LEASE) is None
    assert not await queue.mark_summarized(first, requests)
    assert (await queue.batch(batch_id)).summarized_at is None
    assert await queue.mark_summarized(second, requests)
    assert (await queue.batch(batch_id)).summarized_at is not None


async def test_taken_over_log_lines_are_neither_marked_nor_given_back(clocked_queue: tuple[RetryQueue, Clock]) -> None:
    queue, clock = clocked_queue
    await _finished(queue, clock, [605, 606])
    first = await queue.claim_log_lines(LEASE)
    assert [request.message_id for request, _ in first] == [605, 606]
    assert await queue.claim_log_lines(LEASE) == []  # leased: nobody else posts them meanwhile
    clock.advance(LEASE + 1)
    second = await queue.claim_log_lines(LEASE)
    assert [request.message_id for request, _ in second] == [605, 606]

    assert await queue.release_log_lines([held for _, held in first]) == 0
    assert await queue.mark_logged([held for _, held in first]) == 0
    assert await queue.claim_log_lines(LEASE) == []
    assert await queue.mark_logged([held for _, held in second]) == 2
    clock.advance(LEASE + 1)
    assert await queue.claim_log_lines(LEASE) == []  # logged once, never again


async def test_log_lines_not_posted_come_back_when_their_lease_runs_out(
    clocked_queue: tuple[RetryQueue, Clock],
) -> None:
    queue, clock = clocked_queue
    await _finished(queue, clock, [607])
    assert len(await queue.claim_log_lines(LEASE)) == 1  # the replica dies here, before posting
    clock.advance(LEASE + 1)
    assert [request.message_id for request, _ in await queue.claim_log_lines(LEASE)] == [607]

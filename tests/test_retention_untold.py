"""Retention never deletes an outcome nobody was told about, whatever its age.

Slack refuses the bot's token for longer than the retention period: the outcome stays until the notifier
has posted it (in its thread and in the log channel), and goes at the next pass after that. The store, the
notifier and the pruner are the real ones; Slack is a stand-in whose token works or not, and the clocks are
moved instead of waiting months.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.defaults import SLACK_RETRY_SECONDS
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import NewBatch
from bot.platform.models import Request
from bot.platform.retention import DAY, Pruner
from bot.platform.slack import SlackAuthError
from bot.retries.notifier import Notifier
from bot.retries.store import RetryQueue
from tests.test_fencing import Clock

LOG_CHANNEL = "CLOG"


class _Slack:
    """Posts succeed while `token_works`; otherwise every call answers `invalid_auth`."""

    pause_seconds = SLACK_RETRY_SECONDS  # what is not posted is tried again this long after, as SlackPoster says

    def __init__(self) -> None:
        self.token_works = False
        self.posts: list[str] = []

    async def post(
        self, channel: str, message: Any, *, thread_ts: str | None = None, max_wait: float | None = None
    ) -> str:
        if not self.token_works:
            raise SlackAuthError("invalid_auth")
        self.posts.append(channel)
        return f"{len(self.posts)}.0"

    async def update(self, channel: str, ts: str, message: Any) -> None:
        if not self.token_works:
            raise SlackAuthError("invalid_auth")

    async def respond(self, response_url: str, message: Any, *, in_channel: bool) -> None:
        if not self.token_works:
            raise SlackAuthError("invalid_auth")


async def _requests(queue: RetryQueue) -> int:
    async with queue.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(Request))).scalar_one())


@pytest.mark.long(12)
@pytest.mark.parametrize("log_channel", [LOG_CHANNEL, None], ids=["log-channel", "no-log-channel"])
async def test_an_outcome_slack_never_heard_of_outlives_the_retention_period(
    clocked_queue: tuple[RetryQueue, Clock], log_channel: str | None
) -> None:
    store, clock = clocked_queue
    slack = _Slack()
    notifier = Notifier(store, slack, log_channel=log_channel, log_interval=0.0, clock=clock)  # type: ignore[arg-type]
    pruner = Pruner(store.engine, retention_seconds=90 * DAY, pause=0.0, clock=clock, log_channel=bool(log_channel))
    ask = NewBatch(source="command", requested_by="U1", channel_id="C1", correlation_id="retention")
    assert (await store.enqueue(ask, [701])).batch_id is not None
    await notifier.tick()  # the announcement fails too: the outcome will be posted whole, later
    request = await store.claim_next("worker", 30.0)
    assert request is not None
    assert await store.close_unsent(request.id, request.lease_token, OutcomeKind.SKIPPED, "test")

    for _day in range(100):  # Slack refuses the token for 100 days; the notifier keeps trying
        clock.advance(DAY)
        await notifier.tick()
        await pruner.prune()
    assert slack.posts == []
    assert await _requests(store) == 1

    slack.token_works = True
    clock.advance(DAY)
    await notifier.tick()
    assert slack.posts == ["C1", LOG_CHANNEL] if log_channel else ["C1"]
    assert (await pruner.prune()).deleted["requests"] == 1
    assert await _requests(store) == 0


async def test_a_reported_outcome_not_yet_in_the_log_channel_is_kept(clocked_queue: tuple[RetryQueue, Clock]) -> None:
    store, clock = clocked_queue
    ask = NewBatch(source="command", requested_by="U1", channel_id="C1", correlation_id="retention")
    assert (await store.enqueue(ask, [702])).batch_id is not None
    claimed = await store.claim_announcement(30.0)
    assert claimed is not None
    assert await store.mark_announced(claimed[1], root_channel=None, root_ts=None, uses_response_url=False)
    request = await store.claim_next("worker", 30.0)
    assert request is not None
    assert await store.close_unsent(request.id, request.lease_token, OutcomeKind.SKIPPED, "test")
    held = await store.claim_report(request.id, 30.0)
    assert held is not None and await store.mark_reported(held)
    clock.advance(100 * DAY)

    pruner = Pruner(store.engine, retention_seconds=90 * DAY, pause=0.0, clock=clock, log_channel=True)
    assert (await pruner.prune()).deleted["requests"] == 0
    logged = await store.claim_log_lines(30.0)
    assert await store.mark_logged([lease for _request, lease in logged]) == 1
    assert (await pruner.prune()).deleted["requests"] == 1

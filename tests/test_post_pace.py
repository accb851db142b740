"""Slack's posting limit: every post the bot makes in a channel takes a slot of that channel's shared pace.

FakeSlack enforces the documented limit (about one chat.postMessage a second per channel, bursts of 3, 429 with
Retry-After past it), so these tests see what a real workspace would answer.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.platform.database import create_engine, migrate
from bot.platform.slack import ChannelBusy
from tests.fakes import FakeSlack
from tests.harness import CHANNEL, RunningBot, message_text, paced_poster, running_bot
from tests.waiting import eventually

BURST = 30
# Every post Slack refused, over every post the bot tried: the goal for a burst in one channel.
MAX_RATE_LIMITED_SHARE = 0.10


def _outcomes_posted(slack: FakeSlack, ids: range) -> set[int]:
    """The ids whose outcome is in the channel: in a thread reply of their root message, or posted whole."""
    posted = set()
    for root in slack.root_messages(CHANNEL):
        text = message_text(root) + " ".join(message_text(reply) for reply in slack.thread(CHANNEL, root.ts))
        posted |= {n for n in ids if f"`{n}`" in message_text(root) and "Partoo accepted the retry" in text}
    return posted


@pytest.mark.long(12)
async def test_thirty_commands_at_once_in_one_channel_stay_within_slacks_posting_limit(
    bot: RunningBot, slack: FakeSlack
) -> None:
    ids = range(7001, 7001 + BURST)
    answers = await asyncio.gather(*(bot.command(str(n), response_url=slack.response_url(f"c{n}")) for n in ids))
    assert all(answer.status_code == 200 for answer in answers)

    # About two posts per command (root, outcome) at one a second: a minute, give or take.
    await eventually(lambda: _outcomes_posted(slack, ids) == set(ids), timeout=150, interval=0.5)

    posts = len(slack.calls_to("chat.postMessage"))
    print(f"{BURST} commands at once in one channel: {posts} posts, {slack.rate_limited_count} answered 429")
    # The queue was said, not kept silent: the first root messages told the channel how many were waiting.
    roots = [call.params for call in slack.calls_to("chat.postMessage") if not call.params.get("thread_ts")]
    assert "outcomes waiting for Slack's posting limit in this channel" in json.dumps(roots[0])
    assert slack.rate_limited_count <= MAX_RATE_LIMITED_SHARE * posts, (slack.rate_limited_count, posts)
    # Measured: none at all (the pace's burst of 2 keeps one of Slack's 3 spare for jitter).
    assert slack.rate_limited_count == 0, (slack.rate_limited_count, posts)
    assert not slack.refusals


async def test_a_stop_does_not_wait_for_a_busy_channels_queue_and_the_next_start_posts_the_rest_once(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    ids = range(7101, 7109)  # about 16 posts in one channel, at one a second
    async with running_bot(slack, environment) as bot:
        answers = await asyncio.gather(*(bot.command(str(n)) for n in ids))
        assert all(answer.status_code == 200 for answer in answers)
        await eventually(lambda: len(slack.calls_to("chat.postMessage")) >= 3)  # the channel's queue is under way
        poster = bot.bot.poster

        async def when_the_stop_began() -> float:
            await eventually(poster.stopping.is_set)
            return time.monotonic()

        stop_began = asyncio.create_task(when_the_stop_began())
    began = await stop_began
    # At most the post already on its way to Slack when the stop began: none waited for its slot.
    assert len([call for call in slack.calls_to("chat.postMessage") if call.at > began]) <= 1
    assert _outcomes_posted(slack, ids) != set(ids)  # the rest was left for the next start

    async with running_bot(slack, environment):
        await eventually(lambda: _outcomes_posted(slack, ids) == set(ids), timeout=60, interval=0.2)
    roots = slack.root_messages(CHANNEL)
    assert all(sum(f"`{n}`" in message_text(root) for root in roots) == 1 for n in ids)  # each command's root once


async def test_a_post_gives_up_at_once_when_its_channel_is_booked_past_the_wait_limit(
    slack: FakeSlack, sqlite_url: str
) -> None:
    engine = create_engine(sqlite_url)
    await migrate(engine)
    try:
        poster = paced_poster(slack, engine)
        pace = await poster.paces.for_channel(CHANNEL)
        for _ in range(int(poster.max_wait) + 3):
            await pace.reserve()  # other replicas' posts, booked ahead

        try:
            await poster.post(CHANNEL, _Text("hello"))
        except ChannelBusy:
            pass
        else:
            raise AssertionError("posted past a full pace")
    finally:
        await engine.dispose()
    assert not slack.calls_to("chat.postMessage")


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def as_kwargs(self) -> dict[str, str]:
        return {"text": self.text}

"""Webhook health: when the last Partoo webhook arrived, how many in the last hour, and a warning on silence."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from bot.alerts.health import WebhookHealth
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL, FAST, USER, RunningBot, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async

WATCHED = dataclasses.replace(FAST, health_interval=3600.0)


async def _by_hand(bot: RunningBot) -> None:
    """Stop the watch loop (after its first round at start): the test calls its rounds itself."""
    await bot.bot.watcher.stop()
    await eventually(lambda: not bot.bot.watcher.running)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _notices(slack: FakeSlack) -> list[str]:
    return [
        message.text or "" for message in slack.root_messages(ALERT_CHANNEL) if "Partoo webhook" in (message.text or "")
    ]


async def _home(bot: RunningBot, slack: FakeSlack, containing: str) -> str:
    await bot.event(
        {
            "type": "event_callback",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"},
        }
    )
    # The view is published after Slack got its answer (App Home answers first): wait for the new one.

    def published() -> str:
        view = slack.published_view(USER)
        text = json.dumps(view) if view else ""
        return text if containing in text else ""

    return await eventually(published)


async def test_readyz_and_app_home_show_the_last_webhook_and_the_count_of_the_last_hour(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    ready = await bot.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["webhooks"] == {"last_at": None, "seconds_since_last": None, "last_hour": 0}
    assert "none received yet" in await _home(bot, slack, "none received yet")

    await bot.webhook(message_updated_event(1, status="Success"), signer)
    await bot.webhook(message_updated_event(2, status="Sending"), signer)  # ignored, but it arrived
    await bot.webhook(message_updated_event(3), signer, **{"X-Partoo-Webhook-Tryout": "true"})
    forged = await bot.webhook(message_updated_event(4), PartooSigner())  # not from Partoo: not counted
    assert forged.status_code == 401

    ready = await bot.http.get("/readyz")
    assert ready.status_code == 200  # detail, never a reason to fail
    webhooks = ready.json()["webhooks"]
    assert webhooks["last_hour"] == 3
    assert webhooks["seconds_since_last"] <= 5
    assert ready.json()["retention"]["days"] == 90
    assert ready.json()["retention"]["history_starts_at"] is not None
    home = await _home(bot, slack, "*3* in the last hour")
    assert "The log keeps finished retries since" in home

    # Written to the database, the counts are what every replica sees.
    await bot.bot.health.flush()
    other_replica = await WebhookHealth(bot.bot.engine).activity()
    assert other_replica.last_hour == 3
    assert other_replica.last_at is not None


async def test_silence_raises_one_warning_and_its_end_one_back_to_normal(
    slack: FakeSlack, environment: dict[str, str], signer: PartooSigner
) -> None:
    clock = Clock()
    async with running_bot(slack, {**environment, "WEBHOOK_SILENCE_ALERT_MINUTES": "30"}, WATCHED) as bot:
        await _by_hand(bot)
        bot.bot.health.clock = clock
        watcher = bot.bot.watcher
        await bot.webhook(message_updated_event(1, status="Success"), signer)
        await watcher.tick()
        clock.now += 29 * 60
        await watcher.tick()
        assert _notices(slack) == []

        clock.now += 2 * 60  # 31 minutes without a delivery
        for _ in range(4):
            await watcher.tick()
        assert len(_notices(slack)) == 1
        assert "No Partoo webhook for 30 min" in _notices(slack)[0]

        await bot.webhook(message_updated_event(2, status="Success"), signer)
        for _ in range(4):
            await watcher.tick()
        notices = _notices(slack)
        assert len(notices) == 2
        assert "arrive again" in notices[1]


async def test_a_silence_that_ends_before_its_warning_is_posted_posts_nothing(
    slack: FakeSlack, environment: dict[str, str], signer: PartooSigner
) -> None:
    clock = Clock()
    async with running_bot(slack, {**environment, "WEBHOOK_SILENCE_ALERT_MINUTES": "5"}, WATCHED) as bot:
        await _by_hand(bot)
        health = bot.bot.health
        health.clock = clock
        await health.flush()
        clock.now += 6 * 60
        await health.watch_silence(5 * 60)  # silent: a warning is due …
        health.note_delivery()
        await health.flush()
        await health.watch_silence(5 * 60)  # … and withdrawn before anyone posted it
        assert await health.claim_notice(20.0) is None
        await bot.bot.watcher.tick()
        assert _notices(slack) == []


async def test_without_the_setting_silence_posts_nothing(bot: RunningBot, slack: FakeSlack) -> None:
    clock = Clock()
    await _by_hand(bot)
    bot.bot.health.clock = clock
    clock.now += 7 * 24 * 3600
    await bot.bot.watcher.tick()
    assert _notices(slack) == []


@pytest.mark.long(7)
async def test_a_slack_outage_delays_the_warning_but_loses_it_not(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    clock = Clock()
    async with running_bot(slack, {**environment, "WEBHOOK_SILENCE_ALERT_MINUTES": "5"}, WATCHED) as bot:
        await _by_hand(bot)
        bot.bot.health.clock = clock
        await bot.bot.watcher.tick()
        clock.now += 6 * 60
        slack.fail_next("chat.postMessage", times=20, status=503)  # beyond slack_sdk's own retries
        await bot.bot.watcher.tick()
        assert _notices(slack) == []

        async def posted() -> bool:
            await bot.bot.watcher.tick()
            return len(_notices(slack)) == 1

        await eventually_async(posted, timeout=60)
        await bot.bot.watcher.tick()
        assert len(_notices(slack)) == 1

"""Slack's failures, one policy: transient and auth failures keep the post, permanent ones are recorded.

And a post claim is kept while Slack makes the bot wait, so two replicas never post the same alert.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bot.alerts.alerter import Alerter
from bot.alerts.store import AlertStore
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.pace import ChannelPaces
from bot.platform.slack import (
    CannotPostHere,
    SlackAuthError,
    SlackPermanent,
    SlackPoster,
    SlackUnavailable,
    build_web_client,
)
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL, BOT_TOKEN, RunningBot, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async


@pytest.fixture
async def paces(sqlite_url: str) -> AsyncIterator[ChannelPaces]:
    """The posting pace a poster needs; fast, since these tests are about Slack's errors, not its pace."""
    engine = create_engine(sqlite_url)
    await migrate(engine)
    yield ChannelPaces(engine, 6000, default_channel=ALERT_CHANNEL)
    await engine.dispose()


def _alerter(store: AlertStore, slack: FakeSlack, claim_seconds: float) -> Alerter:
    paces = ChannelPaces(store.engine, 6000, default_channel=ALERT_CHANNEL)
    poster = SlackPoster(build_web_client(BOT_TOKEN, slack.api_url), paces)
    return Alerter(store, poster, alert_channel=ALERT_CHANNEL, poll_interval=0.02, claim_seconds=claim_seconds)


async def test_two_replicas_post_an_alert_once_while_slack_makes_them_wait_longer_than_the_claim(
    slack: FakeSlack, database_url: str
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    store = AlertStore(engine)
    body = json.dumps(message_updated_event(4567)).encode()
    assert await store.store_event(parse_event(body))
    # Slack answers the first post 429 with a Retry-After (2 s) well past the claim (0.5 s): slack_sdk waits.
    slack.fail_next("chat.postMessage", status=429, retry_after=2)
    one, two = _alerter(store, slack, 0.5), _alerter(store, slack, 0.5)

    loops = [asyncio.create_task(one.run()), asyncio.create_task(two.run())]
    try:

        async def posted() -> bool:
            alert = await store.alert_for(4567)
            return alert is not None and alert.ts is not None and alert.version == alert.posted_version

        await eventually_async(posted, timeout=15)
    finally:
        await one.stop()
        await two.stop()
        await asyncio.gather(*loops)
        await engine.dispose()

    assert len(slack.root_messages(ALERT_CHANNEL)) == 1
    assert len(slack.calls_to("chat.postMessage")) == 2  # the 429, then the one post


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, None, SlackUnavailable),
        (503, None, SlackUnavailable),
        (200, "message_limit_exceeded", SlackUnavailable),
        (200, "invalid_auth", SlackAuthError),
        (200, "token_revoked", SlackAuthError),
        (200, "account_inactive", SlackAuthError),
        (200, "channel_not_found", CannotPostHere),
        (200, "not_in_channel", CannotPostHere),
        (200, "invalid_blocks", SlackPermanent),
        (200, "msg_too_long", SlackPermanent),
        (200, "something_new", SlackPermanent),
    ],
)
async def test_every_slack_error_is_narrowed_into_one_of_three_kinds(
    slack: FakeSlack, paces: ChannelPaces, status: int, error: str | None, kind: type[Exception]
) -> None:
    client = build_web_client(BOT_TOKEN, slack.api_url)
    client.retry_handlers = []  # the narrowing, not slack_sdk's patience, is under test
    slack.fail_next("chat.postMessage", status=status, error=error, retry_after=0)
    poster = SlackPoster(client, paces)

    with pytest.raises(kind):
        await poster.post(ALERT_CHANNEL, _Text("hello"))


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def as_kwargs(self) -> dict[str, str]:
        return {"text": self.text}


async def _flood(bot: RunningBot, signer: PartooSigner, ids: range) -> None:
    """Failures all at once: some go alone, the rest into a digest."""
    answers = await asyncio.gather(*(bot.webhook(message_updated_event(n), signer) for n in ids))
    assert all(answer.status_code == 200 for answer in answers)


async def _digest_ids(bot: RunningBot, ids: range) -> set[int]:
    alerts = await bot.bot.alerts.alerts_for(list(ids))
    return {alert.digest_id for alert in alerts.values() if alert.digest_id is not None}


@pytest.mark.parametrize("grouped", [False, True], ids=["alert", "digest"])
async def test_a_transient_failure_keeps_the_post_and_it_lands_later(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner, grouped: bool
) -> None:
    slack.fail_next("chat.postMessage", times=3, status=503)  # more than slack_sdk's own retries
    ids = range(1, 6) if grouped else range(1, 2)

    await _flood(bot, signer, ids)

    await eventually_async(lambda: _all_shown(bot, slack, ids), timeout=30)
    if grouped:
        assert await _digest_ids(bot, ids)


@pytest.mark.parametrize("grouped", [False, True], ids=["alert", "digest"])
async def test_an_auth_failure_keeps_the_post_shows_in_readyz_and_clears_when_slack_takes_it(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner, grouped: bool
) -> None:
    assert (await bot.http.get("/readyz")).status_code == 200  # its token check (auth.test) is now fresh
    # A token rotation: Slack refuses the old token for a moment.
    slack.fail_next("chat.postMessage", times=1, status=200, error="token_revoked")
    ids = range(1, 6) if grouped else range(1, 2)

    await _flood(bot, signer, ids)

    readiness = await eventually_async(lambda: _not_ready(bot), timeout=10)
    assert any("token_revoked" in problem for problem in readiness)
    await eventually_async(lambda: _all_shown(bot, slack, ids), timeout=30)
    assert (await bot.http.get("/readyz")).status_code == 200


@pytest.fixture
async def bot_without_checks(slack: FakeSlack, environment: dict[str, str]) -> AsyncIterator[RunningBot]:
    """A bot that does not check conversations: a verdict arriving re-renders (so re-tries) a failed post."""
    async with running_bot(slack, {**environment, "CONVERSATION_CHECK": "false"}) as running:
        yield running


@pytest.mark.parametrize("grouped", [False, True], ids=["alert", "digest"])
async def test_a_permanent_failure_is_recorded_logged_and_shown_in_status_not_retried_every_poll(
    bot_without_checks: RunningBot,
    slack: FakeSlack,
    signer: PartooSigner,
    grouped: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = bot_without_checks
    slack.channel_not_found(ALERT_CHANNEL)
    ids = range(1, 6) if grouped else range(1, 2)

    await _flood(bot, signer, ids)

    async def recorded() -> bool:
        alerts = (await bot.bot.alerts.alerts_for(list(ids))).values()
        errors = [alert.post_error for alert in alerts if alert.digest_id is None]
        for digest_id in {alert.digest_id for alert in alerts if alert.digest_id is not None}:
            digest = await bot.bot.alerts.digest(digest_id)
            errors.append(digest.post_error if digest else None)
        return len(alerts) == len(ids) and all(error == "channel_not_found" for error in errors)

    await eventually_async(recorded, timeout=10)
    if grouped:
        assert await _digest_ids(bot, ids)
    tried = len(slack.calls_to("chat.postMessage"))
    # Several more rounds of the alerter (a later failure is processed, and fails the same way) ...
    assert (await bot.webhook(message_updated_event(99), signer)).status_code == 200
    await eventually_async(lambda: _post_error_of(bot, 99), timeout=10)
    # ... tried only the new one again.
    assert len(slack.calls_to("chat.postMessage")) == tried + 1
    assert "cannot be posted" in caplog.text and "channel_not_found" in caplog.text
    await bot.command(f"status {ids[0]}", response_url=slack.response_url("status"))
    answer = json.dumps((await eventually(lambda: slack.responses("status")))[0])
    assert "could not be posted" in answer
    assert "channel_not_found" in answer


async def _post_error_of(bot: RunningBot, message_id: int) -> str | None:
    """Slack's error for the alert or digest showing this message, once its latest version was tried."""
    alert = await bot.bot.alerts.alert_for(message_id)
    if alert is None:
        return None
    if alert.digest_id is not None:
        digest = await bot.bot.alerts.digest(alert.digest_id)
        return digest.post_error if digest and digest.posted_version == digest.version else None
    return alert.post_error if alert.posted_version == alert.version else None


async def _not_ready(bot: RunningBot) -> list[str]:
    response = await bot.http.get("/readyz")
    return list(response.json().get("problems", [])) if response.status_code == 503 else []


async def _all_shown(bot: RunningBot, slack: FakeSlack, ids: range) -> bool:
    """Every failure is in a posted alert or a posted digest."""
    alerts = (await bot.bot.alerts.alerts_for(list(ids))).values()
    if len(alerts) != len(ids):
        return False
    for alert in alerts:
        if alert.digest_id is None:
            if alert.ts is None:
                return False
        else:
            digest = await bot.bot.alerts.digest(alert.digest_id)
            if digest is None or digest.ts is None:
                return False
    return bool(slack.root_messages(ALERT_CHANNEL))


async def test_a_slack_error_inside_a_bolt_listener_is_narrowed_the_same_way(
    bot: RunningBot, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await bot.http.get("/readyz")).status_code == 200  # its token check (auth.test) is now fresh
    slack.fail_next("views.publish", status=200, error="token_revoked")

    await bot.event(
        {
            "type": "event_callback",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event_id": "Ev1",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": "U123", "channel": "D1", "tab": "home"},
        }
    )

    problems = await eventually_async(lambda: _not_ready(bot), timeout=10)
    assert any("token_revoked" in problem for problem in problems)
    assert "SlackAuthError" in caplog.text

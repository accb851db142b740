"""ALERT_ROUTES: a business's or a messaging partner's failures go to their own channel, each channel with its
own digests and its own pace."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.config import ConfigError, load_settings
from bot.domain.alert_routes import AlertRoutes, parse_routes
from bot.platform.database import create_engine, migrate
from bot.platform.models import Pace
from bot.platform.pace import SLACK_ALERTS_PACE, ChannelPaces
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, bot_environment, message_text, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.test_check import line_of, run_check
from tests.waiting import eventually, eventually_async

BUSINESS_CHANNEL = "C0BUSINESS"
WHATSAPP_CHANNEL = "C0WHATSAPP"
ROUTES = f"business:42={BUSINESS_CHANNEL}, partner:WhatsApp={WHATSAPP_CHANNEL}"


# -- parsing and lookup ------------------------------------------------------------------------------------


def test_routes_are_read_from_business_and_partner_entries() -> None:
    routes, problems = parse_routes(ROUTES)

    assert problems == []
    assert routes == AlertRoutes(businesses={42: BUSINESS_CHANNEL}, partners={"whatsapp": WHATSAPP_CHANNEL})
    assert routes.channels == {BUSINESS_CHANNEL, WHATSAPP_CHANNEL}


def test_a_business_route_wins_over_a_partner_route_and_the_rest_goes_to_the_default() -> None:
    routes, _ = parse_routes(ROUTES)

    assert routes.channel_for(42, "Whatsapp", "CDEFAULT") == BUSINESS_CHANNEL
    assert routes.channel_for(7, "Whatsapp", "CDEFAULT") == WHATSAPP_CHANNEL
    assert routes.channel_for(7, "whatsapp", None) == WHATSAPP_CHANNEL
    assert routes.channel_for(7, "Google", "CDEFAULT") == "CDEFAULT"
    assert routes.channel_for(None, None, None) is None


def test_empty_routes_send_everything_to_the_default() -> None:
    routes, problems = parse_routes(" , ")

    assert problems == [] and not routes
    assert routes.channel_for(42, "Whatsapp", "CDEFAULT") == "CDEFAULT"


def test_every_bad_entry_is_reported_at_once() -> None:
    _, problems = parse_routes(
        "business:42=#support, team:x=C0123ABCD, business:abc=C0123ABCD, partner:=C0123ABCD, C0123ABCD,"
        "business:42=C0AAAAAAA, business:42=C0BBBBBBB"
    )

    assert len(problems) == 6, problems
    assert all(problem.startswith("ALERT_ROUTES: ") for problem in problems)
    assert "`business:42=#support` must end with a channel ID" in problems[0]
    assert "`team:x=C0123ABCD` starts with `team`" in problems[1]
    assert "`business:abc=C0123ABCD` must name a business" in problems[2]
    assert "`partner:=C0123ABCD` must name a messaging partner" in problems[3]
    assert "`C0123ABCD` is not of the form" in problems[4]
    assert "`business:42=C0BBBBBBB` routes it again, to another channel than C0AAAAAAA" in problems[5]


def test_invalid_routes_stop_the_bot_with_every_problem_listed() -> None:
    environment = {
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": "s",
        "PARTOO_API_KEY": "k",
        "ALERT_ROUTES": "business:x=C0123ABCD,partner:sms=nope",
    }

    with pytest.raises(ConfigError) as raised:
        load_settings(environment)

    assert len([p for p in raised.value.problems if p.startswith("ALERT_ROUTES")]) == 2
    assert load_settings({**environment, "ALERT_ROUTES": ROUTES}).alert_routes.partners == {
        "whatsapp": WHATSAPP_CHANNEL
    }


def test_check_verifies_every_routed_channel(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    slack.channel_not_found(WHATSAPP_CHANNEL)
    environment = bot_environment(slack, partoo, sqlite_url, ALERT_ROUTES=ROUTES)

    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 1, output
    assert "not found" in line_of(output, f"✗ ALERT_ROUTES {WHATSAPP_CHANNEL}:")
    assert line_of(output, f"✓ ALERT_ROUTES {BUSINESS_CHANNEL}")


# -- through the running bot -------------------------------------------------------------------------------


async def test_failures_go_to_their_routed_channels_and_the_rest_to_the_alert_channel(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, ALERT_ROUTES=ROUTES)
    async with running_bot(slack, environment) as bot:
        await bot.webhook(message_updated_event(1001, business_id=42, messaging_partner="Whatsapp"), signer)
        await bot.webhook(message_updated_event(1002, business_id=7, messaging_partner="Whatsapp"), signer)
        await bot.webhook(message_updated_event(1003, business_id=7, messaging_partner="Google"), signer)

        await eventually(lambda: len(slack.messages()) == 3, timeout=10)

    (business,) = slack.root_messages(BUSINESS_CHANNEL)
    (whatsapp,) = slack.root_messages(WHATSAPP_CHANNEL)
    (default,) = slack.root_messages(ALERT_CHANNEL)
    assert "1001" in message_text(business)
    assert "1002" in message_text(whatsapp)
    assert "1003" in message_text(default)


async def test_a_flood_in_one_channel_makes_a_digest_there_only(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, ALERT_ROUTES=ROUTES)
    flood = [message_updated_event(2000 + n, business_id=42) for n in range(6)]
    async with running_bot(slack, environment) as bot:
        await bot.bot.alerter.stop()  # let the flood pile up, as it does when it arrives faster than a tick
        for event in flood:
            await bot.webhook(event, signer)
        await bot.webhook(message_updated_event(3001, business_id=7, messaging_partner="Google"), signer)

        async def posted() -> bool:
            # The loop is stopped: tick it by hand, as it would run (a new alert may wait for its verdict).
            await bot.bot.alerter.tick()
            return bool(slack.root_messages(BUSINESS_CHANNEL) and slack.root_messages(ALERT_CHANNEL))

        await eventually_async(posted, timeout=15, interval=0.1)
        (lone,) = slack.root_messages(ALERT_CHANNEL)
        (digest,) = slack.root_messages(BUSINESS_CHANNEL)

    assert "3001" in message_text(lone)
    assert "6 messages failed" in message_text(digest)
    assert "3001" not in message_text(digest)


async def test_each_channel_has_its_own_pace_shared_by_every_replica(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        first = ChannelPaces(engine, 60, default_channel=ALERT_CHANNEL)
        second = ChannelPaces(engine, 60, default_channel=ALERT_CHANNEL)  # another replica

        default_slot = await (await first.for_channel(ALERT_CHANNEL)).reserve()
        routed_slot = await (await first.for_channel(BUSINESS_CHANNEL)).reserve()
        routed_next = await (await second.for_channel(BUSINESS_CHANNEL)).reserve()

        async with engine.connect() as connection:
            names = set((await connection.execute(select(Pace.name))).scalars())
    finally:
        await engine.dispose()

    assert {SLACK_ALERTS_PACE, f"{SLACK_ALERTS_PACE}:{BUSINESS_CHANNEL}"} <= names
    # A post in one channel takes no slot from another; two replicas posting in one channel share its pace.
    assert abs(routed_slot - default_slot) < 1.0
    assert routed_next - routed_slot >= 1.0

"""RETRY_ALLOWED_CHANNELS that leaves out a channel alerts go to: every Retry button there would be refused,
so `check` names it as a problem and the bot warns when it starts."""

from __future__ import annotations

import logging

import pytest

from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, CHANNEL, bot_environment, running_bot
from tests.test_check import line_of, run_check

BUSINESS_CHANNEL = "C0BUSINESS"
PARTNER_CHANNEL = "C0WHATSAPP"
ROUTES = f"business:42={BUSINESS_CHANNEL}, partner:WhatsApp={PARTNER_CHANNEL}"


def test_check_names_every_alert_channel_left_out(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    allowed = f"{CHANNEL},{BUSINESS_CHANNEL}"
    environment = bot_environment(slack, partoo, sqlite_url, ALERT_ROUTES=ROUTES, RETRY_ALLOWED_CHANNELS=allowed)

    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 1, output
    alert_line = line_of(output, f"✗ RETRY_ALLOWED_CHANNELS {ALERT_CHANNEL}:")
    assert "(SLACK_ALERT_CHANNEL)" in alert_line and "refused" in alert_line
    assert f"add {ALERT_CHANNEL} to RETRY_ALLOWED_CHANNELS" in alert_line
    assert "(ALERT_ROUTES)" in line_of(output, f"✗ RETRY_ALLOWED_CHANNELS {PARTNER_CHANNEL}:")
    assert f"RETRY_ALLOWED_CHANNELS {BUSINESS_CHANNEL}" not in output
    assert f"To fix: RETRY_ALLOWED_CHANNELS {ALERT_CHANNEL}, RETRY_ALLOWED_CHANNELS {PARTNER_CHANNEL}." in output


def test_check_passes_when_every_alert_channel_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    allowed = f"{CHANNEL},{ALERT_CHANNEL},{BUSINESS_CHANNEL},{PARTNER_CHANNEL}"
    environment = bot_environment(slack, partoo, sqlite_url, ALERT_ROUTES=ROUTES, RETRY_ALLOWED_CHANNELS=allowed)

    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 0, output
    assert "every channel alerts are posted in" in line_of(output, "✓ RETRY_ALLOWED_CHANNELS:")


@pytest.mark.parametrize(
    ("allowed", "warned"),
    [
        (CHANNEL, [ALERT_CHANNEL, BUSINESS_CHANNEL, PARTNER_CHANNEL]),
        (f"{CHANNEL},{ALERT_CHANNEL},{PARTNER_CHANNEL}", [BUSINESS_CHANNEL]),
        (f"{ALERT_CHANNEL},{BUSINESS_CHANNEL},{PARTNER_CHANNEL}", []),
        ("", []),  # no restriction by channel
    ],
)
async def test_the_bot_warns_at_start_for_each_alert_channel_left_out(
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    allowed: str,
    warned: list[str],
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.running")
    environment = bot_environment(slack, partoo, sqlite_url, ALERT_ROUTES=ROUTES, RETRY_ALLOWED_CHANNELS=allowed)

    async with running_bot(slack, environment):
        pass

    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "RETRY_ALLOWED_CHANNELS" in record.getMessage()
    ]
    assert [message.split(" ", 1)[0] for message in warnings] == warned
    assert all("every Retry and Retry all button posted there will be refused" in message for message in warnings)

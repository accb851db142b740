"""`partoo-retry-bot check` reads Partoo's webhook configurations and says where `message_updated` goes."""

from __future__ import annotations

import pytest

from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.partoo import DEFAULT_WEBHOOK_URL
from tests.harness import bot_environment
from tests.test_check import _isolated, line_of, run_check

__all__ = ["_isolated"]  # the autouse fixture of test_check: no variable or .env of the machine


def test_the_webhook_partoo_sends_to_is_compared_with_public_url(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, PUBLIC_URL="https://partoo-retry.example.com/")
    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 0, output
    found = line_of(output, "✓ Partoo webhook:")
    assert f"message_updated is sent to {DEFAULT_WEBHOOK_URL}, this bot (PUBLIC_URL)" in found
    assert partoo.calls == []  # read only: no retry


def test_a_webhook_pointing_elsewhere_is_a_problem_and_its_secret_is_not_shown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    partoo.configure_webhooks(
        [
            ("business_created", "https://crm.example.com/hooks"),
            ("lead_received", "https://crm.example.com/leads"),
            ("message_updated", "https://old-host.example.com/partoo/webhook?key=s3cr3t-in-url"),
        ]
    )
    environment = bot_environment(slack, partoo, sqlite_url, PUBLIC_URL="https://partoo-retry.example.com")
    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 1, output
    found = line_of(output, "✗ Partoo webhook:")
    assert "https://old-host.example.com/partoo/webhook?…" in found
    assert "not to this bot's https://partoo-retry.example.com/partoo/webhook" in found
    assert "Settings > Integrations > Webhooks" in found
    assert "s3cr3t-in-url" not in output
    assert partoo.webhook_reads == [1, 2]  # the message_updated one is on the second page


def test_no_message_updated_webhook_is_a_problem_without_public_url_too(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    partoo.configure_webhooks([("message_created", "https://partoo-retry.example.com/partoo/webhook")])
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, sqlite_url))

    assert code == 1, output
    found = line_of(output, "✗ Partoo webhook:")
    assert "no message_updated webhook is configured" in found
    assert "https://<the bot's public host>/partoo/webhook" in found


def test_without_public_url_the_target_is_shown_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, sqlite_url))
    assert code == 0, output
    found = line_of(output, "✓ Partoo webhook:")
    assert f"message_updated is sent to {DEFAULT_WEBHOOK_URL}" in found
    assert "set PUBLIC_URL" in found


@pytest.mark.parametrize(("status", "mark", "words"), [(403, "-", "may not read"), (401, "✗", "refuses the API key")])
def test_a_key_that_cannot_read_webhooks_is_reported(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
    status: int,
    mark: str,
    words: str,
) -> None:
    partoo.configure_webhooks([], status=status)
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, sqlite_url))
    assert code == (1 if status == 401 else 0), output
    assert words in line_of(output, f"{mark} Partoo webhook:")

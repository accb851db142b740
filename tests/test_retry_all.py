"""A digest's Retry all is one transaction with the requests it queues (issue 20 item 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.alerts.messages import RETRY_ALL_ACTION_ID
from bot.retries import enqueue as enqueue_module
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import ALERT_CHANNEL, USER, RunningBot, buttons
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async


class _FailOnce(dict[str, Any]):
    """The requests' INSERT statements, whose first use raises as a database failover would."""

    def __init__(self, statements: dict[str, Any]) -> None:
        super().__init__(statements)
        self.failed = False

    def __getitem__(self, dialect: str) -> Any:
        if not self.failed:
            self.failed = True
            raise OperationalError("INSERT INTO retry_requests", {}, Exception("server closed the connection"))
        return super().__getitem__(dialect)


async def test_a_fault_between_marking_the_digest_and_queueing_leaves_it_retryable(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    await asyncio.gather(*(bot.webhook(message_updated_event(n), signer) for n in range(1, 9)))
    digests = await eventually(lambda: [m for m in slack.root_messages(ALERT_CHANNEL) if _retry_all(m)])
    digest = digests[0]
    value = str(_retry_all(digest)["value"])

    async def recorded() -> bool:
        stored = await bot.bot.alerts.digest(int(value))
        return stored is not None and stored.ts == digest.ts

    await eventually_async(recorded)
    grouped = [alert.message_id for alert in await bot.bot.alerts.digest_alerts(int(value))]
    # The fault lands after the digest is marked "retry requested by" and before its requests are written.
    monkeypatch.setattr(enqueue_module, "_INSERT_REQUESTS", _FailOnce(enqueue_module._INSERT_REQUESTS))

    await _click(bot, digest, value, "first")
    told = (await eventually(lambda: slack.responses("first")))[0]
    assert "unavailable" in told["text"]
    assert (await bot.bot.alerts.digest(int(value))).retry_requested_by is None  # rolled back with the rest

    await _click(bot, digest, value, "second")
    await eventually(
        lambda: all(partoo.count(n) == 1 for n in grouped),
        timeout=20,
        message=f"{grouped} {partoo.received_ids()} {slack.responses()}",
    )
    assert slack.responses("second") == []
    assert sorted(int(n) for n in partoo.received_ids()) == sorted(grouped)


def _retry_all(message: SlackMessage) -> dict[str, Any]:
    return next((b for b in buttons(message) if b["action_id"] == RETRY_ALL_ACTION_ID), {})


async def _click(bot: RunningBot, digest: SlackMessage, value: str, name: str) -> None:
    answer = await bot.click(
        action_id=RETRY_ALL_ACTION_ID,
        value=value,
        user_id=USER,
        channel_id=ALERT_CHANNEL,
        message_ts=digest.ts,
        response_url=bot.slack.response_url(name),
    )
    assert answer.status_code == 200

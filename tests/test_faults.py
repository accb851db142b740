"""Faults on every side: Partoo down, slow, resetting or answering garbage; Slack down; the process killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakePartoo, FakeSlack, Reply
from tests.harness import (
    ALERT_CHANNEL,
    CHANNEL,
    SECRETS,
    SIGNING_SECRET,
    RunningBot,
    bot_environment,
    message_text,
    running_bot,
)
from tests.processes import free_port, start_bot
from tests.signing import PartooSigner, message_updated_event, slack_signature_headers, slash_command_body
from tests.waiting import eventually, wait_until

# A line of a bulk retry's thread naming a message whose call may have reached Partoo (outcome "unknown").
_POSSIBLY_SENT = re.compile(r"`(\d+)`: Partoo did not answer in time, so the bot cannot tell whether")


async def _reply(bot: RunningBot, slack: FakeSlack, text: str, within: float = 10.0) -> str:
    await bot.command(text)
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    return message_text((await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=within))[0])


async def test_partoo_down_ends_with_a_clear_outcome_after_bounded_retries(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v2"
    async with running_bot(slack, {**environment, "PARTOO_API_URL": closed}) as bot:
        reply = await _reply(bot, slack, "4567")
    assert "could not be reached" in reply
    assert "gave up after 4 attempts" in reply


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(status=200, raw_body=b"<html>OK</html>"), "accepted"),
        (Reply(status=200, raw_body=b"{broken json"), "accepted"),
        (Reply(status=400, raw_body=b"<html><body>Bad</body></html>"), "refused"),
    ],
)
async def test_malformed_answers_are_judged_by_their_status(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, reply: Reply, expected: str
) -> None:
    partoo.script(4567, [reply])
    assert expected in await _reply(bot, slack, "4567")
    assert partoo.count(4567) == 1


async def test_html_server_errors_are_retried_then_reported(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.answer(4567, 502, body=None, headers={"Content-Type": "text/html"})
    reply = await _reply(bot, slack, "4567")
    assert "gave up after 4 attempts" in reply
    assert "<html" not in reply
    assert partoo.count(4567) == 4


async def test_a_connection_reset_after_sending_is_never_resent(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.script(4567, [Reply(reset=True)])
    reply = await _reply(bot, slack, "4567")
    assert "cannot tell whether the message was sent again" in reply
    assert partoo.count(4567) == 1


@pytest.mark.long(10)
async def test_results_reach_slack_once_it_recovers_none_lost_none_twice(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    slack.fail_next("chat.postMessage", times=12, status=503)

    await bot.command("4567")
    await bot.webhook(message_updated_event(99), signer)

    await eventually(lambda: partoo.count(4567) == 1)
    # The root message could not be posted while Slack was down: the outcome comes as one message instead.
    await eventually(lambda: any("accepted" in message_text(m) for m in slack.messages(CHANNEL)), timeout=40)
    await eventually(lambda: slack.root_messages(ALERT_CHANNEL), timeout=40)
    assert len(slack.messages(CHANNEL)) == 1
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1


def _signed_command(port: int, text: str, slack: FakeSlack) -> httpx.Response:
    body = slash_command_body(text, response_url=slack.response_url("kill"))
    return httpx.post(
        f"http://127.0.0.1:{port}/slack/events",
        content=body,
        headers=slack_signature_headers(SIGNING_SECRET, body),
        timeout=10,
    )


@pytest.mark.long(20)
@pytest.mark.e2e
def test_sigkill_mid_bulk_retry_then_restart_sends_none_twice_and_names_those_it_cannot_vouch_for(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, tmp_path: Path
) -> None:
    """What a user is promised when the process dies mid-way through 30 ids: no id reaches Partoo twice, the ids
    the dead process had not started are all sent by the next one, and an id whose call may have been under way
    (the one Partoo was holding, and any whose attempt was opened a moment before the kill but had not arrived)
    is named in the thread as possibly sent, never dropped in silence nor sent again."""
    environment = bot_environment(slack, partoo, database_url, PARTOO_RATE_LIMIT_PER_MINUTE="600")
    ids = list(range(2000, 2030))
    port = free_port()
    with start_bot(environment, tmp_path, port=port, name="first") as first:
        first.wait_healthy()
        assert _signed_command(port, " ".join(map(str, ids)), slack).status_code == 200
        wait_until(lambda: len(partoo.calls) >= 8, timeout=20)
        gate = partoo.hold()  # the next call is in flight when the process dies
        wait_until(lambda: partoo.in_flight >= 1, timeout=10)
        first.kill()
    sent_before_the_kill = partoo.received_ids()
    # Calls Partoo had not answered when the process died: whatever their fate, the bot never learned it.
    unanswered = {int(call.message_id) for call in partoo.calls if call.status is None}
    assert unanswered
    gate.release()
    with start_bot(environment, tmp_path, port=port, name="second") as second:
        second.wait_healthy()
        root = slack.root_messages(CHANNEL)[0]
        # Requests held by the dead process are taken over when their lease (30 s) expires.
        wait_until(lambda: "30/30 done" in message_text(slack.message(CHANNEL, root.ts)), timeout=90)
        # The thread lists what Partoo did not accept; the held calls are among them, their answers lost.
        wait_until(lambda: unanswered <= _possibly_sent(slack, root.ts), timeout=20)
        possibly_sent = _possibly_sent(slack, root.ts)
        assert second.stop(signal.SIGTERM) == 0
    received = Counter(int(message_id) for message_id in partoo.received_ids())
    sent_after_the_kill = {int(message_id) for message_id in partoo.received_ids()[len(sent_before_the_kill) :]}
    assert max(received.values()) == 1  # none twice
    assert set(ids) == set(received) | possibly_sent  # none left unsent without the thread saying so
    assert not possibly_sent & sent_after_the_kill  # an attempt the dead process opened is never made again
    assert len(slack.root_messages(CHANNEL)) == 1


def _possibly_sent(slack: FakeSlack, root_ts: str) -> set[int]:
    """The ids a bulk retry's thread names as possibly sent (outcome "unknown")."""
    thread = "\n".join(message_text(reply) for reply in slack.thread(CHANNEL, root_ts))
    return {int(found) for found in _POSSIBLY_SENT.findall(thread)}


@pytest.mark.long(10)
@pytest.mark.e2e
def test_sigkill_during_webhook_intake_loses_no_accepted_event(
    slack: FakeSlack, partoo: FakePartoo, sqlite_url: str, signer: PartooSigner, tmp_path: Path
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, signer)
    port = free_port()
    slack.delay("chat.postMessage", 0.3)  # alerts lag behind intake, so the kill lands with events pending
    accepted: list[int] = []
    with start_bot(environment, tmp_path, port=port, name="first") as first:
        first.wait_healthy()

        async def deliver() -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

                async def one(message_id: int) -> None:
                    body = json.dumps(message_updated_event(message_id)).encode()
                    try:
                        response = await client.post("/partoo/webhook", content=body, headers=signer.headers(body))
                    except httpx.HTTPError:
                        return  # cut off by the kill: Partoo would deliver it again
                    if response.status_code == 200:
                        accepted.append(message_id)

                for start in range(1, 400, 20):
                    await asyncio.gather(*(one(n) for n in range(start, start + 20)))
                    if start == 101:
                        first.kill()

        asyncio.run(deliver())
    assert accepted, "some deliveries were accepted before the kill"
    with start_bot(environment, tmp_path, port=port, name="second") as second:
        second.wait_healthy()
        wait_until(lambda: _alerted(sqlite_url) >= set(accepted), timeout=90)
        assert second.stop(signal.SIGTERM) == 0
    assert not any(secret in second.logs() + first.logs() for secret in SECRETS)


def _alerted(sqlite_url: str) -> set[int]:
    """Message ids whose failure is visible in Slack: in an alert or in a digest that was posted."""
    with contextlib.closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))) as connection:
        rows = connection.execute(
            "SELECT a.message_id FROM alerts a LEFT JOIN alert_digests d ON a.digest_id = d.id"
            " WHERE a.ts IS NOT NULL OR d.ts IS NOT NULL"
        ).fetchall()
    return {int(row[0]) for row in rows}

"""Acknowledged means durable for clicks (issue 20 item 2): a Retry click answered 200 just before SIGKILL is
either done or still queued after a restart, and sent once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from bot.alerts.messages import RETRY_ACTION_ID
from bot.failures.store import FailureStore
from bot.platform.database import create_engine
from bot.retries.retry_log import RetryLog
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, SIGNING_SECRET, USER, bot_environment
from tests.processes import start_bot
from tests.signing import PartooSigner, block_actions_body, message_updated_event, slack_signature_headers
from tests.waiting import wait_until

ANSWER_SECONDS = 15.0


def _alert_ts(database_url: str, message_id: int) -> str | None:
    async def read() -> str | None:
        engine = create_engine(database_url)
        try:
            alert = await FailureStore(engine).alert_for(message_id)
            return alert.ts if alert else None
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _requests(database_url: str, message_id: int) -> int:
    async def read() -> int:
        engine = create_engine(database_url)
        try:
            return len(await RetryLog(engine).history(message_id))
        finally:
            await engine.dispose()

    return asyncio.run(read())


# How long the test holds the write lock around the click: below SQLite's busy timeout (1 s), Slack's 3 s.
HOLD_SECONDS = 0.5


@contextmanager
def writes_held(database_url: str) -> Iterator[None]:
    """Hold the retry queue's write lock from another connection for HOLD_SECONDS, from the moment it is held.

    A click that is acknowledged before its write is stored gets its 200 at once, and its write waits here:
    a SIGKILL meanwhile loses it. A click stored before its acknowledgement answers once the lock is gone.
    """
    held = threading.Event()

    def hold() -> None:
        if database_url.startswith("sqlite"):
            connection = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            held.set()
            threading.Event().wait(HOLD_SECONDS)
            connection.execute("ROLLBACK")
            connection.close()
            return

        async def lock() -> None:
            connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            async with connection.transaction():
                await connection.execute("LOCK TABLE retry_batches IN EXCLUSIVE MODE")
                held.set()
                await asyncio.sleep(HOLD_SECONDS)
            await connection.close()

        asyncio.run(lock())

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        yield
    finally:
        holder.join()


@pytest.mark.e2e
def test_a_click_acknowledged_just_before_sigkill_is_sent_once_after_a_restart(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, database_url: str
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer)
    with start_bot(environment, tmp_path) as first:
        first.wait_healthy()
        event = json.dumps(message_updated_event(4567)).encode()
        assert (
            httpx.post(f"{first.url}/partoo/webhook", content=event, headers=signer.headers(event)).status_code == 200
        )
        alert = wait_until(lambda: slack.root_messages(ALERT_CHANNEL), timeout=ANSWER_SECONDS)[0]
        wait_until(lambda: _alert_ts(database_url, 4567) == alert.ts, timeout=ANSWER_SECONDS)
        # Partoo answers slowly: whatever the killed process had started, nothing is answered before the kill.
        partoo.latency = 2.0

        body = block_actions_body(
            action_id=RETRY_ACTION_ID,
            value="4567",
            user_id=USER,
            channel_id=ALERT_CHANNEL,
            message_ts=alert.ts,
            response_url=slack.response_url("click"),
        )
        with writes_held(database_url):
            answer = httpx.post(
                f"{first.url}/slack/events",
                content=body,
                headers=slack_signature_headers(SIGNING_SECRET, body),
                timeout=10.0,
            )
            first.send(signal.SIGKILL)  # at once: the acknowledgement is all the clicker got
        assert answer.status_code == 200
        first.process.wait(timeout=10)

    # The acknowledged click was stored before its 200: after a restart it is sent, once.
    assert _requests(database_url, 4567) == 1
    partoo.latency = 0.0
    with start_bot(environment, tmp_path, name="restarted") as second:
        second.wait_healthy()
        wait_until(lambda: partoo.count(4567) >= 1, timeout=ANSWER_SECONDS)
        # A call the killed process may have made is never repeated (fenced leases, in_flight_since).
        assert partoo.count(4567) == 1
    assert slack.responses("click") == []  # queued, not refused

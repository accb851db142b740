"""Benchmark 1, clicks: how fast a Retry click on an alert is acknowledged, in bursts of 50 at once.

A click acts only on an alert the bot posted, in the channel and message it posted it in: each click needs
an alert of its own. Posting hundreds through the bot would take minutes at Slack's pace (and a flood
becomes a digest), so the bench leaves them as the alerter would have: one message per failure posted to
the alert channel of fake Slack, and its `alerts` row (posted, with that `ts`) written into the bot's
database over a connection of the bench's own, after the bot started and before anything is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx

from bench.common import Latencies, at_once, fresh_ids, sqlite_path, timed_post
from bot.alerts.messages import RETRY_ACTION_ID
from bot.domain.message import FAILED, MessageUpdate
from bot.failures.state import failure_json
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL, BOT_TOKEN, SIGNING_SECRET, USER
from tests.signing import block_actions_body, slack_signature_headers

_COLUMNS = "message_id, channel_id, ts, failure, failed_at, failures, retries, version, posted_version"


@dataclass(frozen=True)
class PostedAlert:
    message_id: int
    ts: str


async def _post(client: httpx.AsyncClient, slack: FakeSlack, message_id: int) -> PostedAlert:
    answer = await client.post(
        slack.api_url + "chat.postMessage",
        data={"channel": ALERT_CHANNEL, "text": f"Partoo message {message_id} failed"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    )
    body = answer.json()
    if not body.get("ok"):
        raise RuntimeError(f"fake Slack refused the alert: {body}")
    return PostedAlert(message_id, str(body["ts"]))


def _row(alert: PostedAlert, now: float) -> tuple[object, ...]:
    failure = MessageUpdate(
        message_id=alert.message_id,
        conversation_id=1,
        status=FAILED,
        is_deleted=False,
        sender_type="business",
        sender_label=None,
        content_type="text",
        content=None,
        date=None,
        messaging_partner="Whatsapp",
        consumer_name=None,
        business_id=1,
        org_id=1,
    )
    return (alert.message_id, ALERT_CHANNEL, alert.ts, failure_json(failure), now, 1, 0, 1, 1)


async def prepare_alerts(slack: FakeSlack, database_url: str, count: int) -> list[PostedAlert]:
    """`count` failures alerted in fake Slack and recorded in the bot's database as posted."""
    async with httpx.AsyncClient(timeout=30) as client:
        alerts: list[PostedAlert] = []
        ids = fresh_ids(count)
        for start in range(0, count, 50):
            alerts += await asyncio.gather(*(_post(client, slack, n) for n in ids[start : start + 50]))
    now = time.time()
    rows = [_row(alert, now) for alert in alerts]
    if database_url.startswith("sqlite"):
        await asyncio.to_thread(_insert_sqlite, database_url, rows)
    else:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            await connection.executemany(
                f"INSERT INTO alerts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", rows
            )
        finally:
            await connection.close()
    return alerts


def _insert_sqlite(database_url: str, rows: list[tuple[object, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(sqlite_path(database_url), timeout=10)) as connection, connection:
        connection.executemany(f"INSERT INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def click_request(slack: FakeSlack, alert: PostedAlert) -> tuple[bytes, dict[str, str]]:
    body = block_actions_body(
        action_id=RETRY_ACTION_ID,
        value=str(alert.message_id),
        user_id=USER,
        channel_id=ALERT_CHANNEL,
        message_ts=alert.ts,
        response_url=slack.response_url(f"click-{alert.message_id}"),
    )
    return body, slack_signature_headers(SIGNING_SECRET, body)


async def click_bursts(
    clients: Sequence[httpx.AsyncClient], slack: FakeSlack, alerts: list[PostedAlert], *, rounds: int, gap: float
) -> Latencies:
    """`rounds` bursts of one click per client at once, each on an alert of its own, signed beforehand."""
    seconds: list[float] = []
    statuses: list[int] = []
    queue = iter(alerts)
    for _ in range(rounds):
        prepared = [click_request(slack, next(queue)) for _ in clients]
        results = await at_once(
            timed_post(client, body, headers) for client, (body, headers) in zip(clients, prepared, strict=True)
        )
        for elapsed, status in results:
            seconds.append(elapsed)
            statuses.append(status)
        if gap:
            await asyncio.sleep(gap)
    return Latencies(tuple(seconds), tuple(statuses))


def refused(slack: FakeSlack, alerts: list[PostedAlert]) -> int:
    """Clicks the bot answered with an explanation instead of a retry (each is an ephemeral response)."""
    return sum(1 for alert in alerts if slack.responses(f"click-{alert.message_id}"))

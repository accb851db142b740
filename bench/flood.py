"""Benchmark 4: a flood of 1,000 failures in 10 s against Slack's posting limit.

FakeSlack enforces Slack's pace for chat.postMessage, about one post a second per channel with a small
burst (`FakeSlack.enforce_post_rate(per_second=1.0, burst=3)`, a token bucket per channel), and answers
429 with Retry-After past it; every call still takes 50 ms. The bot gets `SLACK_ALERT_CHANNEL` and
`PARTOO_WEBHOOK_PUBLIC_KEY`, then 1,000 signed `Failed` deliveries of distinct message ids, paced evenly
over 10 s (one every 10 ms, spread over `SENDERS` keep-alive connections, each waiting for its last
answer; built and signed before the clock starts).

Visible: a failure is visible once Slack shows it, posted alone as an alert or counted in a digest message
posted or updated to include it. The fake's alert channel is read every `POLL` s: one per alert message,
plus each digest's "N Partoo messages failed" count. The bot's database (read-only) must agree at the end:
every alert row has its own `ts`, or belongs to a digest with a `ts` whose posted version is its current one.
Times are from the first delivery sent.

Conversation checks: the failures come from distinct conversations of `BUSINESSES` businesses, and FakePartoo
enforces 300 calls a minute (the bot is told the same), so the run also reports how many Partoo calls the
bot's conversation checks cost during it, and whether any was answered 429 (checks share the retries' pace).

The naive bot's webhook route posts each failure before answering: one post per failure, nothing kept,
a 429 from Slack becomes a 500 for Partoo.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    DUPLICATE,
    OTHER_200,
    WEBHOOK_PATH,
    RawHttp,
    database,
    fakes,
    fresh_ids,
    naive_environment,
    ours_environment,
    raw_clients,
    read_only_query_async,
    request_bytes,
    running,
    say,
    start_naive,
    start_ours,
    webhook_status,
)
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL
from tests.processes import BotProcess
from tests.signing import PartooSigner, json_body, message_updated_event

TITLE = "4. Flood of failures"
FAILURES = 1000
SECONDS = 10.0
SENDERS = 20
POST_RATE = 1.0
POST_BURST = 3
POLL = 0.1
DATABASE_POLL = 0.5
VISIBLE_TIMEOUT = 120.0
# After every failure is visible (or the naive bot's last answer): time for late posts and updates to land.
SETTLE = 3.0
BUSINESSES = 50
PARTOO_RATE = 300

_DIGEST = re.compile(r"^(\d+) Partoo messages? failed")
_ALERT = re.compile(r"^Partoo message \d+ ")

VISIBLE_IN_DATABASE = (
    "SELECT count(*) FROM alerts a LEFT JOIN alert_digests d ON d.id = a.digest_id"
    " WHERE a.ts IS NOT NULL OR (d.ts IS NOT NULL AND d.posted_version = d.version)"
)
ALERT_ROWS = "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM alert_digests)"


@dataclass
class SlackView:
    """What the alert channel shows at one moment."""

    alone: int  # root messages about one failure
    digests: list[int]  # each digest's count of failures
    other: int  # root messages of neither kind

    @property
    def shown(self) -> int:
        return self.alone + sum(self.digests)

    @property
    def root_messages(self) -> int:
        return self.alone + len(self.digests) + self.other


@dataclass
class FloodResult:
    bot: str
    database: str
    failures: int
    send_seconds: float  # first delivery sent to last answer
    answers: dict[str, int]
    accepted: int  # answered 200 and stored (ours), or answered 200 (naive)
    view: SlackView
    post_calls: int  # chat.postMessage calls to the alert channel, 429s included
    updates: int  # chat.update calls to the alert channel
    rate_limited: int  # 429s FakeSlack answered
    all_visible: float | None  # seconds until Slack showed every failure
    half_visible: float | None
    shown_at_end_of_sending: int
    database_visible: float | None = None  # seconds until the database said every alert is visible (ours)
    database_rows: tuple[int, int] | None = None  # (alerts, digests) at the end (ours)
    partoo_checks: int | None = None  # calls to Partoo's conversation endpoint during the run (ours)
    partoo_rate_limited: int | None = None  # Partoo 429s during the run, checks included (ours)
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (seconds, failures shown), on change

    @property
    def unposted(self) -> int:
        return self.failures - self.view.shown


def slack_view(slack: FakeSlack) -> SlackView:
    alone, other = 0, 0
    digests: list[int] = []
    for message in slack.root_messages(ALERT_CHANNEL):
        text = message.text or ""
        if match := _DIGEST.match(text):
            digests.append(int(match.group(1)))
        elif _ALERT.match(text):
            alone += 1
        else:
            other += 1
    return SlackView(alone, digests, other)


async def _paced(
    clients: list[RawHttp], requests: list[bytes], classify: Callable[[int, bytes], int], started: float
) -> list[tuple[int, float]]:
    """Delivery i at `started + i * SECONDS / len(requests)`; (status class, answered at) per delivery."""
    interval = SECONDS / len(requests)
    answers: list[tuple[int, float]] = []

    async def sender(offset: int, client: RawHttp) -> None:
        for index in range(offset, len(requests), len(clients)):
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, body = await client.send(requests[index])
            answers.append((classify(status, body), time.perf_counter()))

    await asyncio.gather(*(sender(offset, client) for offset, client in enumerate(clients)))
    return answers


async def _flood(
    process: BotProcess,
    slack: FakeSlack,
    requests: list[bytes],
    classify: Callable[[int, bytes], int],
    database_url: str | None,
) -> tuple[float, list[tuple[int, float]], list[tuple[float, int]], float | None, int]:
    """Send the flood while watching the channel; stop when all is visible (or, naive, all is answered)."""
    async with raw_clients(process.port, SENDERS) as clients:
        started = time.perf_counter() + 0.05
        sending = asyncio.create_task(_paced(clients, requests, classify, started))
        timeline: list[tuple[float, int]] = [(0.0, 0)]
        database_visible: float | None = None
        shown_at_end: int | None = None
        next_database_poll = started
        while True:
            await asyncio.sleep(POLL)
            now = time.perf_counter()
            shown = slack_view(slack).shown
            if shown != timeline[-1][1]:
                timeline.append((now - started, shown))
            if sending.done() and shown_at_end is None:
                shown_at_end = shown
            if database_url and database_visible is None and now >= next_database_poll:
                next_database_poll = now + DATABASE_POLL
                ((visible,),) = await read_only_query_async(database_url, VISIBLE_IN_DATABASE)
                if visible >= len(requests):
                    database_visible = time.perf_counter() - started
            done_watching = shown >= len(requests) and (database_url is None or database_visible is not None)
            if sending.done() and (done_watching or database_url is None or now - started > VISIBLE_TIMEOUT):
                break
        answers = await sending
    send_seconds = max(at for _, at in answers) - started
    return send_seconds, answers, timeline, database_visible, shown_at_end or 0


def _result(
    bot: str,
    db: str,
    slack: FakeSlack,
    send_seconds: float,
    answers: list[tuple[int, float]],
    timeline: list[tuple[float, int]],
    shown_at_end: int,
    accepted_status: int,
) -> FloodResult:
    names = {200: "stored" if bot == "ours" else "200", DUPLICATE: "duplicate", OTHER_200: "200 other", 0: "no answer"}
    counts = Counter(names.get(status, str(status)) for status, _ in answers)
    posts = [call for call in slack.calls_to("chat.postMessage") if call.params.get("channel") == ALERT_CHANNEL]
    updates = [call for call in slack.calls_to("chat.update") if call.params.get("channel") == ALERT_CHANNEL]
    view = slack_view(slack)
    total = len(answers)
    return FloodResult(
        bot=bot,
        database=db,
        failures=total,
        send_seconds=send_seconds,
        answers=dict(sorted(counts.items())),
        accepted=sum(1 for status, _ in answers if status == accepted_status),
        view=view,
        post_calls=len(posts),
        updates=len(updates),
        rate_limited=slack.rate_limited_count,
        all_visible=next((at for at, shown in timeline if shown >= total), None),
        half_visible=next((at for at, shown in timeline if shown >= total / 2), None),
        shown_at_end_of_sending=shown_at_end,
        timeline=timeline,
    )


def signed_failures(signer: PartooSigner, port: int, ids: list[int]) -> list[bytes]:
    """One signed `Failed` delivery per id, each from its own conversation, spread over BUSINESSES businesses."""
    requests = []
    for message_id in ids:
        event = message_updated_event(message_id, conversation_id=message_id, business_id=message_id % BUSINESSES)
        body = json_body(event)
        requests.append(request_bytes("POST", WEBHOOK_PATH, port, body, signer.headers(body)))
    return requests


def run_ours(workdir: Path, db: str, failures: int = FAILURES) -> FloodResult:
    signer = PartooSigner()
    with fakes(partoo_rate=PARTOO_RATE) as (slack, partoo), database(db, workdir) as url:
        slack.enforce_post_rate(per_second=POST_RATE, burst=POST_BURST)
        environment = ours_environment(
            slack,
            partoo,
            url,
            PARTOO_WEBHOOK_PUBLIC_KEY=signer.public_pem,
            PARTOO_RATE_LIMIT_PER_MINUTE=str(PARTOO_RATE),
        )
        with running(start_ours(environment, workdir)) as process:
            requests = signed_failures(signer, process.port, fresh_ids(failures))
            send_seconds, answers, timeline, database_visible, shown_at_end = asyncio.run(
                _flood(process, slack, requests, webhook_status, url)
            )
            time.sleep(SETTLE)
            result = _result("ours", db, slack, send_seconds, answers, timeline, shown_at_end, 200)
            result.database_visible = database_visible
            ((alerts, digests),) = asyncio.run(read_only_query_async(url, ALERT_ROWS))
            result.database_rows = (int(alerts), int(digests))
            result.partoo_checks = len(partoo.conversation_calls)
            result.partoo_rate_limited = partoo.rate_limited_count
    say(f"  ours  {db:10s}: {describe(result)}")
    return result


def run_naive(workdir: Path, failures: int = FAILURES) -> FloodResult:
    signer = PartooSigner()
    with fakes() as (slack, partoo):
        slack.enforce_post_rate(per_second=POST_RATE, burst=POST_BURST)
        environment = naive_environment(slack, partoo, SLACK_ALERT_CHANNEL=ALERT_CHANNEL)
        with running(start_naive(environment, workdir)) as process:
            requests = signed_failures(signer, process.port, fresh_ids(failures))
            send_seconds, answers, timeline, _db, shown_at_end = asyncio.run(
                _flood(process, slack, requests, lambda status, _body: status, None)
            )
            time.sleep(SETTLE)
            result = _result("naive", "-", slack, send_seconds, answers, timeline, shown_at_end, 200)
    say(f"  naive {'-':10s}: {describe(result)}")
    return result


def describe(result: FloodResult) -> str:
    answers = ", ".join(f"{name}: {count}" for name, count in result.answers.items())
    view = result.view
    text = (
        f"{result.failures} sent in {result.send_seconds:.1f} s ({answers});"
        f" alert channel: {view.root_messages} root messages ({view.alone} alerts,"
        f" {len(view.digests)} digests of {'+'.join(map(str, view.digests)) or '0'}),"
        f" {result.updates} updates, {result.post_calls} post calls, {result.rate_limited} answered 429;"
        f" {view.shown} of {result.failures} failures shown"
    )
    if result.all_visible is not None:
        text += f", all after {result.all_visible:.1f} s (half after {result.half_visible:.1f} s)"
    if result.database_visible is not None:
        text += f"; the database agreed after {result.database_visible:.1f} s"
    if result.database_rows is not None:
        text += f"; rows: {result.database_rows[0]} alerts, {result.database_rows[1]} digests"
    if result.partoo_checks is not None:
        text += (
            f"; conversation checks cost {result.partoo_checks} Partoo calls ({result.partoo_rate_limited} Partoo 429s)"
        )
    return text


def run(workdir: Path, *, postgres: bool, failures: int = FAILURES) -> list[FloodResult]:
    say(
        f"{TITLE}: {failures:,} signed failures paced over {SECONDS:.0f} s,"
        f" Slack allowing {POST_RATE:.0f} post/s per channel (burst {POST_BURST})"
    )
    results = [run_ours(workdir, "sqlite", failures)]
    if postgres:
        results.append(run_ours(workdir, "postgresql", failures))
    results.append(run_naive(workdir, failures))
    return results

"""Benchmark 5: resident memory idle, under commands and after 10,000 webhook events; time from start to ready.

Memory is VmRSS from /proc/<pid>/status of the bot process. The bot is started on an empty SQLite
database (with `SLACK_ALERT_CHANNEL` and `PARTOO_WEBHOOK_PUBLIC_KEY` set), left idle, then sent 2,000
single-id `/partoo-retry` commands (10 senders at a time, Partoo answering in 2 s, Slack in 50 ms), read
after every 500; then the bot is left to work through the backlog for a bounded time, read every 5 s.
Then the same process gets 10,000 signed `Failed` webhook deliveries of distinct message ids (10
connections, closed loop), read after every 2,500: every delivery becomes a stored event, an alert and
part of a digest, so this is where stored state would show up in memory if the bot kept it. Then it is
left alone, read every 5 s, until its database shows every event processed (bounded), and for a quiet
period after that. Start time is from `Popen` to the first `GET /readyz` answered
200, the median of 5 starts on a new database (migrations included) and of 5 restarts on an existing one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    PARTOO_LATENCY,
    Latencies,
    database,
    fakes,
    fresh_ids,
    load_clients,
    naive_environment,
    ours_environment,
    pool,
    raw_clients,
    raw_pool,
    read_only_query,
    rss_mib,
    running,
    say,
    signed_command,
    signed_failures,
    start_naive,
    start_ours,
    stop,
)
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL
from tests.processes import BotProcess
from tests.signing import PartooSigner

COMMANDS = 2000
STEP = 500
OURS_SENDERS = 10
# Every naive command takes Partoo's 2 s: more senders keep its part of the run short.
NAIVE_SENDERS = 100
IDLE_SECONDS = 3.0
BACKLOG_SECONDS = 30.0
# After the backlog's readings, how long the run waits for every outcome to be posted. At Slack's pace (one
# post a second per channel) 2,000 outcomes one post each would take over 2,000 s; grouped (up to 40 a post,
# bot.retries.grouped_outcomes) they need about a minute, so this bound is generous and still says "lost".
OUTCOMES_BOUND_SECONDS = 300.0
EVENTS = 10_000
EVENT_STEP = 2_500
OURS_EVENT_SENDERS = 10
# The naive bot posts each event to Slack (50 ms) before answering.
NAIVE_EVENT_SENDERS = 50
# How long the alerter gets to process the stored events after the last delivery.
PROCESS_TIMEOUT = 180.0
# Readings (every 5 s) once every event is processed; "flat" when they stay within FLAT_TOLERANCE.
QUIET_READINGS = 4
FLAT_TOLERANCE = 0.02
READING_INTERVAL = 5.0
STARTS = 5


@dataclass
class MemoryResult:
    bot: str
    idle: float
    after: list[tuple[int, float]] = field(default_factory=list)  # (commands sent, MiB)
    backlog: list[tuple[float, float]] = field(default_factory=list)  # (seconds after the last, MiB)
    acks: Latencies | None = None
    backlog_note: str = ""
    events_after: list[tuple[int, float]] = field(default_factory=list)  # (webhook events sent, MiB)
    events_pause: list[tuple[float, float]] = field(default_factory=list)  # (seconds after the last, MiB)
    events_processed: float | None = None  # seconds after the last delivery until every event was processed
    quiet: list[float] = field(default_factory=list)  # MiB, read every 5 s once every event was processed
    events: Latencies | None = None
    events_note: str = ""
    # Slack's posting limit (FakeSlack: about 1 post a second per channel, bursts of 3) over the commands' part.
    posts: int = 0
    rate_limited: int = 0
    outcomes_posted: int = 0
    outcomes_seconds: float | None = None  # after the last command, until every outcome was posted (None: not)

    @property
    def readings(self) -> list[float]:
        return (
            [self.idle]
            + [mib for _, mib in self.after]
            + [mib for _, mib in self.backlog]
            + [mib for _, mib in self.events_after]
            + [mib for _, mib in self.events_pause]
            + self.quiet
        )

    @property
    def peak(self) -> float:
        return max(self.readings)

    @property
    def commands_peak(self) -> float:
        """The peak before any webhook event: idle, commands and their backlog."""
        return max([self.idle] + [mib for _, mib in self.after] + [mib for _, mib in self.backlog])

    @property
    def commands_final(self) -> float:
        return (self.backlog or self.after)[-1][1]

    @property
    def final(self) -> float:
        return self.readings[-1]

    @property
    def events_growth(self) -> float | None:
        """MiB from right after the last webhook delivery to the last reading (None without events)."""
        if not self.events_after or not self.quiet:
            return None
        return self.quiet[-1] - self.events_after[-1][1]

    @property
    def flat(self) -> bool | None:
        """Whether the quiet readings stay within FLAT_TOLERANCE of the first (None without them)."""
        if not self.quiet:
            return None
        return max(self.quiet) - min(self.quiet) <= self.quiet[0] * FLAT_TOLERANCE


@dataclass
class StartResult:
    bot: str
    kind: str  # "new database", "existing database", "-"
    seconds: list[float]
    rss: list[float] = field(default_factory=list)  # VmRSS (MiB) as soon as ready: a new database loads Alembic

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _idle_rss(pid: int) -> float:
    samples = []
    for _ in range(int(IDLE_SECONDS / 0.5)):
        time.sleep(0.5)
        samples.append(rss_mib(pid))
    return samples[-1]


async def _send_steps(process: BotProcess, slack: FakeSlack, senders: int, result: MemoryResult) -> None:
    seconds: list[float] = []
    statuses: list[int] = []
    async with load_clients(process.url, senders) as clients:
        for sent in range(STEP, COMMANDS + 1, STEP):
            commands = [signed_command(str(i), slack.response_url(f"mem-{i}")) for i in fresh_ids(STEP)]
            latencies = await pool(clients, commands)
            seconds += latencies.seconds
            statuses += latencies.statuses
            result.after.append((sent, rss_mib(process.pid)))
            say(f"    {result.bot}: {sent} commands answered, RSS {result.after[-1][1]:.1f} MiB")
    result.acks = Latencies(tuple(seconds), tuple(statuses))


async def _send_events(
    process: BotProcess, signer: PartooSigner, senders: int, result: MemoryResult, *, naive: bool
) -> None:
    seconds: list[float] = []
    statuses: list[int] = []
    async with raw_clients(process.port, senders) as clients:
        for sent in range(EVENT_STEP, EVENTS + 1, EVENT_STEP):
            requests = signed_failures(signer, process.port, fresh_ids(EVENT_STEP))
            latencies = await raw_pool(clients, requests, classify=(lambda status, _body: status) if naive else None)
            seconds += latencies.seconds
            statuses += latencies.statuses
            result.events_after.append((sent, rss_mib(process.pid)))
            say(f"    {result.bot}: {sent:,} webhook events answered, RSS {result.events_after[-1][1]:.1f} MiB")
    result.events = Latencies(tuple(seconds), tuple(statuses))


def _pause(process: BotProcess, result: MemoryResult, database_url: str | None) -> None:
    """Readings every 5 s until every stored event is processed (ours), then QUIET_READINGS more."""
    began = time.monotonic()
    next_reading = began + READING_INTERVAL
    while database_url is not None and time.monotonic() - began < PROCESS_TIMEOUT:
        ((stored, processed),) = read_only_query(
            database_url, "SELECT count(*), count(processed_at) FROM webhook_events"
        )
        if processed >= stored:
            result.events_processed = time.monotonic() - began
            break
        time.sleep(1.0)
        if time.monotonic() >= next_reading:
            next_reading += READING_INTERVAL
            result.events_pause.append((time.monotonic() - began, rss_mib(process.pid)))
    for _ in range(QUIET_READINGS):
        time.sleep(READING_INTERVAL)
        result.quiet.append(rss_mib(process.pid))
    processed_text = (
        ""
        if database_url is None
        else "every event processed after "
        + ("(not within the limit)" if result.events_processed is None else f"{result.events_processed:.0f} s")
        + f" ({', '.join(f'{mib:.1f}' for _, mib in result.events_pause)} MiB meanwhile); "
    )
    say(
        f"    {result.bot}: {processed_text}then RSS {', '.join(f'{mib:.1f}' for mib in result.quiet)} MiB"
        f" every {READING_INTERVAL:.0f} s"
    )


def _events_count(database_url: str) -> str:
    ((events, processed, alerts, grouped, posted, digests),) = read_only_query(
        database_url,
        "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(processed_at) FROM webhook_events),"
        " (SELECT count(*) FROM alerts), (SELECT count(digest_id) FROM alerts),"
        " (SELECT count(ts) FROM alerts), (SELECT count(*) FROM alert_digests)",
    )
    return (
        f"{events:,} events stored, {processed:,} processed; {alerts:,} alerts ({posted:,} posted alone,"
        f" {grouped:,} in {digests:,} digests)"
    )


def _count(database_url: str, slack: FakeSlack, result: MemoryResult) -> str:
    import sqlite3

    from bench.common import sqlite_path

    with sqlite3.connect(sqlite_path(database_url), timeout=5) as connection:
        done, announced, reported = connection.execute(
            "SELECT (SELECT count(*) FROM retry_requests WHERE state = 'done'),"
            " (SELECT count(*) FROM retry_batches WHERE announced_at IS NOT NULL),"
            " (SELECT count(*) FROM retry_requests WHERE reported_at IS NOT NULL)"
        ).fetchone()
    result.posts = len(slack.calls_to("chat.postMessage"))
    result.rate_limited = slack.rate_limited_count
    result.outcomes_posted = reported
    return (
        f"{announced} of {COMMANDS} root messages posted, {done} Partoo calls answered, {reported} outcomes posted"
        f" (in their thread or grouped); {result.posts} chat.postMessage calls, {result.rate_limited} answered 429"
    )


def run_ours_memory(workdir: Path) -> MemoryResult:
    signer = PartooSigner()
    with (
        fakes() as (slack, partoo),
        database("sqlite", workdir) as url,
        running(
            start_ours(ours_environment(slack, partoo, url, PARTOO_WEBHOOK_PUBLIC_KEY=signer.public_pem), workdir)
        ) as process,
    ):
        result = MemoryResult("ours", _idle_rss(process.pid))
        say(f"    ours: idle RSS {result.idle:.1f} MiB")
        asyncio.run(_send_steps(process, slack, OURS_SENDERS, result))
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < BACKLOG_SECONDS:
            time.sleep(5)
            result.backlog.append((time.monotonic() - began, rss_mib(process.pid)))
        result.backlog_note = _count(url, slack, result)
        say(f"    ours: RSS {result.final:.1f} MiB after {elapsed:.0f} s of backlog ({result.backlog_note})")
        while time.monotonic() - began < OUTCOMES_BOUND_SECONDS and result.outcomes_posted < COMMANDS:
            time.sleep(1.0)
            _count(url, slack, result)
        if result.outcomes_posted == COMMANDS:
            result.outcomes_seconds = time.monotonic() - began
        say(f"    ours: {_count(url, slack, result)}")
        asyncio.run(_send_events(process, signer, OURS_EVENT_SENDERS, result, naive=False))
        _pause(process, result, url)
        result.events_note = _events_count(url)
        say(f"    ours: {result.events_note}")
    return result


def run_naive_memory(workdir: Path) -> MemoryResult:
    signer = PartooSigner()  # the naive bot verifies nothing; the deliveries are signed all the same
    with fakes() as (slack, partoo):
        environment = naive_environment(slack, partoo, SLACK_ALERT_CHANNEL=ALERT_CHANNEL)
        with running(start_naive(environment, workdir)) as process:
            result = MemoryResult("naive", _idle_rss(process.pid))
            say(f"    naive: idle RSS {result.idle:.1f} MiB")
            asyncio.run(_send_steps(process, slack, NAIVE_SENDERS, result))
            time.sleep(5)
            result.backlog.append((5.0, rss_mib(process.pid)))
            asyncio.run(_send_events(process, signer, NAIVE_EVENT_SENDERS, result, naive=True))
            _pause(process, result, None)
            posted = sum(1 for message in slack.root_messages(ALERT_CHANNEL))
            result.events_note = f"{posted:,} failures posted to the alert channel"
    return result


def run_starts(workdir: Path) -> list[StartResult]:
    fresh, again, naive = [], [], []
    fresh_rss: list[float] = []
    again_rss: list[float] = []
    with fakes() as (slack, partoo):
        for _ in range(STARTS):
            with database("sqlite", workdir) as url:
                started = start_ours(ours_environment(slack, partoo, url), workdir)
                fresh_rss.append(rss_mib(started.process.pid))
                stop(started.process)
                fresh.append(started.ready_seconds)
        with database("sqlite", workdir) as url:
            stop(start_ours(ours_environment(slack, partoo, url), workdir).process)
            for _ in range(STARTS):
                started = start_ours(ours_environment(slack, partoo, url), workdir)
                again_rss.append(rss_mib(started.process.pid))
                stop(started.process)
                again.append(started.ready_seconds)
        for _ in range(STARTS):
            started = start_naive(naive_environment(slack, partoo), workdir)
            stop(started.process)
            naive.append(started.ready_seconds)
    results = [
        StartResult("ours", "new database", fresh, fresh_rss),
        StartResult("ours", "existing database", again, again_rss),
        StartResult("naive", "-", naive),
    ]
    for result in results:
        say(
            f"    {result.bot} ({result.kind}): median {result.median:.2f} s to ready "
            f"({', '.join(f'{s:.2f}' for s in result.seconds)})"
            + (f"; RSS when ready {statistics.median(result.rss):.1f} MiB" if result.rss else "")
        )
    return results


def run(workdir: Path) -> tuple[list[MemoryResult], list[StartResult]]:
    say(
        f"5. memory (idle, then {COMMANDS:,} commands, Partoo answering in {PARTOO_LATENCY:.0f} s, then"
        f" {EVENTS:,} webhook events) and start time"
    )
    memory = [run_ours_memory(workdir), run_naive_memory(workdir)]
    return memory, run_starts(workdir)

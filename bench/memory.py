"""Benchmark 5: resident memory idle and under commands, and time from start to ready.

Memory is VmRSS from /proc/<pid>/status of the bot process. The bot is started on an empty SQLite
database, left idle, then sent 2,000 single-id `/partoo-retry` commands (10 senders at a time, Partoo
answering in 2 s, Slack in 50 ms), read after every 500; then the bot is left to work through the backlog
for a bounded time, read every 5 s. Start time is from `Popen` to the first `GET /readyz` answered 200,
the median of 5 starts on a new database (migrations included) and of 5 restarts on an existing one.
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
    rss_mib,
    running,
    say,
    signed_command,
    start_naive,
    start_ours,
    stop,
)
from tests.fakes import FakeSlack
from tests.processes import BotProcess

COMMANDS = 2000
STEP = 500
OURS_SENDERS = 10
# Every naive command takes Partoo's 2 s: more senders keep its part of the run short.
NAIVE_SENDERS = 100
IDLE_SECONDS = 3.0
BACKLOG_SECONDS = 30.0
STARTS = 5


@dataclass
class MemoryResult:
    bot: str
    idle: float
    after: list[tuple[int, float]] = field(default_factory=list)  # (commands sent, MiB)
    backlog: list[tuple[float, float]] = field(default_factory=list)  # (seconds after the last, MiB)
    acks: Latencies | None = None
    backlog_note: str = ""

    @property
    def peak(self) -> float:
        return max([self.idle] + [mib for _, mib in self.after] + [mib for _, mib in self.backlog])

    @property
    def final(self) -> float:
        return (self.backlog or self.after)[-1][1]


@dataclass
class StartResult:
    bot: str
    kind: str  # "new database", "existing database", "-"
    seconds: list[float]

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


def _count(database_url: str) -> str:
    import sqlite3

    from bench.common import sqlite_path

    with sqlite3.connect(sqlite_path(database_url), timeout=5) as connection:
        done, announced = connection.execute(
            "SELECT (SELECT count(*) FROM retry_requests WHERE state = 'done'),"
            " (SELECT count(*) FROM retry_batches WHERE announced_at IS NOT NULL)"
        ).fetchone()
    return f"{announced} of {COMMANDS} root messages posted, {done} Partoo calls answered"


def run_ours_memory(workdir: Path) -> MemoryResult:
    with (
        fakes() as (slack, partoo),
        database("sqlite", workdir) as url,
        running(start_ours(ours_environment(slack, partoo, url), workdir)) as process,
    ):
        result = MemoryResult("ours", _idle_rss(process.pid))
        say(f"    ours: idle RSS {result.idle:.1f} MiB")
        asyncio.run(_send_steps(process, slack, OURS_SENDERS, result))
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < BACKLOG_SECONDS:
            time.sleep(5)
            result.backlog.append((time.monotonic() - began, rss_mib(process.pid)))
        result.backlog_note = _count(url)
        say(f"    ours: RSS {result.final:.1f} MiB after {elapsed:.0f} s of backlog ({result.backlog_note})")
    return result


def run_naive_memory(workdir: Path) -> MemoryResult:
    with fakes() as (slack, partoo), running(start_naive(naive_environment(slack, partoo), workdir)) as process:
        result = MemoryResult("naive", _idle_rss(process.pid))
        say(f"    naive: idle RSS {result.idle:.1f} MiB")
        asyncio.run(_send_steps(process, slack, NAIVE_SENDERS, result))
        time.sleep(5)
        result.backlog.append((5.0, rss_mib(process.pid)))
    return result


def run_starts(workdir: Path) -> list[StartResult]:
    fresh, again, naive = [], [], []
    with fakes() as (slack, partoo):
        for _ in range(STARTS):
            with database("sqlite", workdir) as url:
                started = start_ours(ours_environment(slack, partoo, url), workdir)
                stop(started.process)
                fresh.append(started.ready_seconds)
        with database("sqlite", workdir) as url:
            stop(start_ours(ours_environment(slack, partoo, url), workdir).process)
            for _ in range(STARTS):
                started = start_ours(ours_environment(slack, partoo, url), workdir)
                stop(started.process)
                again.append(started.ready_seconds)
        for _ in range(STARTS):
            started = start_naive(naive_environment(slack, partoo), workdir)
            stop(started.process)
            naive.append(started.ready_seconds)
    results = [
        StartResult("ours", "new database", fresh),
        StartResult("ours", "existing database", again),
        StartResult("naive", "-", naive),
    ]
    for result in results:
        say(
            f"    {result.bot} ({result.kind}): median {result.median:.2f} s to ready "
            f"({', '.join(f'{s:.2f}' for s in result.seconds)})"
        )
    return results


def run(workdir: Path) -> tuple[list[MemoryResult], list[StartResult]]:
    say(f"5. memory (idle, then {COMMANDS:,} commands, Partoo answering in {PARTOO_LATENCY:.0f} s) and start time")
    memory = [run_ours_memory(workdir), run_naive_memory(workdir)]
    return memory, run_starts(workdir)

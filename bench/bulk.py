"""Benchmark 3: a bulk retry of 600 ids against a Partoo that allows 300 calls a minute.

The bot gets `PARTOO_RATE_LIMIT_PER_MINUTE=300` and six `/partoo-retry` commands of 100 ids each (the most
one command takes), sent one after the other. FakePartoo enforces 300 calls in any 60 s (sliding window)
and answers 429 with Retry-After past it, after its usual 2 s. The clock starts when the first command is
sent; it stops at the last call Partoo receives (from the fake's call records), when every request is
finished (the bot's database), and when every batch's summary is posted (the bot's database).

The naive bot cannot take 100 ids at once and has no pacing: it gets the same 600 ids as 600 single-id
commands from 50 senders at a time, as fast as its listener answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    SLACK_DEADLINE,
    Latencies,
    database,
    fakes,
    fresh_ids,
    load_clients,
    naive_environment,
    ours_environment,
    pool,
    running,
    say,
    signed_command,
    sqlite_path,
    start_naive,
    start_ours,
    timed_post,
)
from tests.fakes import FakePartoo, FakeSlack
from tests.processes import BotProcess

RATE = 300
IDS = 600
PER_COMMAND = 100
FLOOR_SECONDS = IDS / RATE * 60
GOAL_FACTOR = 1.05
FINISH_TIMEOUT = 240.0
NAIVE_SENDERS = 50


@dataclass
class BulkResult:
    bot: str
    database: str
    calls: int
    ids_sent: int  # distinct ids Partoo received
    rate_limited: int  # 429s Partoo answered
    duplicates: int  # ids Partoo received more than once
    missing: int  # ids never received
    accepted: int  # ids Partoo answered 200
    first_call: float  # seconds from the first command
    last_call: float
    max_in_any_minute: int
    acks: Latencies
    finished: float | None = None  # every request done (bot's database)
    summarized: float | None = None  # every batch's summary posted
    outcomes: dict[str, int] = field(default_factory=dict)
    all_answered: float | None = None  # naive: every command answered

    @property
    def last_call_vs_floor(self) -> float:
        return self.last_call / FLOOR_SECONDS


class Progress:
    """Reads how far the bot got from its own database."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    QUERY = (
        "SELECT (SELECT count(*) FROM retry_requests WHERE state = 'done'),"
        " (SELECT count(*) FROM retry_batches WHERE summarized_at IS NOT NULL),"
        " (SELECT max(finished_at) FROM retry_requests),"
        " (SELECT max(summarized_at) FROM retry_batches)"
    )
    OUTCOMES = "SELECT coalesce(outcome, state), count(*) FROM retry_requests GROUP BY coalesce(outcome, state)"

    async def read(self) -> tuple[int, int, float | None, float | None]:
        if self.url.startswith("sqlite"):
            return await asyncio.to_thread(self._read_sqlite, self.QUERY)
        connection = await asyncpg.connect(self.url)
        try:
            row = await connection.fetchrow(self.QUERY)
        finally:
            await connection.close()
        return (row[0], row[1], row[2], row[3])

    async def until_done(
        self, partoo: FakePartoo, requests: int, summaries: int, started: float, *, checks: bool = False
    ) -> tuple[int, int, float | None, float | None]:
        """Read until `requests` are done and `summaries` posted, or FINISH_TIMEOUT; say how far every 15 s.

        `started` is the monotonic time the run began; `checks` counts Partoo's conversation checks apart.
        """
        deadline = time.monotonic() + FINISH_TIMEOUT
        next_report = time.monotonic() + 15
        done, summarized, last_finished, last_summary = 0, 0, None, None
        while time.monotonic() < deadline:
            done, summarized, last_finished, last_summary = await self.read()
            if done >= requests and summarized >= summaries:
                break
            if time.monotonic() >= next_report:
                received = (
                    f"{len(partoo.calls)} retries and {len(partoo.conversation_calls)} checks"
                    if checks
                    else f"{len(partoo.calls)} calls"
                )
                say(
                    f"    {time.monotonic() - started:5.0f} s: Partoo received {received}"
                    f" ({partoo.rate_limited_count} answered 429); {done}/{requests} requests done"
                )
                next_report += 15
            await asyncio.sleep(0.25)
        return done, summarized, last_finished, last_summary

    async def outcomes(self) -> dict[str, int]:
        if self.url.startswith("sqlite"):
            rows = await asyncio.to_thread(self._read_sqlite_all, self.OUTCOMES)
        else:
            connection = await asyncpg.connect(self.url)
            try:
                rows = await connection.fetch(self.OUTCOMES)
            finally:
                await connection.close()
        return {str(key): int(count) for key, count in rows}

    def _read_sqlite(self, query: str) -> Any:
        with sqlite3.connect(sqlite_path(self.url), timeout=5) as connection:
            return connection.execute(query).fetchone()

    def _read_sqlite_all(self, query: str) -> list[Any]:
        with sqlite3.connect(sqlite_path(self.url), timeout=5) as connection:
            return connection.execute(query).fetchall()


def partoo_figures(partoo: FakePartoo, ids: list[int], started_mono: float) -> dict[str, Any]:
    calls = partoo.calls
    counts = Counter(call.message_id for call in calls)
    wanted = {str(message_id) for message_id in ids}
    accepted = {call.message_id for call in calls if call.status == 200}
    times = [call.at - started_mono for call in calls]
    return {
        "calls": len(calls),
        "ids_sent": len(wanted & set(counts)),
        "rate_limited": partoo.rate_limited_count,
        "duplicates": sum(1 for message_id in wanted if counts[message_id] > 1),
        "missing": sum(1 for message_id in wanted if counts[message_id] == 0),
        "accepted": len(wanted & accepted),
        "first_call": min(times) if times else float("nan"),
        "last_call": max(times) if times else float("nan"),
        "max_in_any_minute": partoo.max_calls_in_any_window(60.0),
    }


async def _drive_ours(
    process: BotProcess, slack: FakeSlack, partoo: FakePartoo, database_url: str, ids: list[int]
) -> BulkResult:
    progress = Progress(database_url)
    commands = [
        signed_command(" ".join(map(str, ids[start : start + PER_COMMAND])), slack.response_url(f"bulk-{start}"))
        for start in range(0, len(ids), PER_COMMAND)
    ]
    async with load_clients(process.url, 1) as (client,):
        started_wall, started_mono = time.time(), time.monotonic()
        acks = [await timed_post(client, body, headers) for body, headers in commands]
    latencies = Latencies(tuple(a for a, _ in acks), tuple(s for _, s in acks))
    say(f"    6 commands of 100 ids acknowledged: {latencies.describe()}")
    batches = len(commands)
    done, summarized, last_finished, last_summary = await progress.until_done(partoo, len(ids), batches, started_mono)
    figures = partoo_figures(partoo, ids, started_mono)
    complete = done >= len(ids) and summarized >= batches
    return BulkResult(
        bot="ours",
        database="postgresql" if database_url.startswith("postgres") else "sqlite",
        acks=latencies,
        finished=(last_finished - started_wall) if complete and last_finished else None,
        summarized=(last_summary - started_wall) if complete and last_summary else None,
        outcomes=await progress.outcomes(),
        **figures,
    )


def run_ours(workdir: Path, db: str) -> BulkResult:
    say(f"  ours on {db}: 6 commands of 100 ids, 300 calls/min allowed (about 2 minutes)")
    ids = fresh_ids(IDS)
    with fakes(partoo_rate=RATE) as (slack, partoo), database(db, workdir) as url:
        environment = ours_environment(slack, partoo, url, PARTOO_RATE_LIMIT_PER_MINUTE=str(RATE))
        with running(start_ours(environment, workdir)) as process:
            result = asyncio.run(_drive_ours(process, slack, partoo, url, ids))
    say(
        f"    last Partoo call after {result.last_call:.1f} s"
        f" ({result.last_call_vs_floor:.3f}x the {FLOOR_SECONDS:.0f} s floor); all finished {_s(result.finished)},"
        f" summaries {_s(result.summarized)}; 429s {result.rate_limited};"
        f" ids sent once {result.ids_sent - result.duplicates}/{IDS}, twice or more {result.duplicates}"
    )
    return result


async def _drive_naive(process: BotProcess, slack: FakeSlack, partoo: FakePartoo, ids: list[int]) -> BulkResult:
    commands = [signed_command(str(message_id), slack.response_url(f"naive-{message_id}")) for message_id in ids]
    async with load_clients(process.url, NAIVE_SENDERS) as clients:
        started_mono = time.monotonic()
        latencies = await pool(clients, commands)
        answered = time.monotonic() - started_mono
    figures = partoo_figures(partoo, ids, started_mono)
    return BulkResult(bot="naive", database="-", acks=latencies, all_answered=answered, **figures)


def run_naive(workdir: Path) -> BulkResult:
    say(f"  naive: 600 single-id commands, {NAIVE_SENDERS} at a time")
    ids = fresh_ids(IDS)
    with (
        fakes(partoo_rate=RATE) as (slack, partoo),
        running(start_naive(naive_environment(slack, partoo), workdir)) as process,
    ):
        result = asyncio.run(_drive_naive(process, slack, partoo, ids))
    late = result.acks.over(SLACK_DEADLINE)
    say(
        f"    all answered after {result.all_answered:.1f} s; Partoo: {result.calls} calls,"
        f" {result.rate_limited} answered 429, {result.accepted} ids accepted, {result.duplicates} sent twice;"
        f" acks {result.acks.describe()}" + (f", {late} over 3 s" if late else "")
    )
    return result


def _s(value: float | None) -> str:
    return "not within the time limit" if value is None else f"after {value:.1f} s"


def run(workdir: Path, *, postgres: bool) -> list[BulkResult]:
    say("3. bulk retry of 600 ids at 300 calls/min")
    results = [run_ours(workdir, "sqlite")]
    if postgres:
        results.append(run_ours(workdir, "postgresql"))
    results.append(run_naive(workdir))
    return results

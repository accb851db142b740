"""Benchmark 1: how fast `/partoo-retry <id>` is acknowledged while Partoo takes 2 s to answer.

Signed slash-command POSTs go over real HTTP to `/slack/events`, each for a message id never used before,
in bursts of 1, 10 and 50 sent at once. Each level gets a freshly started bot and empty database, so the
backlog of one level (root messages, Partoo calls) does not weigh on the next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    PARTOO_LATENCY,
    SLACK_DEADLINE,
    Latencies,
    bursts,
    cpu_seconds,
    database,
    fakes,
    get_bursts,
    load_client,
    naive_environment,
    ours_environment,
    running,
    say,
    start_naive,
    start_ours,
)

LEVELS = (1, 10, 50)
# Bursts per level for the bot: enough requests for a p99 at every level.
OURS_ROUNDS = {1: 300, 10: 60, 50: 20}
# The naive bot needs Partoo's 2 s for every answer: a few bursts show it.
NAIVE_ROUNDS = {1: 10, 10: 3, 50: 2}
# Pause between bursts, so that a burst meets the bot as a burst of users would: not queued behind the last.
GAP = 0.1
WARMUP = 3


@dataclass
class Level:
    bot: str  # "ours" or "naive"
    database: str  # "sqlite", "postgresql" or "-"
    concurrency: int
    latencies: Latencies
    first_request: float  # the first command after start, before the warm-up
    floor: Latencies | None = None  # GET /healthz in the same bursts: loopback + uvicorn + client alone
    cpu_ms_per_command: float | None = None
    elapsed: float = 0.0


@dataclass
class AckResults:
    levels: list[Level] = field(default_factory=list)
    partoo_latency: float = PARTOO_LATENCY
    gap: float = GAP

    def find(self, bot: str, concurrency: int, database: str = "sqlite") -> Level | None:
        for level in self.levels:
            if level.bot == bot and level.concurrency == concurrency and level.database in (database, "-"):
                return level
        return None


async def _measure(url: str, slack, concurrency: int, rounds: int, *, floor: bool) -> tuple[float, Latencies, Latencies | None]:
    async with load_client(url, max(concurrency, 1)) as client:
        first = await bursts(client, slack, concurrency=1, rounds=1, gap=0)
        await bursts(client, slack, concurrency=1, rounds=WARMUP - 1, gap=0)
        # Open every keep-alive connection the level will use before timing it.
        await get_bursts(client, "/", concurrency=concurrency, rounds=1, gap=0)
        latencies = await bursts(client, slack, concurrency=concurrency, rounds=rounds, gap=GAP)
        floor_latencies = (
            await get_bursts(client, "/healthz", concurrency=concurrency, rounds=rounds, gap=GAP) if floor else None
        )
    return first.seconds[0], latencies, floor_latencies


def run_ours(workdir: Path, db: str, levels: tuple[int, ...] = LEVELS) -> list[Level]:
    results = []
    for concurrency in levels:
        with fakes() as (slack, partoo), database(db, workdir) as url:
            started = start_ours(ours_environment(slack, partoo, url), workdir)
            with running(started) as process:
                cpu_before = cpu_seconds(process.pid)
                began = time.perf_counter()
                rounds = OURS_ROUNDS[concurrency]
                first, latencies, floor = asyncio.run(
                    _measure(process.url, slack, concurrency, rounds, floor=True)
                )
                elapsed = time.perf_counter() - began
                cpu = cpu_seconds(process.pid) - cpu_before
                level = Level(
                    "ours",
                    db,
                    concurrency,
                    latencies,
                    first,
                    floor,
                    cpu_ms_per_command=cpu * 1000 / (latencies.count + WARMUP),
                    elapsed=elapsed,
                )
        say(f"  ours  {db:10s} {concurrency:2d} at once: {latencies.describe()}  (floor {floor.describe() if floor else '-'})")
        results.append(level)
    return results


def run_naive(workdir: Path, levels: tuple[int, ...] = LEVELS) -> list[Level]:
    results = []
    for concurrency in levels:
        with fakes() as (slack, partoo):
            started = start_naive(naive_environment(slack, partoo), workdir)
            with running(started) as process:
                began = time.perf_counter()
                first, latencies, _ = asyncio.run(
                    _measure(process.url, slack, concurrency, NAIVE_ROUNDS[concurrency], floor=False)
                )
                level = Level("naive", "-", concurrency, latencies, first, elapsed=time.perf_counter() - began)
        late = latencies.over(SLACK_DEADLINE)
        say(f"  naive {'-':10s} {concurrency:2d} at once: {latencies.describe()}" + (f" over 3 s: {late}" if late else ""))
        results.append(level)
    return results


def run(workdir: Path, *, postgres: bool) -> AckResults:
    say("1. acknowledgement latency of /partoo-retry <id>, Partoo answering in 2 s")
    results = AckResults()
    results.levels += run_ours(workdir, "sqlite")
    if postgres:
        results.levels += run_ours(workdir, "postgresql", (50,))
    results.levels += run_naive(workdir)
    return results

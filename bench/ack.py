"""Benchmark 1: how fast `/partoo-retry <id>` and Retry clicks are acknowledged while Partoo takes 2 s to answer.

Signed slash-command POSTs go over real HTTP to `/slack/events`, each for a message id never used before,
in bursts of 1, 10 and 50 sent at once. Each level gets a freshly started bot and empty database, so the
backlog of one level (root messages, Partoo calls) does not weigh on the next. Retry clicks on alerts go
in bursts of 50 (bench/clicks.py prepares an alert per click).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import clicks
from bench.common import (
    PARTOO_LATENCY,
    SLACK_DEADLINE,
    Latencies,
    bursts,
    cpu_seconds,
    database,
    fakes,
    get_bursts,
    load_clients,
    naive_environment,
    ours_environment,
    running,
    say,
    start_naive,
    start_ours,
)
from tests.fakes import FakeSlack
from tests.processes import BotProcess

LEVELS = (1, 10, 50)
# Bursts per level for the bot: enough requests for a p99 at every level.
OURS_ROUNDS = {1: 150, 10: 50, 50: 20}
# The naive bot needs Partoo's 2 s for every answer: a few bursts show it.
NAIVE_ROUNDS = {1: 5, 10: 3, 50: 2}
# Pause between bursts, so that a burst meets the bot as a burst of users would: not queued behind the last.
GAP = 0.1
# Commands sent one by one before timing (the first one after start is reported on its own).
WARMUP = 3
NAIVE_WARMUP = 1
FLOOR_ROUNDS = 50
CLICKS_AT_ONCE = 50
CLICK_ROUNDS = 10


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
    kind: str = "command"  # or "click"
    refused: int = 0  # clicks answered with an explanation instead of a retry


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


@dataclass
class _Measured:
    first: float
    latencies: Latencies
    floor: Latencies | None
    bot_cpu: float  # CPU seconds the bot process used during the timed bursts


async def _measure(
    process: BotProcess, slack: FakeSlack, concurrency: int, rounds: int, *, warmup: int, floor: bool
) -> _Measured:
    async with load_clients(process.url, concurrency) as clients:
        # The floor first, while the bot has nothing else to do.
        floor_rounds = min(rounds, FLOOR_ROUNDS)
        floor_latencies = await get_bursts(clients, "/healthz", rounds=floor_rounds, gap=GAP) if floor else None
        first = await bursts(clients[:1], slack, rounds=1, gap=0)
        await bursts(clients[:1], slack, rounds=warmup - 1, gap=0)
        cpu_before = cpu_seconds(process.pid)
        latencies = await bursts(clients, slack, rounds=rounds, gap=GAP)
        cpu = cpu_seconds(process.pid) - cpu_before
    return _Measured(first.seconds[0], latencies, floor_latencies, cpu)


def run_ours(workdir: Path, db: str, levels: tuple[int, ...] = LEVELS) -> list[Level]:
    results = []
    for concurrency in levels:
        with fakes() as (slack, partoo), database(db, workdir) as url:
            started = start_ours(ours_environment(slack, partoo, url), workdir)
            with running(started) as process:
                began = time.perf_counter()
                rounds = OURS_ROUNDS[concurrency]
                measured = asyncio.run(_measure(process, slack, concurrency, rounds, warmup=WARMUP, floor=True))
                latencies, floor = measured.latencies, measured.floor
                level = Level(
                    "ours",
                    db,
                    concurrency,
                    latencies,
                    measured.first,
                    floor,
                    cpu_ms_per_command=measured.bot_cpu * 1000 / latencies.count,
                    elapsed=time.perf_counter() - began,
                )
        floor_text = floor.describe() if floor else "-"
        say(f"  ours  {db:10s} {concurrency:2d} at once: {latencies.describe()}  (floor {floor_text})")
        results.append(level)
    return results


async def _measure_clicks(
    process: BotProcess, slack: FakeSlack, alerts: list[clicks.PostedAlert], rounds: int
) -> _Measured:
    async with load_clients(process.url, CLICKS_AT_ONCE) as clients:
        floor_latencies = await get_bursts(clients, "/healthz", rounds=min(rounds, FLOOR_ROUNDS), gap=GAP)
        warm = alerts[:WARMUP]
        first = await clicks.click_bursts(clients[:1], slack, warm[:1], rounds=1, gap=0)
        await clicks.click_bursts(clients[:1], slack, warm[1:], rounds=WARMUP - 1, gap=0)
        cpu_before = cpu_seconds(process.pid)
        latencies = await clicks.click_bursts(clients, slack, alerts[WARMUP:], rounds=rounds, gap=GAP)
        cpu = cpu_seconds(process.pid) - cpu_before
    return _Measured(first.seconds[0], latencies, floor_latencies, cpu)


def run_clicks(workdir: Path, db: str, rounds: int = CLICK_ROUNDS) -> Level:
    with (
        fakes() as (slack, partoo),
        database(db, workdir) as url,
        running(start_ours(ours_environment(slack, partoo, url), workdir)) as process,
    ):
        alerts = asyncio.run(clicks.prepare_alerts(slack, url, WARMUP + CLICKS_AT_ONCE * rounds))
        began = time.perf_counter()
        measured = asyncio.run(_measure_clicks(process, slack, alerts, rounds))
        time.sleep(0.5)  # an explanation, if any, is posted to the response_url just after the answer
        level = Level(
            "ours",
            db,
            CLICKS_AT_ONCE,
            measured.latencies,
            measured.first,
            measured.floor,
            cpu_ms_per_command=measured.bot_cpu * 1000 / measured.latencies.count,
            elapsed=time.perf_counter() - began,
            kind="click",
            refused=clicks.refused(slack, alerts),
        )
    floor_text = level.floor.describe() if level.floor else "-"
    say(
        f"  ours  {db:10s} {CLICKS_AT_ONCE:2d} clicks at once: {level.latencies.describe()}  (floor {floor_text});"
        f" refused {level.refused}"
    )
    return level


def run_naive(workdir: Path, levels: tuple[int, ...] = LEVELS) -> list[Level]:
    results = []
    for concurrency in levels:
        with fakes() as (slack, partoo):
            started = start_naive(naive_environment(slack, partoo), workdir)
            with running(started) as process:
                began = time.perf_counter()
                rounds = NAIVE_ROUNDS[concurrency]
                measured = asyncio.run(_measure(process, slack, concurrency, rounds, warmup=NAIVE_WARMUP, floor=False))
                latencies = measured.latencies
                level = Level("naive", "-", concurrency, latencies, measured.first, elapsed=time.perf_counter() - began)
        late = latencies.over(SLACK_DEADLINE)
        say(
            f"  naive {'-':10s} {concurrency:2d} at once: {latencies.describe()}"
            + (f" over 3 s: {late}" if late else "")
        )
        results.append(level)
    return results


def run(workdir: Path, *, postgres: bool) -> AckResults:
    say("1. acknowledgement latency of /partoo-retry <id>, Partoo answering in 2 s")
    results = AckResults()
    results.levels += run_ours(workdir, "sqlite")
    results.levels.append(run_clicks(workdir, "sqlite"))
    if postgres:
        results.levels += run_ours(workdir, "postgresql", (50,))
        results.levels.append(run_clicks(workdir, "postgresql"))
    results.levels += run_naive(workdir)
    return results

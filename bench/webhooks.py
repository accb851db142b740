"""Benchmark 2: webhook intake, signed `message_updated` deliveries answered 200 with the event stored.

Each level gets a freshly started bot on an empty database (SQLite, then PostgreSQL), with
`PARTOO_WEBHOOK_PUBLIC_KEY` set to a generated key and `SLACK_ALERT_CHANNEL` set, so the alerter turns
what arrives into alerts and digests while the deliveries keep coming. The load is `EVENTS` deliveries,
each a `Failed` update of a message id never used before (so each one is stored, never a duplicate),
signed with the key and built into whole HTTP requests before anything is timed, then sent over 10 or 50
keep-alive connections, each sending its next delivery as soon as the last is answered (closed loop).

Events per second: deliveries answered 200 `{"status": "stored"}` divided by the time from the first
timed send to the last answer. Afterwards the bot's database is read (read-only, a connection of its own):
the rows in `webhook_events` must equal the deliveries answered "stored", warm-up included.

The naive bot's webhook route (bench/naive_bot.py) verifies nothing and posts each failure to Slack
(50 ms) before answering; it gets the same deliveries, fewer of them (`NAIVE_EVENTS`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    DUPLICATE,
    OTHER_200,
    Latencies,
    cpu_seconds,
    database,
    fakes,
    fresh_ids,
    ms,
    naive_environment,
    ours_environment,
    raw_clients,
    raw_pool,
    read_only_query,
    request_bytes,
    running,
    say,
    signed_failures,
    start_naive,
    start_ours,
)
from tests.fakes import FakeSlack
from tests.harness import ALERT_CHANNEL
from tests.processes import BotProcess
from tests.signing import PartooSigner

TITLE = "2. Webhook intake"
EVENTS = 5000
NAIVE_EVENTS = 2000
LEVELS = (10, 50)
# Deliveries sent (and stored) before the timed ones: the first requests pay for lazy imports and caches.
WARMUP = 100
# Issue #13: at least 2,000 events/s at every level, p99 under 50 ms at 50 senders, 3x the naive bot.
GOAL_RATE = 2000.0
GOAL_P99 = 0.050
GOAL_P99_SENDERS = 50
GOAL_NAIVE_FACTOR = 3.0


@dataclass
class Intake:
    bot: str  # "ours" or "naive"
    database: str  # "sqlite", "postgresql" or "-"
    senders: int
    latencies: Latencies  # the timed deliveries; statuses are webhook_status classes (ours) or HTTP (naive)
    seconds: float  # first timed send to last answer
    floor: Latencies | None  # GET /healthz, same connections, same count, before any delivery
    floor_seconds: float
    stored_total: int  # answered "stored" (ours) or 200 (naive), warm-up included
    in_database: int | None  # rows in webhook_events afterwards (ours)
    cpu_ms_per_event: float  # CPU of the bot process during the timed deliveries, per delivery
    slack_posts: int = 0  # chat.postMessage calls to the alert channel answered ok during the run

    @property
    def accepted(self) -> int:
        """Deliveries answered 200 and stored (ours), or answered 200 (the naive bot, which stores nothing)."""
        return sum(1 for status in self.latencies.statuses if status == 200)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else math.nan

    @property
    def floor_rate(self) -> float:
        return self.floor.count / self.floor_seconds if self.floor and self.floor_seconds else math.nan

    @property
    def answers(self) -> dict[str, int]:
        names = {
            200: "stored" if self.bot == "ours" else "200",
            DUPLICATE: "duplicate",
            OTHER_200: "200 other",
            0: "no answer",
        }
        counts = Counter(names.get(status, str(status)) for status in self.latencies.statuses)
        return dict(sorted(counts.items()))

    @property
    def verified(self) -> bool | None:
        """Whether every delivery answered "stored" is in the database, and nothing else (ours only)."""
        return None if self.in_database is None else self.in_database == self.stored_total

    @property
    def goal_met(self) -> bool:
        """The rate goal at every level; the p99 goal where it is set (50 senders)."""
        p99_ok = self.senders != GOAL_P99_SENDERS or self.latencies.p99 < GOAL_P99
        return self.rate >= GOAL_RATE and p99_ok

    def describe(self) -> str:
        answers = ", ".join(f"{name}: {count}" for name, count in self.answers.items())
        text = (
            f"{self.rate:,.0f} events/s ({self.latencies.count} in {self.seconds:.1f} s; {answers});"
            f" p50 {ms(self.latencies.p50)} p99 {ms(self.latencies.p99)} max {ms(self.latencies.max)};"
            f" bot CPU {self.cpu_ms_per_event:.2f} ms/event"
        )
        if self.floor is not None:
            text += f"; floor {self.floor_rate:,.0f} GET/s"
        if self.in_database is not None:
            text += f"; in the database {self.in_database} of {self.stored_total} answered stored"
        if self.bot == "naive":
            text += f"; {self.slack_posts} posted to Slack"
        return text


def _naive_status(status: int, _body: bytes) -> int:
    return status


async def _measure(
    process: BotProcess, requests: list[bytes], senders: int, *, floor: bool, naive: bool
) -> tuple[Latencies, float, Latencies | None, float, int, float]:
    """(timed latencies, their seconds, floor, floor seconds, accepted in the warm-up, bot CPU seconds)."""
    warmup, timed = requests[:WARMUP], requests[WARMUP:]
    classify = _naive_status if naive else None
    async with raw_clients(process.port, senders) as clients:
        floor_latencies, floor_seconds = None, 0.0
        if floor:
            probe = request_bytes("GET", "/healthz", process.port)
            began = time.perf_counter()
            floor_latencies = await raw_pool(clients, [probe] * len(timed))
            floor_seconds = time.perf_counter() - began
        warm = await raw_pool(clients, warmup, classify=classify)
        cpu_before = cpu_seconds(process.pid)
        began = time.perf_counter()
        latencies = await raw_pool(clients, timed, classify=classify)
        seconds = time.perf_counter() - began
        cpu = cpu_seconds(process.pid) - cpu_before
    warm_accepted = sum(1 for status in warm.statuses if status == 200)
    return latencies, seconds, floor_latencies, floor_seconds, warm_accepted, cpu


def _slack_posts(slack: FakeSlack) -> int:
    return sum(
        1
        for call in slack.calls_to("chat.postMessage")
        if call.params.get("channel") == ALERT_CHANNEL and call.response.get("ok")
    )


def run_ours(workdir: Path, db: str, senders: int, events: int = EVENTS) -> Intake:
    signer = PartooSigner()
    with fakes() as (slack, partoo), database(db, workdir) as url:
        environment = ours_environment(slack, partoo, url, PARTOO_WEBHOOK_PUBLIC_KEY=signer.public_pem)
        with running(start_ours(environment, workdir)) as process:
            requests = signed_failures(signer, process.port, fresh_ids(WARMUP + events))
            latencies, seconds, floor, floor_seconds, warm, cpu = asyncio.run(
                _measure(process, requests, senders, floor=True, naive=False)
            )
            stored = warm + sum(1 for status in latencies.statuses if status == 200)
            ((in_database,),) = read_only_query(url, "SELECT count(*) FROM webhook_events")
            result = Intake(
                "ours",
                db,
                senders,
                latencies,
                seconds,
                floor,
                floor_seconds,
                stored,
                int(in_database),
                cpu * 1000 / max(latencies.count, 1),
                _slack_posts(slack),
            )
    say(f"  ours  {db:10s} {senders:2d} senders: {result.describe()}")
    return result


def run_naive(workdir: Path, senders: int, events: int = NAIVE_EVENTS) -> Intake:
    signer = PartooSigner()  # the naive bot ignores signatures; its deliveries are signed all the same
    with fakes() as (slack, partoo):
        environment = naive_environment(slack, partoo, SLACK_ALERT_CHANNEL=ALERT_CHANNEL)
        with running(start_naive(environment, workdir)) as process:
            requests = signed_failures(signer, process.port, fresh_ids(WARMUP + events))
            latencies, seconds, _floor, _floor_seconds, warm, cpu = asyncio.run(
                _measure(process, requests, senders, floor=False, naive=True)
            )
            time.sleep(0.2)  # the fake records a call once it has answered it
            result = Intake(
                "naive",
                "-",
                senders,
                latencies,
                seconds,
                None,
                0.0,
                warm + sum(1 for status in latencies.statuses if status == 200),
                None,
                cpu * 1000 / max(latencies.count, 1),
                _slack_posts(slack),
            )
    say(f"  naive {'-':10s} {senders:2d} senders: {result.describe()}")
    return result


def run(workdir: Path, *, postgres: bool, events: int = EVENTS, naive_events: int = NAIVE_EVENTS) -> list[Intake]:
    say(f"{TITLE}: {events:,} signed failures per level, closed loop, a fresh bot per level")
    results = [run_ours(workdir, "sqlite", senders, events) for senders in LEVELS]
    if postgres:
        results += [run_ours(workdir, "postgresql", senders, events) for senders in LEVELS]
    results += [run_naive(workdir, senders, naive_events) for senders in LEVELS]
    return results

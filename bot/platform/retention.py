"""Retention: years of traffic in bounded space.

The pruner deletes, in small batches, what is older than RETENTION_DAYS and finished:

- retry requests that are done and whose outcome was told (reported in Slack, and mirrored to the log
  channel when there is one), with their attempts, then batches left without requests;
- closed alerts, then digests left without alerts or "Retry all" batches;
- processed webhook events;
- plans of `/partoo-retry failed …` that expired more than RETENTION_DAYS ago (a plan lives 10 minutes; its row
  then only answers a late click on it with "expired", and its batch keeps the filter in words).

An alert is *closed* when nothing happened to it for the whole retention period (its failure, a repeat
failure, a retry request and the delivery report are all older than the cutoff), no retry of its message is
queued or running, and its Slack message shows its latest state (or it is grouped in a digest). So a
delivered alert goes RETENTION_DAYS after its delivery, and one nobody acted on goes RETENTION_DAYS after its
last failure. Active requests, unprocessed events and everything newer are never touched; nor is an outcome
nobody was told about, whatever its age: a Slack outage (a revoked token, say) longer than RETENTION_DAYS
must not take away what the notifier still has to post once Slack is back.

One replica prunes at a time: a pass holds the `retention` lease (bot.platform.leases), and every batch renews
it in the batch's own transaction, fenced by its token. A replica whose pass stalled past the lease (a long
pause, a database hiccup) and was taken over deletes nothing more: its batch's renewal matches no row and the
batch is rolled back.

Each batch is one short transaction (RETENTION_BATCH rows), with a pause between two, so intake and commands
(which on SQLite share one connection) never wait for more than one batch. On SQLite the freed pages are then
handed back to the file system (incremental auto-vacuum), so the file shrinks instead of staying at its
largest size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from bot.defaults import RETENTION_BATCH, RETENTION_FIRST_DELAY, RETENTION_INTERVAL, RETENTION_PAUSE, VACUUM_PAGES
from bot.platform.leases import Held, Leases
from bot.platform.loop import PollingLoop
from bot.platform.models import (
    Alert,
    Attempt,
    Batch,
    BulkPlan,
    Digest,
    LoopLease,
    Request,
    RequestState,
    WebhookEvent,
    core_table,
)

log = logging.getLogger(__name__)

DAY = 86400.0
RETENTION = "retention"
# A pass renews its lease at every batch: a minute covers one batch and its pause many times over.
RETENTION_CLAIM_SECONDS = 60.0
# SQLite's PRAGMA auto_vacuum values.
_INCREMENTAL = 2
# Pages (4 KiB) above which switching a file to incremental auto-vacuum is logged: about 4 MiB.
ANNOUNCED_VACUUM_PAGES = 1000


def history_start(now: float, retention_seconds: float) -> float | None:
    """The moment before which the log no longer holds finished retries; None when everything is kept."""
    return now - retention_seconds if retention_seconds > 0 else None


@dataclass
class PruneReport:
    """What one pass deleted, table by table, and the SQLite pages handed back."""

    finished_at: float
    deleted: dict[str, int] = field(default_factory=dict)
    pages_freed: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


async def ensure_incremental_vacuum(engine: AsyncEngine) -> None:
    """Switch a SQLite file to incremental auto-vacuum, once (a no-op on PostgreSQL and when already set).

    The mode can only change when no table exists yet or through a VACUUM, which rewrites the whole file and
    cannot run inside a transaction. It runs here, at start, before the loops: on a new file it takes
    milliseconds; on a large file made by an older version it takes about as long as copying the file.
    """
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        mode = (await connection.exec_driver_sql("PRAGMA auto_vacuum")).scalar_one()
        await connection.rollback()
        if mode == _INCREMENTAL:
            return
        pages = (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one()
        await connection.rollback()
        # Worth a line only when the VACUUM may take a while: on a file just made (the demo's, a first start)
        # it takes milliseconds, and an operator reading about it would look for a problem that is not there.
        level = logging.INFO if pages > ANNOUNCED_VACUUM_PAGES else logging.DEBUG
        log.log(level, "switching the SQLite database to incremental auto-vacuum (one VACUUM, once)")
        # The driver connection runs in autocommit (see database.py), and SQLAlchemy has no transaction open.
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute(f"PRAGMA auto_vacuum={_INCREMENTAL}")
        await driver.execute("VACUUM")


class Pruner(PollingLoop):
    """Deletes old, finished rows in small batches, every `interval` seconds."""

    name = "retention"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention_seconds: float,
        interval: float = RETENTION_INTERVAL,
        batch_size: int = RETENTION_BATCH,
        pause: float = RETENTION_PAUSE,
        first_delay: float = RETENTION_FIRST_DELAY,
        clock: Callable[[], float] = time.time,
        log_channel: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(interval)
        # With a log channel, an outcome is told once reported and once mirrored there; without, once reported.
        self.log_channel = log_channel
        self.first_delay = first_delay
        self.engine = engine
        self.retention_seconds = retention_seconds
        self.batch_size = batch_size
        self.pause = pause
        self.clock = clock
        self.sleep = sleep
        self.last_report: PruneReport | None = None
        self.passes = Leases(
            engine, core_table(LoopLease), until="lease_until", fence="lease_token", clock=self._now, key="name"
        )

    def _now(self) -> float:
        return self.clock()  # read at each call: tests move the pruner's clock

    async def run(self) -> None:
        # A starting bot has webhooks and commands to take first; the first pass can wait a minute.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.first_delay)
        self._wake.clear()
        if not self._stopping:
            await super().run()

    async def tick(self) -> bool:
        if self.retention_seconds > 0:
            self.last_report = await self.prune()
            if self.last_report.total:
                log.info(
                    "retention: pruned %s; %d SQLite pages freed",
                    ", ".join(f"{count} {table}" for table, count in self.last_report.deleted.items() if count),
                    self.last_report.pages_freed,
                )
        return False

    async def prune(self) -> PruneReport:
        """One pass over every table, oldest rows first, until nothing older than the cutoff is left."""
        cutoff = self.clock() - self.retention_seconds
        steps: list[tuple[str, Callable[[AsyncConnection, float], Awaitable[int]]]] = [
            ("requests", self._requests),
            ("batches", self._batches),
            ("alerts", self._alerts),
            ("digests", self._digests),
            ("events", self._events),
            ("plans", self._plans),
        ]
        report = PruneReport(finished_at=0.0)
        held = await self.passes.claim(RETENTION, RETENTION_CLAIM_SECONDS)
        if held is None:
            report.finished_at = self.clock()
            return report  # another replica is pruning
        try:
            for table, step in steps:
                await self._in_batches(step, cutoff, held, report, table)
        except _TakenOver:
            log.warning("retention: another replica took the pass over; this one stops")
        finally:
            await self.passes.release(held)
        if report.total and self.engine.dialect.name == "sqlite":
            report.pages_freed = await self._vacuum()
        report.finished_at = self.clock()
        return report

    async def _in_batches(
        self,
        step: Callable[[AsyncConnection, float], Awaitable[int]],
        cutoff: float,
        held: Held,
        report: PruneReport,
        table: str,
    ) -> None:
        report.deleted[table] = 0
        while not self._stopping:
            async with self.engine.begin() as connection:
                # The renewal first, in the batch's transaction: taken over, this pass deletes nothing more.
                renewed = {"lease_until": self.clock() + RETENTION_CLAIM_SECONDS}
                if await self.passes.write(held, renewed, connection) != 1:
                    raise _TakenOver
                count = await step(connection, cutoff)
            report.deleted[table] += count
            if count < self.batch_size:
                break
            await self.sleep(self.pause)  # let intake and commands have the database

    async def _requests(self, connection: AsyncConnection, cutoff: float) -> int:
        finished = [Request.state == RequestState.DONE, Request.finished_at < cutoff, Request.reported_at.is_not(None)]
        if self.log_channel:
            finished.append(Request.logged_at.is_not(None))
        ids = list((await connection.execute(self._oldest(Request.id, *finished))).scalars())
        if not ids:
            return 0
        await connection.execute(delete(Attempt).where(Attempt.request_id.in_(ids)))
        await connection.execute(delete(Request).where(Request.id.in_(ids), *finished))
        return len(ids)

    async def _batches(self, connection: AsyncConnection, cutoff: float) -> int:
        return await self._delete(
            connection, Batch, Batch.created_at < cutoff, ~exists().where(Request.batch_id == Batch.id)
        )

    async def _alerts(self, connection: AsyncConnection, cutoff: float) -> int:
        active_retry = exists().where(Request.message_id == Alert.message_id, Request.state.in_(RequestState.ACTIVE))
        return await self._delete(
            connection,
            Alert,
            Alert.failed_at < cutoff,
            func.coalesce(Alert.failed_again_at, 0.0) < cutoff,
            func.coalesce(Alert.retry_requested_at, 0.0) < cutoff,
            func.coalesce(Alert.delivered_at, 0.0) < cutoff,
            # Its message shows its latest state (an alert grouped in a digest has no message of its own).
            or_(Alert.posted_version >= Alert.version, Alert.digest_id.is_not(None)),
            ~active_retry,
        )

    async def _digests(self, connection: AsyncConnection, cutoff: float) -> int:
        return await self._delete(
            connection,
            Digest,
            Digest.created_at < cutoff,
            Digest.posted_version >= Digest.version,
            ~exists().where(Alert.digest_id == Digest.id),
            ~exists().where(Batch.digest_id == Digest.id),
        )

    async def _events(self, connection: AsyncConnection, cutoff: float) -> int:
        return await self._delete(connection, WebhookEvent, WebhookEvent.processed_at < cutoff)

    async def _plans(self, connection: AsyncConnection, cutoff: float) -> int:
        # Whatever became of it (open, retried, cancelled): nothing refers to a plan's row once it expired.
        return await self._delete(connection, BulkPlan, BulkPlan.expires_at < cutoff)

    async def _delete(
        self,
        connection: AsyncConnection,
        table: type[Alert | Batch | BulkPlan | Digest | WebhookEvent],
        *conditions: ColumnElement[bool],
    ) -> int:
        # The conditions are checked again by the DELETE itself: a row that changed since it was chosen
        # (an alert retried a moment ago) stays.
        chosen = self._oldest(table.id, *conditions)
        result = await connection.execute(delete(table).where(table.id.in_(chosen), *conditions))
        return int(result.rowcount or 0)

    def _oldest(self, id_column: InstrumentedAttribute[int], *conditions: ColumnElement[bool]) -> Select[Any]:
        # correlate(None): inside the DELETE this stays a SELECT of its own, not one bound to the deleted row.
        return select(id_column).where(*conditions).order_by(id_column).limit(self.batch_size).correlate(None)

    async def _vacuum(self) -> int:
        """Hand freed SQLite pages back to the file system, a few thousand per transaction."""
        freed = 0
        while not self._stopping:
            async with self.engine.connect() as connection:
                mode = (await connection.exec_driver_sql("PRAGMA auto_vacuum")).scalar_one()
                free = (await connection.exec_driver_sql("PRAGMA freelist_count")).scalar_one()
                await connection.rollback()
                if mode != _INCREMENTAL or not free:
                    return freed
                driver = (await connection.get_raw_connection()).driver_connection
                assert driver is not None
                # Python's sqlite3 steps this pragma once per execute(), which frees one page; executescript()
                # runs it to the end (in its own transaction: the driver connection is in autocommit).
                await driver.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES})")
            freed += min(free, VACUUM_PAGES)
            await asyncio.sleep(self.pause)
        return freed


class _TakenOver(Exception):
    """This pass's lease was taken over by another replica: stop deleting."""

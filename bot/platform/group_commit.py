"""Group commit: concurrent writes committed together, each caller answered once its own write is durable.

Webhook deliveries and retry commands arrive in bursts, and each used to be its own transaction: on SQLite
a BEGIN, the write and a COMMIT, each a hand-off to the driver's thread, on the one connection every
request queues for. Here each caller hands its item to a `GroupCommit` and awaits a future; one drainer
task takes everything waiting, writes it in ONE transaction and resolves every future only after that
COMMIT returned. Batches form by themselves: under light load the drainer finds one item and commits it
at once (no timer, no added latency); under load, items arriving while a batch commits form the next one.

A batch that fails is not the fault of every caller in it: it is rolled back and its items written again
one transaction each, so a bad item fails only its own caller (and on PostgreSQL, where an error aborts
the whole transaction, the others are not lost to it).

What to write is the caller's business: `write_batch(connection, items) -> results` (one result per item,
in order; `each(write)` makes one from a per-item `write(connection, item)`); this module owns only the
batching and the committing. It runs inside the shared transaction and must not commit; it may be called
again for the same items after a failed batch (the batch's effects were rolled back).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.defaults import INTAKE_WRITERS_POSTGRESQL

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWriter = Callable[[AsyncConnection, list[Item]], Awaitable[list[Result]]]

# Enough to amortize a transaction over a burst; small enough that one batch holds the connection briefly.
MAX_BATCH = 200


class GroupCommit(Generic[Item, Result]):
    """Writes submitted items in shared transactions; `submit` returns once its item is committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        write_batch: BatchWriter[Item, Result],
        *,
        max_batch: int = MAX_BATCH,
        name: str = "group-commit",
        writers: int = 1,
    ) -> None:
        self.engine = engine
        self.write_batch = write_batch
        self.max_batch = max_batch
        self.name = name
        # How many batches may be written at once, each over a connection of its own: 1 where writes share one
        # connection anyway (SQLite), a few on PostgreSQL, where a single writer would serialize the pool; 0: no
        # batches, each item written in a transaction of its own, at once (see `together_on`).
        self.writers = writers
        self._pending: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._drainers: set[asyncio.Task[None]] = set()
        # Counters for tests and benchmarks: how many transactions, and how many items they carried.
        self.commits = 0
        self.committed_items = 0

    async def submit(self, item: Item) -> Result:
        """Write `item` (with whatever else is waiting) and return `write`'s result once it is committed.

        Raises what `write` raised for this item, or the commit's error when even its own transaction failed.
        """
        if self.writers == 0:
            return (await self._transaction([item]))[0]
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._drainers) < self.writers:
            # A task of its own, not the caller's: a caller that is cancelled must not abort the others' batch.
            self._drainers.add(asyncio.create_task(self._drain(), name=self.name))
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                count = min(len(self._pending), self.max_batch)
                batch = [self._pending.popleft() for _ in range(count)]
                await self._commit(batch)
        except asyncio.CancelledError:
            while self._pending:  # stopping: nobody will write these
                self._pending.popleft()[1].cancel()
            raise
        finally:
            # No await between the last emptiness check and this: a submit either saw this task running
            # (and its item is taken by the loop above) or sees a free place and starts a new drainer.
            current = asyncio.current_task()
            if current is not None:
                self._drainers.discard(current)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._transaction([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(error)
                return
            # The type only: a database error's text carries the statement's parameters (message content).
            log.info(
                "%s: a batch of %d failed (%s); writing them one by one", self.name, len(batch), type(error).__name__
            )
            for one in batch:
                await self._commit([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its caller was cancelled meanwhile; the item is written all the same
                future.set_result(result)

    async def _transaction(self, items: list[Item]) -> list[Result]:
        async with self.engine.begin() as connection:
            results = await self.write_batch(connection, items)
        # Leaving the block committed: only now is every item durable.
        self.commits += 1
        self.committed_items += len(items)
        return results


def intake_writers(engine: AsyncEngine) -> int:
    """How many batches of webhook deliveries may be written at once (see `together_on` for enqueues).

    SQLite: one (one connection). PostgreSQL: a few. Deliveries only insert rows of their own, so batches
    written side by side lock nothing another batch waits for; a few writers keep batching under load
    (fewer transactions, as on SQLite) without serializing the pool under light load.
    """
    return 1 if together_on(engine) else INTAKE_WRITERS_POSTGRESQL


def together_on(engine: AsyncEngine) -> bool:
    """Whether writes to this database gain from being committed together.

    SQLite: yes. The process has one connection to it (bot/platform/database.py), so writes queue for it
    anyway, each paying BEGIN and COMMIT. PostgreSQL: no. Concurrent transactions run side by side over the
    pool, and the server already flushes concurrent commits together; one writer would serialize them (in
    the benchmarks: intake at 10 senders and clicks at 50 slower than one transaction each). Webhook intake
    batches there all the same, over several writers (`intake_writers`).
    """
    return engine.dialect.name == "sqlite"


def each(write: Callable[[AsyncConnection, Item], Awaitable[Result]]) -> BatchWriter[Item, Result]:
    """A batch writer that writes the items one statement (or several) at a time, in the shared transaction."""

    async def write_batch(connection: AsyncConnection, items: list[Item]) -> list[Result]:
        return [await write(connection, item) for item in items]

    return write_batch

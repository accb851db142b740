"""The one lease every loop uses: claim a row with a fencing token, renew it, write only while it holds.

A claim sets the row's lease (`<x>_until`) and adds one to its fencing token (`<x>_token`), and hands the
token to the claimer (`Held`). Every write the holder makes afterwards (renewal, "posted", "give back")
names that token in its WHERE and reports whether it still held. Why the token and not the lease's end:
after an `await` (a Slack call waiting out a Retry-After, renewals failing for a minute) the lease may
have expired and another replica claimed the row; the first one's late write would then mark done or
give back a post the second one is making, and both post. With the token, the late write matches no
row: a replica that was taken over can no longer change anything, and learns so from the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, Update, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClaimLost(Exception):
    """Another replica took the claim over while the work ran; the work was cancelled."""


def lease_free(
    lease_until: InstrumentedAttribute[float | None] | ColumnElement[Any], now: float | ColumnElement[Any]
) -> ColumnElement[bool]:
    """True where the lease column is empty or already past `now`."""
    return or_(lease_until.is_(None), lease_until < now)


@dataclass(frozen=True)
class Held:
    """A claim on one row: its key (an id, or a name for one-row tables) and the fencing token it was claimed with."""

    row_id: int | str
    token: int


class LeaseColumns:
    """A table's lease: its key, lease-end and fencing-token columns, and the conditions every claim uses.

    Usable without an engine, for statements built once with bound parameters (bot.retries.queue_statements).
    """

    def __init__(self, table: Table, *, until: str, fence: str, key: str = "id") -> None:
        self.table = table
        self.until = table.c[until]
        self.token = table.c[fence]
        self.id = table.c[key]

    def free(self, now: float | ColumnElement[Any]) -> ColumnElement[bool]:
        """The lease is empty or ran out: anyone may claim the row."""
        return lease_free(self.until, now)

    def taking(self, until: float | ColumnElement[Any]) -> dict[str, Any]:
        """The values of a claim: the lease's end, and one more on the fencing token."""
        return {self.until.name: until, self.token.name: self.token + 1}

    def held_by(self, row_id: object, token: object) -> ColumnElement[bool]:
        """The row is still held with this token (values or bound parameters): the fence of every later write."""
        return and_(self.id == row_id, self.token == token)


class Leases(LeaseColumns):
    """Claims on the rows of one table, through one pair of columns (lease end, fencing token)."""

    def __init__(
        self, engine: AsyncEngine, table: Table, *, until: str, fence: str, clock: Callable[[], float], key: str = "id"
    ) -> None:
        super().__init__(table, until=until, fence=fence, key=key)
        self.engine = engine
        self.clock = clock

    async def claim(self, row_id: int | str, seconds: float, *conditions: ColumnElement[bool]) -> Held | None:
        """Take row `row_id` for `seconds` if its lease is free and `conditions` hold; None if not."""
        held = await self.claim_many([row_id], seconds, *conditions)
        return held[0] if held else None

    async def claim_many(
        self, row_ids: Iterable[int | str], seconds: float, *conditions: ColumnElement[bool]
    ) -> list[Held]:
        """Take those of `row_ids` whose lease is free and where `conditions` hold (another replica has the rest).

        One conditional UPDATE: of two replicas racing for a row, exactly one finds it free.
        """
        ids = list(row_ids)
        if not ids:
            return []
        now = self.clock()
        async with self.engine.begin() as connection:
            rows = await connection.execute(
                update(self.table)
                .where(self.id.in_(ids), self.free(now), *conditions)
                .values(self.taking(now + seconds))
                .returning(self.id, self.token)
            )
            held = [Held(row_id, int(token)) for row_id, token in rows]
        return sorted(held, key=lambda h: ids.index(h.row_id))

    async def claim_first(self, seconds: float, *conditions: ColumnElement[bool]) -> Held | None:
        """Take the lowest-id row that is free and where `conditions` hold."""
        now = self.clock()
        async with self.engine.connect() as connection:
            candidate = (
                await connection.execute(select(self.id).where(self.free(now), *conditions).order_by(self.id).limit(1))
            ).scalar_one_or_none()
        return None if candidate is None else await self.claim(candidate, seconds, *conditions)

    def fenced(self, held: Held | Sequence[Held]) -> Update:
        """An UPDATE of the held rows that matches each only while it is still held with its token."""
        helds = [held] if isinstance(held, Held) else list(held)
        return update(self.table).where(or_(*(self.held_by(h.row_id, h.token) for h in helds)))

    async def write(
        self, held: Held | Sequence[Held], values: Mapping[str, Any], connection: AsyncConnection | None = None
    ) -> int:
        """Write `values` into the rows still held; how many were (0: taken over, write nothing)."""
        if not isinstance(held, Held) and not held:
            return 0
        statement = self.fenced(held).values(dict(values))
        if connection is not None:
            return (await connection.execute(statement)).rowcount
        async with self.engine.begin() as own:
            return (await own.execute(statement)).rowcount

    async def renew(self, held: Held, seconds: float) -> bool:
        """Extend the lease; False when another replica took it over (the holder must stop writing)."""
        return await self.write(held, {self.until.name: self.clock() + seconds}) == 1

    async def release(self, held: Held | Sequence[Held], *, retry_in: float = 0.0) -> int:
        """Give the rows back, to any replica at once or after `retry_in` seconds; how many were still ours."""
        return await self.write(held, {self.until.name: self.clock() + retry_in if retry_in else None})

    def renewer(self, held: Held, seconds: float) -> Callable[[], Awaitable[bool]]:
        """The renewal `while_claimed` calls while the holder's work runs."""

        async def renew() -> bool:
            return await self.renew(held, seconds)

        return renew


async def while_claimed(
    work: Awaitable[T],
    renew: Callable[[], Awaitable[bool]],
    every: float,
    *,
    give_back: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Run `work`, renewing its claim every `every` seconds until it ends; `give_back` the claim if cancelled.

    A Slack call can outlast any fixed claim (slack_sdk waits out a 429's Retry-After, however long), and
    a claim that expires mid-call lets another replica post the same message. So the claim is renewed
    while the call runs. When a renewal finds the claim taken over, the work is cancelled and ClaimLost
    raised: the other holder does the job. A renewal that fails (database hiccup) is tried again next
    time; the claim may well still be ours, and if it is not, the fenced write after the work says so.

    Cancelled (the bot stops mid-call), the claim is given back at once (fenced, so only if still ours)
    rather than left to expire: another replica, or this one restarted, takes the job over without waiting.
    """
    task = asyncio.ensure_future(work)
    # A cancelled call's own error (if it raced the cancellation) is of no interest to anyone.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        while True:
            done, _pending = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            try:
                still_ours = await renew()
            except Exception as error:
                log.warning("could not renew a claim: %s", type(error).__name__)
                continue
            if not still_ours:
                task.cancel()
                raise ClaimLost
    except asyncio.CancelledError:
        if give_back is not None:
            try:
                await asyncio.shield(give_back())
            except (asyncio.CancelledError, Exception) as error:
                log.warning("could not give a claim back when stopped: %s", type(error).__name__)
        raise
    finally:
        if not task.done():
            task.cancel()

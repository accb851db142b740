"""Plans of `/partoo-retry failed …`: made from the bot's alerts, stored, and taken once by Retry.

Partoo cannot list failed messages across an organisation (`GET /v2/messages` needs a conversation), so
the alerts table (one row per message Partoo's webhooks reported failed) is the source. A plan groups what it
matched with admission (bot.domain.bulk.group_of), on the state read in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain.admission import Asked, Surface
from bot.domain.bulk import HOPELESS, Failure, Filter, Group, group_of
from bot.domain.businesses import business_key
from bot.domain.verdict import verdict_from_json
from bot.failures.state import failure_from_json
from bot.platform.models import Alert, BulkPlan, PlanState
from bot.retries.admission_state import stored_states

_LATEST_FAILURE = func.coalesce(Alert.failed_again_at, Alert.failed_at)
_FAILED_SINCE = (
    select(Alert.message_id, Alert.failure, Alert.verdict, _LATEST_FAILURE.label("latest"))
    .where(bindparam("start") <= _LATEST_FAILURE)
    .order_by(_LATEST_FAILURE.desc(), Alert.message_id)
)
_TAKE = {
    # Only the person who asked for the plan, only while it is open and fresh: one UPDATE is the claim.
    False: update(BulkPlan)
    .where(
        BulkPlan.id == bindparam("plan_id"),
        BulkPlan.requested_by == bindparam("user_id"),
        BulkPlan.state == PlanState.OPEN,
        BulkPlan.expires_at > bindparam("now"),
    )
    .values(state=PlanState.RETRIED)
    .returning(BulkPlan.message_ids, BulkPlan.filter_text),
    True: update(BulkPlan)
    .where(
        BulkPlan.id == bindparam("plan_id"),
        BulkPlan.requested_by == bindparam("user_id"),
        BulkPlan.state != PlanState.CANCELLED,
        BulkPlan.anyway_requested_by.is_(None),
        BulkPlan.expires_at > bindparam("now"),
    )
    .values(anyway_requested_by=bindparam("user_id"))
    .returning(BulkPlan.anyway_ids, BulkPlan.filter_text),
}


@dataclass(frozen=True)
class Planned:
    """One matched message: its group, and its business (for the plan's first ids)."""

    message_id: int
    group: Group
    business_id: str | None


@dataclass(frozen=True)
class PlanView:
    id: int
    requested_by: str
    filter_text: str
    expires_at: float
    items: tuple[Planned, ...]

    def ids(self, *groups: Group) -> list[int]:
        return [item.message_id for item in self.items if item.group in groups]


@dataclass(frozen=True)
class TooLarge:
    """More matched than a plan may hold: nothing stored."""

    matched: int
    cap: int
    filter_text: str


@dataclass(frozen=True)
class PlanStatus:
    state: str
    expired: bool
    requested_by: str
    batch_id: int | None


class PlanStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cap: int,
        ttl_seconds: float,
        awaiting_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.cap = cap
        self.ttl_seconds = ttl_seconds
        self.awaiting_seconds = awaiting_seconds
        self.clock = clock

    async def make(self, user_id: str, channel_id: str, wanted: Filter) -> PlanView | TooLarge:
        """Match, group and store a plan (nothing is queued)."""
        now = self.clock()
        asked = Asked(Surface.COMMAND, now=now, awaiting_seconds=self.awaiting_seconds)
        async with self.engine.begin() as connection:
            failures = [
                failure
                for row in await connection.execute(_FAILED_SINCE, {"start": wanted.start(now)})
                if wanted.matches(failure := _failure(row), wanted.start(now))
            ]
            if len(failures) > self.cap:
                return TooLarge(len(failures), self.cap, wanted.words())
            states = await stored_states(connection, [failure.message_id for failure in failures])
            items = tuple(
                Planned(
                    failure.message_id,
                    group_of(states[failure.message_id], failure.verdict, asked),
                    failure.business_id,
                )
                for failure in failures
            )
            view = PlanView(0, user_id, wanted.words(), now + self.ttl_seconds, items)
            plan_id = (
                await connection.execute(
                    insert(BulkPlan).returning(BulkPlan.id),
                    {
                        "requested_by": user_id,
                        "channel_id": channel_id,
                        "filter_text": view.filter_text,
                        "message_ids": json.dumps(view.ids(Group.CAN_RETRY)),
                        "anyway_ids": json.dumps(view.ids(*HOPELESS)),
                        "created_at": now,
                        "expires_at": view.expires_at,
                        "state": PlanState.OPEN,
                    },
                )
            ).scalar_one()
        return PlanView(plan_id, user_id, view.filter_text, view.expires_at, items)

    async def status(self, plan_id: int) -> PlanStatus | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(BulkPlan.state, BulkPlan.expires_at, BulkPlan.requested_by, BulkPlan.batch_id).where(
                        BulkPlan.id == plan_id
                    )
                )
            ).first()
        if row is None:
            return None
        return PlanStatus(row.state, row.expires_at <= self.clock(), row.requested_by, row.batch_id)

    async def cancel(self, plan_id: int, user_id: str) -> bool:
        """Cancel an open plan of this person's; False when it was not open (or not theirs)."""
        async with self.engine.begin() as connection:
            done = await connection.execute(
                update(BulkPlan)
                .where(BulkPlan.id == plan_id, BulkPlan.requested_by == user_id, BulkPlan.state == PlanState.OPEN)
                .values(state=PlanState.CANCELLED)
            )
        return done.rowcount == 1


@dataclass(frozen=True)
class TakenPlan:
    """What Retry (or its anyway step) takes from a plan: the ids it showed, and its filter in words."""

    message_ids: tuple[int, ...]
    filter_text: str


async def take_plan(
    connection: AsyncConnection, plan_id: int, user_id: str, *, anyway: bool, now: float
) -> TakenPlan | None:
    """Take the plan for Retry (or for its confirmed anyway step) in the enqueue's transaction: its ids and
    filter, or None when it expired, was cancelled, was already taken, or is someone else's."""
    row = (await connection.execute(_TAKE[anyway], {"plan_id": plan_id, "user_id": user_id, "now": now})).first()
    if row is None:
        return None
    return TakenPlan(tuple(int(message_id) for message_id in json.loads(row[0])), str(row[1]))


async def plan_queued(connection: AsyncConnection, plan_id: int, batch_id: int, *, anyway: bool) -> None:
    """Link the plan to the batch it queued (its progress and Stop)."""
    column = "anyway_batch_id" if anyway else "batch_id"
    await connection.execute(update(BulkPlan).where(BulkPlan.id == plan_id).values({column: batch_id}))


def _failure(row: Any) -> Failure:  # a Row of _FAILED_SINCE
    reported = failure_from_json(row.failure)
    return Failure(
        message_id=row.message_id,
        failed_at=row.latest,
        business_id=business_key(reported.business_id),
        partner=reported.messaging_partner,
        verdict=verdict_from_json(row.verdict),
    )

"""Retention prunes the plans of `/partoo-retry failed …` once they expired longer ago than RETENTION_DAYS, whatever
became of them, and keeps the younger ones (SQLite and PostgreSQL, through the running app)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.platform.models import BulkPlan
from bot.retries.plan_messages import PLAN_CANCEL_ACTION_ID, PLAN_RETRY_ACTION_ID
from tests.fakes import FakeSlack
from tests.harness import RunningBot
from tests.signing import PartooSigner, message_updated_event
from tests.test_bulk_plans import _button, _click, _plan
from tests.waiting import eventually_async


async def _plans(bot: RunningBot) -> dict[int, float]:
    async with bot.bot.engine.connect() as connection:
        rows = await connection.execute(select(BulkPlan.id, BulkPlan.expires_at))
        return {row.id: row.expires_at for row in rows}


async def test_expired_plans_older_than_retention_are_pruned_and_younger_ones_kept(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    for message_id in (8001, 8002):
        assert (await bot.webhook(message_updated_event(message_id), signer)).status_code == 200

    async def alerted() -> bool:
        return all([await bot.bot.alerts.alert_for(n) for n in (8001, 8002)])

    await eventually_async(alerted, timeout=20)
    # Three plans, each ending its own way: retried, cancelled, left open until it expires.
    retried = await _plan(bot, slack, "failed since 1h", "retried")
    await _click(bot, slack, PLAN_RETRY_ACTION_ID, _button(retried, PLAN_RETRY_ACTION_ID)["value"], "retry")
    cancelled = await _plan(bot, slack, "failed since 1h", "cancelled")
    await _click(bot, slack, PLAN_CANCEL_ACTION_ID, _button(cancelled, PLAN_CANCEL_ACTION_ID)["value"], "cancel")
    await _plan(bot, slack, "failed since 1h", "open")
    plans = await _plans(bot)
    assert len(plans) == 3
    youngest = max(plans.values())  # the open one, made last

    pruner = bot.bot.pruner
    retention = pruner.retention_seconds
    # Exactly the retention period after the open plan expired: the two made before it expired longer ago and go.
    pruner.clock = lambda: youngest + retention
    report = await pruner.prune()
    left = await _plans(bot)
    assert report.deleted["plans"] == 2 and list(left.values()) == [youngest], (report.deleted, left)

    pruner.clock = lambda: youngest + retention + 60
    report = await pruner.prune()
    assert report.deleted["plans"] == 1
    async with bot.bot.engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(BulkPlan))).scalar_one() == 0

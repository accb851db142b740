"""Reads the facts a report is made of: failures from the alerts, retries from the retry log.

A failure is counted at each Failed report the alert row keeps: its first (`failed_at`) and its latest
(`failed_again_at`). Reports between those two are not kept by the bot, so a message that failed three
times in one week counts once in it, which is what the report says: messages, not reports.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.businesses import Business, business_key
from bot.domain.lifecycle import DELIVERED
from bot.domain.verdict import verdict_from_json
from bot.domain.weekly_report import FailureFact, Report, RetryFact, build_report
from bot.failures.businesses import BusinessNames
from bot.failures.state import failure_from_json
from bot.platform.models import Alert, Request


class ReportReads:
    """Builds the report of a window from what the database holds."""

    def __init__(self, engine: AsyncEngine, names: BusinessNames | None = None) -> None:
        self.engine = engine
        # Businesses are ranked by id and shown by name where a conversation check learned it.
        self.names = names or BusinessNames(engine)

    async def report(self, start: float, end: float, *, silences: Sequence[str] = ()) -> Report:
        before = start - (end - start)
        failures = await self._failures(before, end)
        return build_report(
            start,
            end,
            failures,
            failures_before=len({fact.message_id for fact in failures if before <= fact.failed_at < start}),
            retries=await self._retries(start, end),
            silences=silences,
        )

    async def _failures(self, since: float, until: float) -> list[FailureFact]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Alert.message_id, Alert.failure, Alert.failed_at, Alert.failed_again_at, Alert.verdict).where(
                    or_(
                        and_(Alert.failed_at >= since, Alert.failed_at < until),
                        and_(Alert.failed_again_at >= since, Alert.failed_again_at < until),
                    )
                )
            )
            found = [(row, failure_from_json(row.failure)) for row in rows]
        businesses = await self.names.lookup(failure.business_id for _row, failure in found)
        facts: list[FailureFact] = []
        for row, failure in found:
            verdict = verdict_from_json(row.verdict)
            key = business_key(failure.business_id)
            business = _shown(businesses[key]) if key is not None else None
            for at in {row.failed_at, row.failed_again_at} - {None}:
                facts.append(
                    FailureFact(
                        message_id=row.message_id,
                        failed_at=at,
                        business=business,
                        partner=failure.messaging_partner,
                        cause=verdict.kind.value if verdict else None,
                    )
                )
        return facts

    async def _retries(self, since: float, until: float) -> list[RetryFact]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(
                    Request.message_id,
                    Request.requested_at,
                    Request.delivery,
                    Request.delivery_at,
                    Alert.failed_at,
                    Alert.failed_again_at,
                )
                .outerjoin(Alert, Alert.message_id == Request.message_id)
                .where(Request.requested_at >= since, Request.requested_at < until)
            )
            return [
                RetryFact(
                    message_id=row.message_id,
                    requested_at=row.requested_at,
                    failure_at=_answered_failure(row.requested_at, row.failed_at, row.failed_again_at),
                    delivered_at=row.delivery_at if row.delivery == DELIVERED else None,
                )
                for row in rows
            ]


def _shown(business: Business) -> str:
    # An id alone would read like a count in "Most failures: 1187: 12": an unnamed business says "business".
    return business.label if business.named else f"business {business.id}"


def _answered_failure(requested_at: float, failed_at: float | None, failed_again_at: float | None) -> float | None:
    """The latest failure kept that came before the retry: the one the retry answered."""
    earlier = [at for at in (failed_at, failed_again_at) if at is not None and at <= requested_at]
    return max(earlier, default=None)

"""What both features read about failed messages: their alerts, the digests that group them, and how they ended.

The alerter (alerts/) writes these rows and the retry queue (retries/) changes their state through
failures/state; both read them through this store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.lifecycle import DELIVERED, FAILED_AGAIN, AlertState, DigestState
from bot.domain.outcomes import OutcomeKind
from bot.failures.silences import SilenceStore
from bot.failures.state import ALERT_COLUMNS, alert_state
from bot.platform.models import Alert, Batch, Digest, Request, RequestState

Clock = Callable[[], float]


@dataclass(frozen=True)
class AlertView:
    id: int
    message_id: int
    channel_id: str
    ts: str | None
    digest_id: int | None
    version: int
    posted_version: int
    state: AlertState
    # Slack's error when the alert cannot be posted in its channel (shown by `status`).
    post_error: str | None = None
    # The silence that held it back, if one did (its summary then shows it).
    silence_id: int | None = None


@dataclass(frozen=True)
class DigestView:
    id: int
    channel_id: str
    ts: str | None
    created_at: float
    version: int
    posted_version: int
    posted_at: float | None
    retry_requested_by: str | None
    post_error: str | None = None
    # Set on a digest that sums up what a silence held back.
    silence_id: int | None = None


def alert_view(row: Row[Any]) -> AlertView:
    return AlertView(
        id=row.id,
        message_id=row.message_id,
        channel_id=row.channel_id,
        ts=row.ts,
        digest_id=row.digest_id,
        version=row.version,
        posted_version=row.posted_version,
        state=alert_state(row),
        post_error=row.post_error,
        silence_id=row.silence_id,
    )


def digest_view(row: Row[Any]) -> DigestView:
    return DigestView(
        id=row.id,
        channel_id=row.channel_id,
        ts=row.ts,
        created_at=row.created_at,
        version=row.version,
        posted_version=row.posted_version,
        posted_at=row.posted_at,
        retry_requested_by=row.retry_requested_by,
        post_error=row.post_error,
        silence_id=row.silence_id,
    )


# Built once: SQLAlchemy then reuses the compiled statement instead of rebuilding it for every delivery.
DIGEST_COLUMNS = list(Digest.__table__.columns)


class FailureStore:
    """Reads of alerts and digests, for both features and the Slack listeners."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def alert_for(self, message_id: int) -> AlertView | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*ALERT_COLUMNS).where(Alert.message_id == message_id))).one_or_none()
        return alert_view(row) if row else None

    async def alerts_for(self, message_ids: Sequence[int]) -> dict[int, AlertView]:
        if not message_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(*ALERT_COLUMNS).where(Alert.message_id.in_(list(message_ids))))
            return {row.message_id: alert_view(row) for row in rows}

    async def alert_posted_at(self, channel_id: str, ts: str) -> AlertView | None:
        """The alert the bot posted as this Slack message, if it is one."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(*ALERT_COLUMNS).where(Alert.channel_id == channel_id, Alert.ts == ts))
            ).first()
        return alert_view(row) if row else None

    async def digest_posted_at(self, channel_id: str, ts: str) -> DigestView | None:
        """The digest the bot posted as this Slack message, if it is one."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*DIGEST_COLUMNS).where(Digest.channel_id == channel_id, Digest.ts == ts)
                )
            ).first()
        return digest_view(row) if row else None

    async def digest(self, digest_id: int) -> DigestView | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*DIGEST_COLUMNS).where(Digest.id == digest_id))).one_or_none()
        return digest_view(row) if row else None

    async def digest_alerts(self, digest_id: int) -> list[AlertView]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*ALERT_COLUMNS).where(Alert.digest_id == digest_id).order_by(Alert.id)
            )
            return [alert_view(row) for row in rows]

    async def digest_state(self, digest: DigestView) -> DigestState:
        """Everything the digest message shows, from its alerts and the retries of its Retry all."""
        alerts = await self.digest_alerts(digest.id)
        silence = await SilenceStore(self.engine).get(digest.silence_id) if digest.silence_id else None
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(Request.outcome, Request.state, Request.delivery, func.count())
                    .join(Batch, Batch.id == Request.batch_id)
                    .where(Batch.digest_id == digest.id)
                    .group_by(Request.outcome, Request.state, Request.delivery)
                )
            )
        requested = sum(count for *_rest, count in rows)
        accepted = sum(count for outcome, _s, _d, count in rows if outcome == OutcomeKind.ACCEPTED.value)
        skipped = sum(count for outcome, _s, _d, count in rows if outcome == OutcomeKind.SKIPPED.value)
        refused = sum(
            count
            for outcome, state, _d, count in rows
            if state == RequestState.DONE and outcome != OutcomeKind.ACCEPTED.value
        )
        stopped = sum(count for outcome, _s, _d, count in rows if outcome == OutcomeKind.STOPPED.value)
        refused -= skipped + stopped
        going = sum(count for _o, state, _d, count in rows if state in RequestState.ACTIVE)
        return DigestState(
            digest_id=digest.id,
            failures=[alert.state.failure for alert in alerts],
            first_at=min((alert.state.failed_at for alert in alerts), default=digest.created_at),
            retry_requested_by=digest.retry_requested_by,
            requested=requested,
            accepted=accepted,
            refused=refused,
            delivered=sum(count for _o, _s, delivery, count in rows if delivery == DELIVERED),
            failed_again=sum(count for _o, _s, delivery, count in rows if delivery == FAILED_AGAIN),
            skipped=skipped,
            stopped=stopped,
            going=going,
            verdicts={alert.message_id: alert.state.verdict for alert in alerts if alert.state.verdict is not None},
            silence=silence,
        )

    async def delivery_counts(self, since: float) -> dict[str, int]:
        """How many retries made since a time were reported delivered, or failed again."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Request.delivery, func.count())
                .where(Request.requested_at >= since, Request.delivery.is_not(None))
                .group_by(Request.delivery)
            )
            return {str(delivery): int(count) for delivery, count in rows}

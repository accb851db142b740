"""What the conversation checks keep in the database: cached verdicts, alerts' verdicts, "not confirmed".

Everything is shared by replicas: a verdict cached by one replica saves the others a call, and every
claim (an alert to check, an accepted retry to mark "not confirmed") is one conditional UPDATE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import lifecycle
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import Verdict, verdict_from_json, verdict_to_json
from bot.failures.state import apply_to_alerts, bump_alerts, failure_from_json, lock_alerts
from bot.failures.webhook_events import parse_event
from bot.platform.leases import Held, Leases
from bot.platform.models import Alert, Batch, ConversationCheck, Request, RequestState, core_table
from bot.platform.models import WebhookEvent as EventRow

Clock = Callable[[], float]

# Cached verdicts older than this are deleted (they are never used after CONVERSATION_CHECK_CACHE_SECONDS).
CACHE_KEEP_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class ConversationRef:
    """The conversation a message belongs to, as Partoo's webhooks described it."""

    conversation_id: int
    business_id: str | None
    messaging_partner: str | None

    @property
    def channel_scope(self) -> str | None:
        return channel_scope(self.business_id, self.messaging_partner)

    @property
    def scopes(self) -> list[str]:
        """Cache keys whose verdict applies to this conversation."""
        channel = self.channel_scope
        return [conversation_scope(self.conversation_id), *([channel] if channel else [])]


def conversation_scope(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


def channel_scope(business_id: object, partner: str | None) -> str | None:
    """The key of a business's channel: setup problems (issues) belong to it, not to one conversation."""
    if business_id is None or not partner:
        return None
    return f"channel:{str(business_id)[:64]}:{partner.strip().lower()[:40]}"


@dataclass(frozen=True)
class RetryContext:
    ref: ConversationRef | None
    alert_verdict: Verdict | None
    has_alert: bool = False


@dataclass(frozen=True)
class AlertToCheck:
    alert_id: int
    message_id: int
    ref: ConversationRef | None
    # The check's claim on the alert (bot.platform.leases), renewed while the check runs.
    held: Held | None = None


@dataclass(frozen=True)
class NotConfirmed:
    """An accepted retry that got no delivery report in time, and the thread that should hear of it."""

    request_id: int
    message_id: int
    root_channel: str | None
    root_ts: str | None


class DiagnosisStore:
    """Reads and writes of cached verdicts, alerts' verdicts and "not confirmed" marks."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    # -- the cache ------------------------------------------------------------------------------

    async def cached(self, scopes: Sequence[str], fresh_since: float) -> Verdict | None:
        """The newest verdict under any of `scopes` made at or after `fresh_since`."""
        async with self.engine.connect() as connection:
            text = (
                await connection.execute(
                    select(ConversationCheck.verdict)
                    .where(ConversationCheck.scope.in_(list(scopes)), ConversationCheck.checked_at >= fresh_since)
                    .order_by(ConversationCheck.checked_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return verdict_from_json(text)

    async def remember(self, scopes: Sequence[str], verdict: Verdict) -> None:
        text = verdict_to_json(verdict)
        for scope in scopes:
            async with self.engine.begin() as connection:
                changed = await connection.execute(
                    update(ConversationCheck)
                    .where(ConversationCheck.scope == scope)
                    .values(verdict=text, checked_at=verdict.checked_at)
                )
                if changed.rowcount == 1:
                    continue
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(
                        insert(ConversationCheck).values(scope=scope, verdict=text, checked_at=verdict.checked_at)
                    )
            except IntegrityError:
                pass  # another replica cached it at the same moment: its verdict is as fresh as ours

    async def forget_old(self) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(ConversationCheck).where(ConversationCheck.checked_at < self.clock() - CACHE_KEEP_SECONDS)
            )

    # -- which conversation ---------------------------------------------------------------------

    async def retry_context(self, message_id: int) -> RetryContext:
        """What a check before a retry needs, read in one go (a Retry all reads it for every message)."""
        async with self.engine.connect() as connection:
            alert = (
                await connection.execute(select(Alert.failure, Alert.verdict).where(Alert.message_id == message_id))
            ).one_or_none()
        if alert is not None:
            return RetryContext(_ref_from_failure(alert.failure), verdict_from_json(alert.verdict), True)
        return RetryContext(await self.conversation_of(message_id), None)

    async def conversation_of(self, message_id: int) -> ConversationRef | None:
        """The message's conversation, from its alert or else the latest webhook about it; None if unseen.

        Events that concern no alert and no retry are dropped once applied (bounded storage): a message the
        bot only saw delivered counts as unseen here, and a command for it is retried without a check.
        """
        async with self.engine.connect() as connection:
            failure = (
                await connection.execute(select(Alert.failure).where(Alert.message_id == message_id))
            ).scalar_one_or_none()
            if failure is not None:
                return _ref_from_failure(failure)
            payload = (
                await connection.execute(
                    select(EventRow.payload)
                    .where(EventRow.message_id == message_id)
                    .order_by(EventRow.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if payload is None:
            return None
        message = parse_event(payload.encode()).message
        if message is None or message.conversation_id is None:
            return None
        return ConversationRef(message.conversation_id, _text(message.business_id), message.messaging_partner)

    async def latest_verdict(self, message_id: int) -> Verdict | None:
        """The newest verdict the bot holds on the message's conversation (its alert's, or the cache's)."""
        async with self.engine.connect() as connection:
            text = (
                await connection.execute(select(Alert.verdict).where(Alert.message_id == message_id))
            ).scalar_one_or_none()
        if text:
            return verdict_from_json(text)
        ref = await self.conversation_of(message_id)
        return await self.cached(ref.scopes, 0.0) if ref else None

    # -- alerts ---------------------------------------------------------------------------------

    async def intake_busy(self) -> bool:
        """Whether webhook events wait to be processed (a flood is coming in: alert checks can wait)."""
        async with self.engine.connect() as connection:
            waiting = (
                await connection.execute(select(EventRow.id).where(EventRow.processed_at.is_(None)).limit(1))
            ).scalar_one_or_none()
        return waiting is not None

    async def claim_unchecked_alerts(self, limit: int, lease_seconds: float, max_age: float) -> list[AlertToCheck]:
        """Take recent alerts whose conversation was never checked (still undelivered), for `lease_seconds`."""
        now = self.clock()
        unchecked = (Alert.verdict.is_(None), Alert.delivered_at.is_(None), Alert.failed_at >= now - max_age)
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(Alert.id, Alert.message_id, Alert.failure)
                    .where(*unchecked, self.checks.free(now))
                    .order_by(Alert.id)
                    .limit(limit)
                )
            )
        held = {h.row_id: h for h in await self.checks.claim_many([row.id for row in rows], lease_seconds, *unchecked)}
        return [
            AlertToCheck(row.id, row.message_id, _ref_from_failure(row.failure), held[row.id])
            for row in rows
            if row.id in held
        ]

    def _now(self) -> float:
        # Read at each call: tests move a store's clock after its leases were made.
        return self.clock()

    @cached_property
    def checks(self) -> Leases:
        """The background checks' claims on alerts: one replica checks an alert at a time."""
        return Leases(self.engine, core_table(Alert), until="check_lease_until", fence="check_token", clock=self._now)

    async def set_alert_verdict(self, message_id: int, verdict: Verdict) -> None:
        """Store the verdict on the message's alert; re-render it only when what it shows changes."""
        async with self.engine.begin() as connection:
            previous = verdict_from_json(
                (
                    await connection.execute(select(Alert.verdict).where(Alert.message_id == message_id))
                ).scalar_one_or_none()
            )
            text = verdict_to_json(verdict)
            if previous is not None and same_finding(previous, verdict):
                await connection.execute(update(Alert).where(Alert.message_id == message_id).values(verdict=text))
            else:
                await bump_alerts(connection, [message_id], verdict=text)

    async def set_new_alert_verdicts(self, verdicts: Sequence[tuple[int, Verdict]]) -> None:
        """First verdicts of many alerts at once: one UPDATE per distinct verdict, in one transaction."""
        by_text: dict[str, list[int]] = {}
        for message_id, verdict in verdicts:
            by_text.setdefault(verdict_to_json(verdict), []).append(message_id)
        if not by_text:
            return
        async with self.engine.begin() as connection:
            for text, message_ids in by_text.items():
                await bump_alerts(connection, message_ids, verdict=text)

    # -- "not confirmed" ------------------------------------------------------------------------

    async def mark_not_confirmed(self, accepted_before: float, limit: int = 100) -> list[NotConfirmed]:
        """Claim accepted retries with no Success nor Failed since `accepted_before`, and mark their alerts.

        Only messages with an alert: their failure came by webhook, so a delivery report is expected. A retry
        by command of a message never reported (or a deployment without the webhook) is not flagged.
        """
        now = self.clock()
        overdue = and_(
            Request.message_id.in_(select(Alert.message_id)),
            Request.outcome == OutcomeKind.ACCEPTED.value,
            Request.state == RequestState.DONE,
            Request.delivery.is_(None),
            Request.not_confirmed_at.is_(None),
            Request.finished_at < accepted_before,
        )
        async with self.engine.begin() as connection:
            rows = list(
                await connection.execute(
                    select(Request.id, Request.message_id, Batch.root_channel, Batch.root_ts)
                    .join(Batch, Batch.id == Request.batch_id)
                    .where(overdue)
                    .order_by(Request.id)
                    .limit(limit)
                )
            )
            await lock_alerts(connection, [row.message_id for row in rows])  # alerts first: see lock_alerts
            marked: list[NotConfirmed] = []
            for row in rows:
                # The same condition again: the UPDATE is the claim, so one replica tells each thread once.
                won = await connection.execute(
                    update(Request).where(Request.id == row.id, overdue).values(not_confirmed_at=now)
                )
                if won.rowcount == 1:
                    marked.append(NotConfirmed(row.id, row.message_id, row.root_channel, row.root_ts))
            # Through the lifecycle, like every change of an alert's state (bot.failures.state).
            await apply_to_alerts(connection, [item.message_id for item in marked], lifecycle.NotConfirmed(at=now))
        return marked


def same_finding(one: Verdict | None, other: Verdict | None) -> bool:
    """Whether two verdicts say the same thing (when they were made aside): no need to re-render the alert."""
    if one is None or other is None:
        return one is other
    return _shown(one) == _shown(other)


def _shown(verdict: Verdict) -> tuple[object, ...]:
    return (verdict.kind, verdict.issues, verdict.expired, verdict.messaging_partner, verdict.reason)


def _ref_from_failure(failure_json: str) -> ConversationRef | None:
    failure = failure_from_json(failure_json)
    if failure.conversation_id is None:
        return None
    return ConversationRef(failure.conversation_id, _text(failure.business_id), failure.messaging_partner)


def _text(value: object) -> str | None:
    return None if value is None else str(value)

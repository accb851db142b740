"""The one way alert rows change: load the state, apply a lifecycle event, write the result back.

Every write bumps the alert's `version` (and its digest's), so that the alerter re-renders its Slack
message. Kept apart from bot.alerts.store so that the retry queue can change alerts in its own
transactions (a retry request and the alert that shows it commit together).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import lifecycle
from bot.domain.lifecycle import AlertState, Phase
from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import verdict_from_json
from bot.platform.models import Alert, Digest, Request, core_table

ALERT_COLUMNS = list(Alert.__table__.columns)

_alerts = core_table(Alert)
_digests = core_table(Digest)
_requests = core_table(Request)
# Built once: SQLAlchemy then reuses their compiled form instead of building and keying them on every call.
_ALERTS_OF_MESSAGES = (
    select(*ALERT_COLUMNS)
    .where(_alerts.c.message_id.in_(bindparam("message_ids", expanding=True)))
    .order_by(_alerts.c.id)
    .with_for_update()
)
_WRITE_ALERT_STATE = update(_alerts).where(
    _alerts.c.id == bindparam("alert_id"), _alerts.c.version == bindparam("read_version")
)
_LOCK_ALERTS_IN_ORDER = (
    select(_alerts.c.id)
    .where(_alerts.c.message_id.in_(bindparam("message_ids", expanding=True)))
    .order_by(_alerts.c.id)
    .with_for_update()
)
_LOCK_ALERTS_OF_REQUESTS = (
    select(_alerts.c.id)
    .where(
        _alerts.c.message_id.in_(
            select(_requests.c.message_id).where(_requests.c.id.in_(bindparam("request_ids", expanding=True)))
        )
    )
    .order_by(_alerts.c.id)
    .with_for_update(of=_alerts)
)
_BUMP_DIGEST = update(_digests).where(_digests.c.id == bindparam("digest_id")).values(version=_digests.c.version + 1)


def failure_json(update: MessageUpdate) -> str:
    values = dataclasses.asdict(update)
    values["date"] = update.date.isoformat() if update.date else None
    return json.dumps(values)


def failure_from_json(text: str) -> MessageUpdate:
    values: dict[str, Any] = json.loads(text)
    values["date"] = datetime.fromisoformat(values["date"]) if values.get("date") else None
    return MessageUpdate(**values)


def alert_state(row: Row[Any]) -> AlertState:
    """The lifecycle state an alert row holds."""
    return AlertState(
        failure=failure_from_json(row.failure),
        failed_at=row.failed_at,
        failures=row.failures,
        retry_requested_by=row.retry_requested_by,
        retry_requested_at=row.retry_requested_at,
        retries=row.retries,
        last_outcome=OutcomeKind(row.last_outcome) if row.last_outcome else None,
        last_detail=row.last_detail,
        delivered_at=row.delivered_at,
        failed_again_at=row.failed_again_at,
        retry_source=row.retry_source,
        sending_since=row.sending_since,
        not_confirmed_at=row.not_confirmed_at,
        recorded_phase=Phase(row.phase) if row.phase else None,
        verdict=verdict_from_json(row.verdict),
    )


def state_columns(state: AlertState) -> dict[str, Any]:
    """The alert row's columns for a lifecycle state (the inverse of `alert_state`)."""
    return {
        "failure": failure_json(state.failure),
        "failed_at": state.failed_at,
        "failed_again_at": state.failed_again_at,
        "failures": state.failures,
        "retry_requested_by": state.retry_requested_by,
        "retry_requested_at": state.retry_requested_at,
        "retry_source": state.retry_source,
        "retries": state.retries,
        "last_outcome": state.last_outcome.value if state.last_outcome else None,
        "last_detail": state.last_detail,
        "delivered_at": state.delivered_at,
        "sending_since": state.sending_since,
        "not_confirmed_at": state.not_confirmed_at,
        "phase": state.phase.value,
    }


async def alert_states(connection: AsyncConnection, message_ids: Sequence[int]) -> dict[int, AlertState]:
    """The alert states of these messages (those that have one), locked FOR UPDATE on PostgreSQL."""
    return {row.message_id: alert_state(row) for row in await _alerts_of(connection, message_ids)}


async def apply_to_alerts(connection: AsyncConnection, message_ids: Sequence[int], event: lifecycle.Event) -> int:
    """Apply one event to the alerts of these messages (if any); how many changed.

    FOR UPDATE (PostgreSQL) makes a concurrent writer wait and then read this transaction's result, and
    the UPDATE is conditioned on the version read, so no change is ever computed from a stale state.
    SQLite's immediate transactions are serialized already. Statements built once: every retry asked,
    sent and answered comes through here.
    """
    if not message_ids:
        return 0
    return await _apply_to_rows(connection, await _alerts_of(connection, message_ids), event)


async def apply_to_alert_of(connection: AsyncConnection, message_id: int, event: lifecycle.Event) -> bool:
    """`apply_to_alerts` for one message; True when the message has an alert (changed or not)."""
    rows = await _alerts_of(connection, [message_id])
    await _apply_to_rows(connection, rows, event)
    return bool(rows)


async def _alerts_of(connection: AsyncConnection, message_ids: Sequence[int]) -> list[Row[Any]]:
    return list(await connection.execute(_ALERTS_OF_MESSAGES, {"message_ids": list(message_ids)}))


async def _apply_to_rows(connection: AsyncConnection, rows: Sequence[Row[Any]], event: lifecycle.Event) -> int:
    changed_digests: set[int] = set()
    changed = 0
    for row in rows:
        before = alert_state(row)
        after = lifecycle.apply(before, event)
        if after == before:
            continue
        result = await connection.execute(
            _WRITE_ALERT_STATE,
            {"alert_id": row.id, "read_version": row.version, "version": row.version + 1, **state_columns(after)},
        )
        if result.rowcount != 1:
            raise StaleAlertError(row.message_id)
        changed += 1
        if row.digest_id is not None:
            changed_digests.add(row.digest_id)
    for digest_id in sorted(changed_digests):
        await connection.execute(_BUMP_DIGEST, {"digest_id": digest_id})
    return changed


async def lock_alerts(connection: AsyncConnection, message_ids: Sequence[int]) -> None:
    """Lock these messages' alerts first, in id order: the lock order of every transaction that writes alerts.

    On PostgreSQL two transactions that lock the same alert and retry request in opposite orders deadlock,
    and one of them (a click, a worker's answer, an applied webhook) is aborted. So every transaction that
    writes a retry request and an alert takes the alert's lock before the request's: alerts (by id), then
    retry requests, then digests. SQLite has one writer at a time and ignores FOR UPDATE.
    """
    if message_ids:
        await connection.execute(_LOCK_ALERTS_IN_ORDER, {"message_ids": list(message_ids)})


async def lock_alerts_of_requests(connection: AsyncConnection, request_ids: Sequence[int]) -> None:
    """`lock_alerts` for the messages of these retry requests (the worker knows requests, not messages)."""
    if request_ids:
        await connection.execute(_LOCK_ALERTS_OF_REQUESTS, {"request_ids": list(request_ids)})


async def bump_alerts(connection: AsyncConnection, message_ids: Sequence[int], **values: Any) -> None:
    """Change columns of the alerts of these messages that are not lifecycle state, and re-render them.

    The alerts are locked first, by id (see `lock_alerts`): an UPDATE … WHERE message_id IN (…) alone would
    lock them in whatever order the scan finds them.
    """
    if not message_ids:
        return
    await lock_alerts(connection, message_ids)
    changed = await connection.execute(
        update(Alert).where(Alert.message_id.in_(list(message_ids))).values(version=Alert.version + 1, **values)
    )
    if changed.rowcount == 0:
        return  # most retries are of messages without an alert: spare the digest update
    digest_ids = select(Alert.digest_id).where(Alert.message_id.in_(list(message_ids)), Alert.digest_id.is_not(None))
    await connection.execute(update(Digest).where(Digest.id.in_(digest_ids)).values(version=Digest.version + 1))


class StaleAlertError(Exception):
    """An alert changed between its read and its write; the transaction rolls back instead of losing a change."""

"""The durable retry queue: enqueue, claim with a lease, record Partoo's answers, release.

Every state change is one short transaction guarded by a condition on the row (state, lease owner),
so any number of workers in any number of replicas can share one database without double work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.changes import bump_alerts
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.records import ActiveRequest, AttemptView, BatchView, EnqueueResult, NewBatch, RequestView
from bot.platform.group_commit import GroupCommit, each, together_on
from bot.platform.leases import lease_free
from bot.platform.models import Alert, Attempt, Batch, Request, RequestState

Clock = Callable[[], float]


# Built once: SQLAlchemy reuses their compiled form instead of rebuilding them for every command.
_INSERT_BATCH = insert(Batch).returning(Batch.id)
_DELETE_BATCH = delete(Batch).where(Batch.id == bindparam("batch_id"))
_ACTIVE_ONLY = text("state IN ('queued', 'running')")  # the predicate of uq_retry_requests_active_message
_INSERT_REQUESTS = {
    "sqlite": sqlite_insert(Request)
    .on_conflict_do_nothing(index_elements=[Request.message_id], index_where=_ACTIVE_ONLY)
    .returning(Request.message_id),
    "postgresql": postgresql_insert(Request)
    .on_conflict_do_nothing(index_elements=[Request.message_id], index_where=_ACTIVE_ONLY)
    .returning(Request.message_id),
}


class DuplicateRace(Exception):
    """Another writer created an active request for one of the ids between our check and insert."""


def _batch_view(row: Row[Any]) -> BatchView:
    return BatchView(
        id=row.id,
        source=row.source,
        requested_by=row.requested_by,
        channel_id=row.channel_id,
        response_url=row.response_url,
        total=row.total,
        skipped=tuple(json.loads(row.skipped or "[]")),
        created_at=row.created_at,
        correlation_id=row.correlation_id,
        root_channel=row.root_channel,
        root_ts=row.root_ts,
        uses_response_url=row.uses_response_url,
        alert_message_id=row.alert_message_id,
        digest_id=row.digest_id,
        progress_shown=row.progress_shown,
        progress_shown_at=row.progress_shown_at,
        finished_at=row.finished_at,
        summarized_at=row.summarized_at,
    )


def _request_view(row: Row[Any] | Any) -> RequestView:
    return RequestView(
        id=row.id,
        batch_id=row.batch_id,
        message_id=row.message_id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        state=row.state,
        attempts=row.attempts,
        first_attempt_at=row.first_attempt_at,
        in_flight_since=row.in_flight_since,
        outcome=OutcomeKind(row.outcome) if row.outcome else None,
        http_status=row.http_status,
        detail=row.detail,
        finished_at=row.finished_at,
        correlation_id=getattr(row, "correlation_id", None),
    )


_BATCH_COLUMNS = list(Batch.__table__.columns)
_REQUEST_COLUMNS = list(Request.__table__.columns)


class RetryQueue:
    """All reads and writes of retry batches, requests and attempts."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._enqueues: GroupCommit[tuple[NewBatch, tuple[int, ...]], EnqueueResult] = GroupCommit(
            engine, each(self._enqueue_in), name="enqueue", together=together_on(engine)
        )

    # -- asking -------------------------------------------------------------------------------

    async def enqueue(self, batch: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        """Durably queue a retry of each message that has no active request; report the others."""
        for _ in range(5):
            try:
                return await self._enqueue_once(batch, message_ids)
            except DuplicateRace:
                continue  # The other request now exists and will be reported as already active.
        return await self._enqueue_once(batch, message_ids)

    async def _enqueue_once(self, batch: NewBatch, message_ids: Sequence[int]) -> EnqueueResult:
        # Committed together with the commands and clicks that arrive meanwhile (group commit): returns
        # once this batch's requests are durable.
        return await self._enqueues.submit((batch, tuple(dict.fromkeys(message_ids))))

    async def _enqueue_in(self, connection: AsyncConnection, asked: tuple[NewBatch, tuple[int, ...]]) -> EnqueueResult:
        """One enqueue inside the group's shared transaction: insert first, let the unique index say which were active.

        The requests are inserted with ON CONFLICT DO NOTHING against the one-active-request index, so the
        common case (nothing active yet) is three statements, and a concurrent enqueue of the same id by
        another replica is settled by the index instead of an IntegrityError (which on PostgreSQL would
        abort the whole group's transaction).
        """
        batch, message_ids = asked
        now = self.clock()
        if batch.expected_alert_retries is not None:
            # FOR UPDATE (PostgreSQL) waits for a concurrent click's transaction and reads its result;
            # SQLite's immediate transactions are serialized already.
            retries = (
                await connection.execute(
                    select(Alert.retries).where(Alert.message_id == batch.alert_message_id).with_for_update()
                )
            ).scalar_one_or_none()
            if retries != batch.expected_alert_retries:
                return EnqueueResult(batch_id=None, queued=(), already_active=(), alert_changed=True)
        if not message_ids:
            return EnqueueResult(batch_id=None, queued=(), already_active=())
        batch_id = (
            await connection.execute(
                _INSERT_BATCH,
                {
                    "source": batch.source,
                    "requested_by": batch.requested_by,
                    "channel_id": batch.channel_id,
                    "response_url": batch.response_url,
                    "total": len(message_ids),
                    "skipped": "[]",
                    "created_at": now,
                    "correlation_id": batch.correlation_id,
                    "root_channel": batch.root_channel,
                    "root_ts": batch.root_ts,
                    "announced_at": now if batch.root_ts else None,
                    "uses_response_url": False,
                    "alert_message_id": batch.alert_message_id,
                    "digest_id": batch.digest_id,
                    "progress_shown": 0,
                },
            )
        ).scalar_one()
        inserted = await connection.execute(
            _INSERT_REQUESTS[connection.dialect.name],
            [
                {
                    "batch_id": batch_id,
                    "message_id": message_id,
                    "requested_by": batch.requested_by,
                    "requested_at": now,
                    "state": RequestState.QUEUED,
                    "next_attempt_at": now,
                    "attempts": 0,
                }
                for message_id in message_ids
            ],
        )
        queued_ids = set(inserted.scalars())
        fresh = [message_id for message_id in message_ids if message_id in queued_ids]
        skipped = [message_id for message_id in message_ids if message_id not in queued_ids]
        active = await self._active_for(connection, skipped)
        if not fresh:
            await connection.execute(_DELETE_BATCH, {"batch_id": batch_id})
            return EnqueueResult(batch_id=None, queued=(), already_active=tuple(active))
        if skipped:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(total=len(fresh), skipped=json.dumps(sorted(skipped)))
            )
        # Alerts about these messages now show who asked for the retry.
        await bump_alerts(
            connection,
            fresh,
            retry_requested_by=batch.requested_by,
            retry_requested_at=now,
            retries=Alert.retries + 1,
            last_outcome=None,
            last_detail=None,
        )
        return EnqueueResult(batch_id=batch_id, queued=tuple(fresh), already_active=tuple(active))

    async def _active_for(self, connection: AsyncConnection, message_ids: Sequence[int]) -> list[ActiveRequest]:
        if not message_ids:
            return []
        rows = await connection.execute(
            select(
                Request.message_id,
                Request.requested_by,
                Request.requested_at,
                Request.batch_id,
                Batch.root_channel,
                Batch.root_ts,
            )
            .join(Batch, Batch.id == Request.batch_id)
            .where(Request.message_id.in_(list(message_ids)), Request.state.in_(RequestState.ACTIVE))
        )
        return [ActiveRequest(*row) for row in rows]

    # -- announcing a batch (its root message) ------------------------------------------------

    async def claim_announcement(self, owner: str, lease_seconds: float) -> BatchView | None:
        """Take one batch whose root message is not posted yet, for `lease_seconds`."""
        now = self.clock()
        async with self.engine.begin() as connection:
            candidate = (
                await connection.execute(
                    select(Batch.id)
                    .where(
                        Batch.announced_at.is_(None),
                        lease_free(Batch.announce_lease_until, now),
                    )
                    .order_by(Batch.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if candidate is None:
                return None
            claimed = await connection.execute(
                update(Batch)
                .where(
                    Batch.id == candidate,
                    Batch.announced_at.is_(None),
                    lease_free(Batch.announce_lease_until, now),
                )
                .values(announce_lease_until=now + lease_seconds)
            )
            if claimed.rowcount != 1:
                return None
            row = (await connection.execute(select(*_BATCH_COLUMNS).where(Batch.id == candidate))).one()
        return _batch_view(row)

    async def mark_announced(
        self, batch_id: int, *, root_channel: str | None, root_ts: str | None, uses_response_url: bool
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    announced_at=self.clock(),
                    root_channel=root_channel,
                    root_ts=root_ts,
                    uses_response_url=uses_response_url,
                )
            )

    # -- working ------------------------------------------------------------------------------

    async def claim_next(self, owner: str, lease_seconds: float) -> RequestView | None:
        """Lease the most overdue request of an announced batch, or one whose holder died."""
        now = self.clock()
        claimable = or_(
            and_(Request.state == RequestState.QUEUED, Request.next_attempt_at <= now),
            and_(Request.state == RequestState.RUNNING, Request.lease_until < now),
        )
        async with self.engine.begin() as connection:
            candidate = (
                await connection.execute(
                    select(Request.id)
                    .join(Batch, Batch.id == Request.batch_id)
                    .where(claimable, Batch.announced_at.is_not(None))
                    .order_by(Request.next_attempt_at, Request.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if candidate is None:
                return None
            # The same condition again: between the SELECT and this UPDATE another worker may have won.
            claimed = await connection.execute(
                update(Request)
                .where(Request.id == candidate, claimable)
                .values(state=RequestState.RUNNING, lease_owner=owner, lease_until=now + lease_seconds)
            )
            if claimed.rowcount != 1:
                return None
            row = (
                await connection.execute(
                    select(*_REQUEST_COLUMNS, Batch.correlation_id)
                    .join(Batch, Batch.id == Request.batch_id)
                    .where(Request.id == candidate)
                )
            ).one()
        return _request_view(row)

    async def renew_lease(self, request_id: int, owner: str, lease_seconds: float) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Request)
                .where(
                    Request.id == request_id,
                    Request.lease_owner == owner,
                    Request.state == RequestState.RUNNING,
                )
                .values(lease_until=self.clock() + lease_seconds)
            )
        return result.rowcount == 1

    async def begin_attempt(self, request_id: int, owner: str, worker: str) -> int | None:
        """Open an attempt, or None if the lease was lost. After this, the request is never sent again."""
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Request)
                .where(
                    Request.id == request_id,
                    Request.lease_owner == owner,
                    Request.state == RequestState.RUNNING,
                    Request.in_flight_since.is_(None),
                )
                .values(
                    in_flight_since=now,
                    attempts=Request.attempts + 1,
                    first_attempt_at=func.coalesce(Request.first_attempt_at, now),
                )
            )
            if result.rowcount != 1:
                return None
            attempt_id: int = (
                await connection.execute(
                    insert(Attempt).values(request_id=request_id, worker=worker, started_at=now).returning(Attempt.id)
                )
            ).scalar_one()
        return attempt_id

    async def record_answer(
        self, request_id: int, attempt_id: int, answer: PartooAnswer, *, retry_at: float | None
    ) -> None:
        """Store Partoo's answer; `retry_at` None makes it the request's final outcome."""
        now = self.clock()
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id)
                .values(
                    finished_at=now,
                    outcome=answer.kind.value,
                    http_status=answer.http_status,
                    detail=answer.detail,
                    latency_ms=answer.latency_ms,
                )
            )
            common = {
                "in_flight_since": None,
                "outcome": answer.kind.value,
                "http_status": answer.http_status,
                "detail": answer.detail,
                "lease_owner": None,
                "lease_until": None,
            }
            if retry_at is None:
                values = {**common, "state": RequestState.DONE, "finished_at": now}
            else:
                values = {**common, "state": RequestState.QUEUED, "next_attempt_at": retry_at}
            await connection.execute(update(Request).where(Request.id == request_id).values(**values))
            if retry_at is None:
                await self._show_outcome_on_alert(connection, request_id, answer.kind, answer.detail)

    async def finish_without_call(self, request_id: int, owner: str, outcome: OutcomeKind, detail: str) -> bool:
        """Close a leased request without calling Partoo (e.g. a dead worker's call in flight)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Request)
                .where(Request.id == request_id, Request.lease_owner == owner)
                .values(
                    state=RequestState.DONE,
                    outcome=outcome.value,
                    detail=detail,
                    finished_at=now,
                    in_flight_since=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            await connection.execute(
                update(Attempt)
                .where(Attempt.request_id == request_id, Attempt.finished_at.is_(None))
                .values(finished_at=now, outcome=outcome.value, detail=detail)
            )
            if result.rowcount == 1:
                await self._show_outcome_on_alert(connection, request_id, outcome, detail)
        return result.rowcount == 1

    async def _show_outcome_on_alert(
        self, connection: AsyncConnection, request_id: int, outcome: OutcomeKind, detail: str
    ) -> None:
        message_id = (await connection.execute(select(Request.message_id).where(Request.id == request_id))).scalar_one()
        await bump_alerts(connection, [message_id], last_outcome=outcome.value, last_detail=detail or None)

    async def release(self, request_id: int, owner: str) -> None:
        """Give back a leased request that was not sent, so any worker can take it at once."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Request)
                .where(
                    Request.id == request_id,
                    Request.lease_owner == owner,
                    Request.state == RequestState.RUNNING,
                    Request.in_flight_since.is_(None),
                )
                .values(state=RequestState.QUEUED, lease_owner=None, lease_until=None)
            )

    # -- telling people -----------------------------------------------------------------------

    async def claim_report(self, request_id: int, lease_seconds: float) -> bool:
        """Take the job of posting a finished request's outcome (one replica, one post)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Request)
                .where(
                    Request.id == request_id,
                    Request.state == RequestState.DONE,
                    Request.reported_at.is_(None),
                    lease_free(Request.report_lease_until, now),
                )
                .values(report_lease_until=now + lease_seconds)
            )
        return result.rowcount == 1

    async def retry_report_in(self, request_id: int, seconds: float) -> None:
        """Slack was unavailable: let any replica try to post this outcome again after `seconds`."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Request).where(Request.id == request_id).values(report_lease_until=self.clock() + seconds)
            )

    async def retry_summary_in(self, batch_id: int, seconds: float) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(summary_lease_until=self.clock() + seconds)
            )

    async def mark_reported(self, request_ids: Sequence[int]) -> None:
        if not request_ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Request).where(Request.id.in_(list(request_ids))).values(reported_at=self.clock())
            )

    async def unreported(self, *, older_than: float = 0.0, limit: int = 50) -> list[RequestView]:
        """Finished one-message requests whose outcome is not posted yet (just done, or Slack was down).

        Requests of many-message batches are reported together by the batch summary instead.
        """
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_REQUEST_COLUMNS)
                .join(Batch, Batch.id == Request.batch_id)
                .where(
                    Batch.total == 1,
                    Request.state == RequestState.DONE,
                    Request.reported_at.is_(None),
                    Request.finished_at < now - older_than,
                    lease_free(Request.report_lease_until, now),
                )
                .order_by(Request.id)
                .limit(limit)
            )
            return [_request_view(row) for row in rows]

    async def batch(self, batch_id: int) -> BatchView:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(*_BATCH_COLUMNS).where(Batch.id == batch_id))).one()
        return _batch_view(row)

    async def batch_requests(self, batch_id: int) -> list[RequestView]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_REQUEST_COLUMNS).where(Request.batch_id == batch_id).order_by(Request.id)
            )
            return [_request_view(row) for row in rows]

    async def open_batches(self, *, limit: int = 50) -> list[BatchView]:
        """Announced batches of several requests whose summary is not posted yet."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_BATCH_COLUMNS)
                .where(Batch.announced_at.is_not(None), Batch.summarized_at.is_(None), Batch.total > 1)
                .order_by(Batch.id)
                .limit(limit)
            )
            return [_batch_view(row) for row in rows]

    async def note_progress(self, batch_id: int, done: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(progress_shown=done, progress_shown_at=self.clock())
            )

    async def claim_summary(self, batch_id: int, lease_seconds: float) -> bool:
        now = self.clock()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(Batch)
                .where(
                    Batch.id == batch_id,
                    Batch.summarized_at.is_(None),
                    lease_free(Batch.summary_lease_until, now),
                )
                .values(summary_lease_until=now + lease_seconds)
            )
        return result.rowcount == 1

    async def mark_summarized(self, batch_id: int) -> None:
        now = self.clock()
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Batch).where(Batch.id == batch_id).values(summarized_at=now, finished_at=now)
            )

    async def claim_log_lines(self, *, limit: int = 40) -> list[RequestView]:
        """Take finished requests not yet mirrored to the log channel (marked as taken at once)."""
        now = self.clock()
        try:
            return await self._claim_log_lines_once(now, limit)
        except _ContendedError:
            return []

    async def _claim_log_lines_once(self, now: float, limit: int) -> list[RequestView]:
        async with self.engine.begin() as connection:
            rows = list(
                await connection.execute(
                    select(*_REQUEST_COLUMNS)
                    .where(Request.state == RequestState.DONE, Request.logged_at.is_(None))
                    .order_by(Request.finished_at, Request.id)
                    .limit(limit)
                )
            )
            ids = [row.id for row in rows]
            if not ids:
                return []
            result = await connection.execute(
                update(Request).where(Request.id.in_(ids), Request.logged_at.is_(None)).values(logged_at=now)
            )
            if result.rowcount != len(ids):
                # Another replica took some of them in between; let it post this round.
                raise _ContendedError
        return [_request_view(row) for row in rows]

    # -- the log ------------------------------------------------------------------------------

    async def history(self, message_id: int) -> list[tuple[RequestView, BatchView, list[AttemptView]]]:
        """Every request for one Partoo message, oldest first, with its batch and attempts."""
        async with self.engine.connect() as connection:
            request_rows = list(
                await connection.execute(
                    select(*_REQUEST_COLUMNS)
                    .where(Request.message_id == message_id)
                    .order_by(Request.requested_at, Request.id)
                )
            )
            history: list[tuple[RequestView, BatchView, list[AttemptView]]] = []
            for row in request_rows:
                request = _request_view(row)
                batch_row = (
                    await connection.execute(select(*_BATCH_COLUMNS).where(Batch.id == request.batch_id))
                ).one()
                attempt_rows = await connection.execute(
                    select(
                        Attempt.request_id,
                        Attempt.started_at,
                        Attempt.finished_at,
                        Attempt.outcome,
                        Attempt.http_status,
                        Attempt.detail,
                        Attempt.latency_ms,
                    )
                    .where(Attempt.request_id == request.id)
                    .order_by(Attempt.id)
                )
                attempts = [
                    AttemptView(
                        request_id=a.request_id,
                        started_at=a.started_at,
                        finished_at=a.finished_at,
                        outcome=OutcomeKind(a.outcome) if a.outcome else None,
                        http_status=a.http_status,
                        detail=a.detail,
                        latency_ms=a.latency_ms,
                    )
                    for a in attempt_rows
                ]
                history.append((request, _batch_view(batch_row), attempts))
        return history

    async def recent(self, limit: int) -> list[RequestView]:
        """The latest requests, newest first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(*_REQUEST_COLUMNS).order_by(Request.requested_at.desc(), Request.id.desc()).limit(limit)
            )
            return [_request_view(row) for row in rows]

    async def since(self, since: float) -> list[tuple[RequestView, BatchView]]:
        """Every request made since a time with its batch, oldest first (for exports)."""
        async with self.engine.connect() as connection:
            rows = list(
                await connection.execute(
                    select(*_REQUEST_COLUMNS).where(Request.requested_at >= since).order_by(Request.id)
                )
            )
            batch_ids = sorted({row.batch_id for row in rows})
            batches: dict[int, BatchView] = {}
            for start in range(0, len(batch_ids), 500):
                chunk = batch_ids[start : start + 500]
                for batch_row in await connection.execute(select(*_BATCH_COLUMNS).where(Batch.id.in_(chunk))):
                    batches[batch_row.id] = _batch_view(batch_row)
        return [(_request_view(row), batches[row.batch_id]) for row in rows]

    async def outcome_counts(self, since: float) -> dict[str, int]:
        """How many requests made since a time ended in each outcome ('queued' for unfinished ones)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(func.coalesce(Request.outcome, Request.state), func.count())
                .where(Request.requested_at >= since)
                .group_by(func.coalesce(Request.outcome, Request.state))
            )
            return {str(key): int(count) for key, count in rows}

    async def queue_depth(self) -> int:
        async with self.engine.connect() as connection:
            return int(
                (
                    await connection.execute(select(func.count()).where(Request.state.in_(RequestState.ACTIVE)))
                ).scalar_one()
            )


class _ContendedError(Exception):
    """Rolls back a claim that another replica partly won."""

"""The worker's statements on the retry queue, built once (plain Core, bound parameters; bot.retries.store).

Every retry runs each of them, and SQLAlchemy spent more building a statement and its cache key per call than
running it, as the alerter did before bot/alerts/applying.py. Parameter names are not column names: SQLAlchemy
reserves those for the values of an UPDATE.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, update

from bot.platform.leases import LeaseColumns
from bot.platform.models import Attempt, Batch, Request, RequestState, core_table
from bot.retries.request_rows import REQUEST_COLUMNS

_requests = core_table(Request)
_batches = core_table(Batch)
_attempts = core_table(Attempt)
# The worker's lease on a request, the one primitive of bot.platform.leases: claimed with one more on the
# fencing token, renewed and given back with it, every write about the request fenced by it.
_LEASE = LeaseColumns(_requests, until="lease_until", fence="lease_token")

_CLAIMABLE = or_(
    and_(_requests.c.state == RequestState.QUEUED, _requests.c.next_attempt_at <= bindparam("now")),
    and_(_requests.c.state == RequestState.RUNNING, _LEASE.free(bindparam("now"))),
)
NEXT_CLAIMABLE = (
    select(_requests.c.id)
    .join(_batches, _batches.c.id == _requests.c.batch_id)
    .where(_CLAIMABLE, _batches.c.announced_at.is_not(None))
    .order_by(_requests.c.next_attempt_at, _requests.c.id)
    .limit(1)
)
# The same condition again: between the SELECT and this UPDATE another worker may have won.
CLAIM = (
    update(_requests)
    .where(_requests.c.id == bindparam("request_id"), _CLAIMABLE)
    .values(
        state=RequestState.RUNNING,
        lease_owner=bindparam("owner"),
        **_LEASE.taking(bindparam("until")),
    )
)
CLAIMED = (
    select(*REQUEST_COLUMNS, _batches.c.correlation_id, _batches.c.retry_anyway)
    .join(_batches, _batches.c.id == _requests.c.batch_id)
    .where(_requests.c.id == bindparam("request_id"))
)
# The fence of every worker write: the request is still running under this very claim.
_LEASED = (_LEASE.held_by(bindparam("request_id"), bindparam("token")), _requests.c.state == RequestState.RUNNING)
RENEW = update(_requests).where(*_LEASED).values(lease_until=bindparam("until"))
BEGIN_ATTEMPT = (
    update(_requests)
    .where(*_LEASED, _requests.c.in_flight_since.is_(None))
    .values(
        in_flight_since=bindparam("now"),
        attempts=_requests.c.attempts + 1,
        first_attempt_at=func.coalesce(_requests.c.first_attempt_at, bindparam("now")),
    )
    .returning(_requests.c.message_id)
)
OPEN_ATTEMPT = insert(_attempts).returning(_attempts.c.id)
# BEGIN_ATTEMPT undone, before any call was made (the worker's slot passed while the attempt was being opened).
WITHDRAW_ATTEMPT = (
    update(_requests)
    .where(*_LEASED, _requests.c.in_flight_since.is_not(None))
    .values(
        in_flight_since=None,
        attempts=_requests.c.attempts - 1,
        first_attempt_at=case((_requests.c.attempts == 1, None), else_=_requests.c.first_attempt_at),
    )
    .returning(_requests.c.message_id)
)
DROP_UNCALLED_ATTEMPT = delete(_attempts).where(
    _attempts.c.id == bindparam("attempt_id"), _attempts.c.finished_at.is_(None)
)
_ANSWERED: dict[str, Any] = {
    "in_flight_since": None,
    "outcome": bindparam("answer"),
    "http_status": bindparam("status"),
    "detail": bindparam("said"),
    "lease_owner": None,
    "lease_until": None,
}
RECORD_FINAL_ANSWER, RECORD_ANSWER_AND_REQUEUE = (
    update(_requests)
    .where(*_LEASED, _requests.c.in_flight_since.is_not(None))
    .values(**_ANSWERED, **values)
    .returning(_requests.c.message_id)
    for values in (
        {"state": RequestState.DONE, "finished_at": bindparam("now")},
        {"state": RequestState.QUEUED, "next_attempt_at": bindparam("retry_at")},
    )
)
CLOSE_ATTEMPT = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("attempt_id"))
    .values(
        finished_at=bindparam("now"),
        outcome=bindparam("answer"),
        http_status=bindparam("status"),
        detail=bindparam("said"),
        latency_ms=bindparam("latency"),
    )
)
CLOSE_SENT, CLOSE_UNSENT = (
    update(_requests)
    .where(*_LEASED, started)
    .values(
        state=RequestState.DONE,
        outcome=bindparam("answer"),
        detail=bindparam("said"),
        finished_at=bindparam("now"),
        in_flight_since=None,
        lease_owner=None,
        lease_until=None,
    )
    for started in (_requests.c.in_flight_since.is_not(None), _requests.c.in_flight_since.is_(None))
)
RELEASE = (
    update(_requests)
    .where(*_LEASED, _requests.c.in_flight_since.is_(None))
    .values(state=RequestState.QUEUED, lease_owner=None, lease_until=None)
)

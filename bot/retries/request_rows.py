"""Rows of the retry log as the domain's plain values (bot.domain.retry_requests), and the columns they need.

Shared by the queue (bot.retries.store), the notifier's claims (bot.retries.report_claims) and the log's
reads (bot.retries.retry_log).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.models import Batch, Request


def batch_view(row: Row[Any]) -> BatchView:
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
        thread_ts=row.thread_ts,
        plan_filter=row.plan_filter,
        plan_changed=row.plan_changed or 0,
        retry_anyway=bool(row.retry_anyway),
    )


def request_view(row: Row[Any] | Any) -> RequestView:
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
        lease_token=getattr(row, "lease_token", 0),
        retry_anyway=bool(getattr(row, "retry_anyway", False)),
        delivery=getattr(row, "delivery", None),
    )


BATCH_COLUMNS = list(Batch.__table__.columns)
REQUEST_COLUMNS = list(Request.__table__.columns)

"""What the retry log holds, as plain values: who asked to retry what, and what each attempt got.

Stores return these; message builders, the service and the export read them. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.outcomes import OutcomeKind


@dataclass(frozen=True)
class NewBatch:
    """Who asks, from where, and where the answers may go."""

    source: str
    requested_by: str
    channel_id: str
    correlation_id: str
    response_url: str | None = None
    # For a click on an alert the root message already exists: answers go to its thread.
    root_channel: str | None = None
    root_ts: str | None = None
    alert_message_id: int | None = None
    digest_id: int | None = None
    # For a click: the alert's retry count the user saw. If it changed meanwhile, someone else retried.
    expected_alert_retries: int | None = None


@dataclass(frozen=True)
class ActiveRequest:
    """A request already queued or running for a message: the reason a new one is not created."""

    message_id: int
    requested_by: str
    requested_at: float
    batch_id: int
    root_channel: str | None
    root_ts: str | None


@dataclass(frozen=True)
class EnqueueResult:
    batch_id: int | None
    queued: tuple[int, ...]
    already_active: tuple[ActiveRequest, ...]
    # True when the click was made on an alert that someone retried since it was rendered.
    alert_changed: bool = False


@dataclass(frozen=True)
class BatchView:
    id: int
    source: str
    requested_by: str
    channel_id: str
    response_url: str | None
    total: int
    skipped: tuple[int, ...]
    created_at: float
    correlation_id: str
    root_channel: str | None
    root_ts: str | None
    uses_response_url: bool
    alert_message_id: int | None
    digest_id: int | None
    progress_shown: int
    progress_shown_at: float | None
    finished_at: float | None
    summarized_at: float | None


@dataclass(frozen=True)
class RequestView:
    id: int
    batch_id: int
    message_id: int
    requested_by: str
    requested_at: float
    state: str
    attempts: int
    first_attempt_at: float | None
    in_flight_since: float | None
    outcome: OutcomeKind | None
    http_status: int | None
    detail: str | None
    finished_at: float | None
    correlation_id: str | None = None
    # The fencing token of the lease this view was claimed with (see RetryQueue.claim_next).
    lease_token: int = 0


@dataclass(frozen=True)
class AttemptView:
    request_id: int
    started_at: float
    finished_at: float | None
    outcome: OutcomeKind | None
    http_status: int | None
    detail: str | None
    latency_ms: float | None

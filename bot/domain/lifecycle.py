"""A failed message's life: its states and the transitions between them (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.domain.message import MessageUpdate
from bot.domain.outcomes import OutcomeKind
from bot.domain.verdict import Verdict

MAX_RETRIES = 5


@dataclass(frozen=True)
class AlertState:
    """Everything one alert shows: the failure and where its retries stand.

    The caller updates it as events arrive: a repeat Failed report increments `failures` and sets
    `failed_again_at`; a retry request sets `retry_requested_by/_at`, increments `retries` and clears
    `last_outcome`/`last_detail`; Partoo's answer sets `last_outcome`/`last_detail`; a Success report sets
    `delivered_at`. A retry is in progress while it was requested after the latest Failed report.
    """

    failure: MessageUpdate
    failed_at: float
    failures: int
    retry_requested_by: str | None
    retry_requested_at: float | None
    retries: int
    last_outcome: OutcomeKind | None
    last_detail: str | None
    delivered_at: float | None
    max_retries: int = MAX_RETRIES
    failed_again_at: float | None = None
    # The latest check of the conversation (None: not checked yet, or checks are off).
    verdict: Verdict | None = None
    # Whether a check is expected (checks on) while `verdict` is None: the alert then says it is checking.
    check_pending: bool = False
    # Set when the latest accepted retry got neither Success nor Failed within `not_confirmed_minutes`.
    # The lifecycle has no NotConfirmed event yet: this field stands in for it (a late webhook still wins).
    not_confirmed_at: float | None = None
    not_confirmed_minutes: int | None = None

    @property
    def latest_failure_at(self) -> float:
        """When the latest Failed report arrived."""
        return self.failed_at if self.failed_again_at is None else max(self.failed_at, self.failed_again_at)

    @property
    def retry_in_progress(self) -> bool:
        """Whether the current retry was requested after the latest failure (so its outcome is pending)."""
        return self.retry_requested_at is not None and self.retry_requested_at >= self.latest_failure_at

    @property
    def can_retry(self) -> bool:
        return self.retries < self.max_retries


@dataclass(frozen=True)
class DigestState:
    """Many failures grouped in one message, with the progress of its "Retry all"."""

    digest_id: int
    failures: Sequence[MessageUpdate]
    first_at: float
    retry_requested_by: str | None
    requested: int = 0
    accepted: int = 0
    refused: int = 0
    delivered: int = 0
    failed_again: int = 0
    # Requests of the Retry all that the conversation check kept from being sent (counted apart from refused).
    skipped: int = 0
    # The latest verdict on each failure's conversation, by message id (missing: not checked).
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)


# What became of a message after a retry, as the alert row records it.
DELIVERED = "delivered"
FAILED_AGAIN = "failed_again"

"""What the retry log holds, as plain values: who asked to retry what, and what each attempt got.

Stores return these; message builders, the service and the export read them. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.domain.admission import Refused, Surface
from bot.domain.lifecycle import AlertState
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
    # For a message shortcut: the thread (of `channel_id`) that the root message and the outcomes go to.
    thread_ts: str | None = None
    # "Retry anyway": send even if the conversation check says the retry cannot succeed.
    retry_anyway: bool = False
    # One message asked for outside any thread: report into its alert's thread if the bot posted one (looked up
    # in the transaction that queues the request, bot.retries.store).
    report_into_alert: bool = False
    # Retry from a plan (`/partoo-retry failed …`): its ids are read, and the plan taken, in the transaction
    # that queues them (bot.retries.plan_store).
    plan_id: int | None = None

    @property
    def surface(self) -> Surface:
        """Which way in this ask came by, for admission (a digest's Retry all is a button with a digest)."""
        if self.digest_id is not None:
            return Surface.RETRY_ALL
        return Surface(self.source) if self.source in tuple(Surface) else Surface.COMMAND

    def in_alert_thread(self, channel_id: str, ts: str, message_id: int) -> NewBatch:
        """This ask answering in its message's alert thread, where it may: it names no thread, or names this
        one (a message shortcut on the alert itself); otherwise unchanged."""
        if self.thread_ts is not None and (self.channel_id, self.thread_ts) != (channel_id, ts):
            return self
        return replace(self, root_channel=channel_id, root_ts=ts, alert_message_id=message_id, thread_ts=None)


@dataclass(frozen=True)
class MessageRefusal:
    """A message admission refused to retry (bot.domain.admission), and why."""

    message_id: int
    refused: Refused


@dataclass(frozen=True)
class EnqueueResult:
    batch_id: int | None
    queued: tuple[int, ...]
    refused: tuple[MessageRefusal, ...]
    # A digest's Retry all that someone already clicked: who (nothing was queued).
    digest_retried_by: str | None = None
    # A plan's button on a plan that expired, was cancelled, or was already used (nothing was queued).
    plan_gone: bool = False


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
    thread_ts: str | None = None
    # A plan's batch: the plan's filter in words, and how many of the plan's messages changed before Retry.
    plan_filter: str | None = None
    plan_changed: int = 0
    retry_anyway: bool = False

    @property
    def is_bulk(self) -> bool:
        """Many messages under one progress message that carries Stop (a plan's Retry, a command's list).

        Its root message is the only way to stop it, so it is posted before any of its retries is sent
        (bot.retries.notifier.Notifier.announce); a one-message batch never waits for Slack.
        """
        return self.total > 1


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
    # "Retry anyway" (from the batch): the worker sends it without checking the conversation.
    retry_anyway: bool = False
    # What Partoo reported of the retry afterwards ("delivered", "failed"), when it has.
    delivery: str | None = None


@dataclass(frozen=True)
class AttemptView:
    request_id: int
    started_at: float
    finished_at: float | None
    outcome: OutcomeKind | None
    http_status: int | None
    detail: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class KnownMessage:
    """What the bot knows of one Partoo message: its alert (if Partoo reported it failed) and its latest retry."""

    message_id: int
    alert: AlertState | None = None
    latest: RequestView | None = None

    @property
    def being_retried(self) -> bool:
        return self.latest is not None and self.latest.finished_at is None

    @property
    def waiting_for_delivery(self) -> bool:
        """A retry Partoo accepted after the latest failure: its delivery report has not come yet."""
        alert = self.alert
        return alert is not None and alert.retry_in_progress and alert.last_outcome in (None, OutcomeKind.ACCEPTED)

    @property
    def retryable(self) -> bool:
        """Whether asking again makes sense: no retry under way, not delivered, retries left."""
        if self.being_retried:
            return False
        if self.alert is None:
            return True
        return self.alert.delivered_at is None and self.alert.can_retry and not self.waiting_for_delivery

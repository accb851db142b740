"""The tables. Times are UNIX seconds (float) so SQLite and PostgreSQL compare them the same way.

A *batch* is one act of asking: a `/partoo-retry` command or a click. It owns where the answers go
(its root message and thread, or the command's response_url). A *request* is one Partoo message to
retry inside a batch; an *attempt* is one HTTP call to Partoo for a request.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints keep migrations reproducible across backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def core_table(model: type[Base]) -> Table:
    """A model's table as plain Core sees it, typed as a Table (which `Model.__table__` is not).

    For the hot paths' statements, built once with bound parameters instead of through the ORM.
    """
    return Base.metadata.tables[model.__tablename__]


class RequestState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ACTIVE = (QUEUED, RUNNING)


class Batch(Base):
    __tablename__ = "retry_batches"
    __table_args__ = (Index("ix_retry_batches_created_at", "created_at"),)  # retention

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # "command" or "button"
    requested_by: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    response_url: Mapped[str | None] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[str] = mapped_column(Text, default="")  # JSON: ids already being retried elsewhere
    created_at: Mapped[float] = mapped_column(Double)
    correlation_id: Mapped[str] = mapped_column(String(32))
    # Where the answers go. Set when the root message is posted (or given, for an alert's thread).
    root_channel: Mapped[str | None] = mapped_column(String(32))
    root_ts: Mapped[str | None] = mapped_column(String(32))
    # Set for a message shortcut: the root message is posted as a reply in this thread of root_channel's
    # channel (the message the shortcut was used on), and the outcomes follow it there.
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    # announced_at: the root message exists, or the bot fell back to response_url; requests may run.
    announced_at: Mapped[float | None] = mapped_column(Double)
    announce_lease_until: Mapped[float | None] = mapped_column(Double)
    # Fencing tokens of the notifier's leases (bot.platform.leases): one more per claim.
    announce_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    uses_response_url: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when the answers go to an alert (a Retry click, or a command for an alerted message) or to a
    # digest (Retry all): then the alert or digest is re-rendered instead of a command's root message.
    alert_message_id: Mapped[int | None] = mapped_column(BigInteger)
    digest_id: Mapped[int | None] = mapped_column(Integer)
    progress_shown: Mapped[int] = mapped_column(Integer, default=0)
    progress_shown_at: Mapped[float | None] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    summary_lease_until: Mapped[float | None] = mapped_column(Double)
    summary_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    summarized_at: Mapped[float | None] = mapped_column(Double)
    # "Retry anyway": sent even when the conversation check says it cannot succeed.
    retry_anyway: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A plan's batch (`/partoo-retry failed …`): the plan's filter in words, and how many of the plan's
    # messages admission refused at Retry (they changed since the plan). NULL for every other batch.
    plan_filter: Mapped[str | None] = mapped_column(Text)
    plan_changed: Mapped[int | None] = mapped_column(Integer)


class Request(Base):
    __tablename__ = "retry_requests"
    __table_args__ = (
        # The heart of "never twice": one queued or running request per Partoo message, whoever asks,
        # from whichever replica. A second INSERT for the same message fails here, atomically.
        Index(
            "uq_retry_requests_active_message",
            "message_id",
            unique=True,
            sqlite_where=text("state IN ('queued', 'running')"),
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
        Index("ix_retry_requests_due", "state", "next_attempt_at"),
        Index("ix_retry_requests_message", "message_id", "requested_at"),
        Index("ix_retry_requests_finished", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("retry_batches.id"), index=True)
    message_id: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), default=RequestState.QUEUED)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Double)
    # The fencing token: every claim adds one, and every write a worker makes about the request names the
    # token it claimed with. A worker whose lease was taken over can no longer change the request.
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set in the same transaction that opens an attempt and cleared when Partoo's answer is recorded.
    # A request found with it set after a crash may have reached Partoo: it is never sent again.
    in_flight_since: Mapped[float | None] = mapped_column(Double)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str | None] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[float | None] = mapped_column(Double)
    report_lease_until: Mapped[float | None] = mapped_column(Double)
    report_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reported_at: Mapped[float | None] = mapped_column(Double)
    # Set only once Slack accepted the log channel's post; leased (and fenced) while it is being posted.
    logged_at: Mapped[float | None] = mapped_column(Double)
    log_lease_until: Mapped[float | None] = mapped_column(Double)
    log_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What Partoo's webhooks said after an accepted retry: "delivered" or "failed_again".
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_at: Mapped[float | None] = mapped_column(Double)
    # Set once an accepted retry has waited NOT_CONFIRMED_MINUTES with no delivery report (and told so).
    not_confirmed_at: Mapped[float | None] = mapped_column(Double)


class Attempt(Base):
    __tablename__ = "retry_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("retry_requests.id"), index=True)
    worker: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str | None] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Double)


class Pace(Base):
    """The Partoo call budget shared by every replica: the next free call slot and any 429 pause."""

    __tablename__ = "partoo_pace"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot_at: Mapped[float] = mapped_column(Double, default=0.0)
    paused_until: Mapped[float] = mapped_column(Double, default=0.0)


class WebhookEvent(Base):
    """A verified Partoo webhook delivery, stored before it is answered so that nothing is lost."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_pending", "processed_at", "id"),
        # An event waits for an earlier one of its message (bot.alerts.store): found by message, not by scan.
        Index("ix_webhook_events_message", "message_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Partoo redelivers the same content on 5xx: the unique key turns a redelivery into a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[float] = mapped_column(Double)
    type: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    # How many retry calls had been made for the message when the event arrived. Part of the dedupe key: an
    # identical body after a call is a new failure, not a redelivery (Partoo's bodies carry no event id).
    retry_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    processed_at: Mapped[float | None] = mapped_column(Double)
    lease_until: Mapped[float | None] = mapped_column(Double)


class Alert(Base):
    """One failed Partoo message and its Slack alert; repeated failures update it rather than add one."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_unposted", "posted_version", "version"),
        Index("ix_alerts_failed_at", "failed_at"),  # retention
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("alert_digests.id"), index=True)
    failure: Mapped[str] = mapped_column(Text)  # JSON of the MessageUpdate, as Partoo described it
    failed_at: Mapped[float] = mapped_column(Double)
    failed_again_at: Mapped[float | None] = mapped_column(Double)
    failures: Mapped[int] = mapped_column(Integer, default=1)
    retry_requested_by: Mapped[str | None] = mapped_column(String(32))
    retry_requested_at: Mapped[float | None] = mapped_column(Double)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_detail: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[float | None] = mapped_column(Double)
    # The lifecycle phase (bot.domain.lifecycle.Phase) and what it needs beyond the columns above.
    phase: Mapped[str | None] = mapped_column(String(16))
    retry_source: Mapped[str | None] = mapped_column(String(16))
    sending_since: Mapped[float | None] = mapped_column(Double)
    not_confirmed_at: Mapped[float | None] = mapped_column(Double)
    # Every change bumps `version`; the alerter renders until `posted_version` catches up.
    version: Mapped[int] = mapped_column(Integer, default=1)
    posted_version: Mapped[int] = mapped_column(Integer, default=0)
    post_lease_until: Mapped[float | None] = mapped_column(Double)
    # Fencing token of the post claim, and Slack's error when this message cannot be posted there.
    post_claim: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    post_error: Mapped[str | None] = mapped_column(String(64))
    # The latest verdict on the message's conversation (JSON, bot.failures.diagnosis_store), and who checks it.
    verdict: Mapped[str | None] = mapped_column(Text)
    check_lease_until: Mapped[float | None] = mapped_column(Double)
    check_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The silence that held this alert back (not posted); its end-of-silence digest lists it.
    silence_id: Mapped[int | None] = mapped_column(Integer, index=True)


class ConversationCheck(Base):
    """A verdict cached for a short while, shared by every replica.

    `scope` is `conversation:<id>`, or `channel:<business>:<partner>` for setup problems, which belong to a
    business's channel rather than to one conversation: a flood from one business then costs one check.
    """

    __tablename__ = "conversation_checks"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    verdict: Mapped[str] = mapped_column(Text)
    checked_at: Mapped[float] = mapped_column(Double, index=True)


class Digest(Base):
    """Many failures that arrived close together, shown as one message with a "Retry all" button."""

    __tablename__ = "alert_digests"
    __table_args__ = (Index("ix_alert_digests_created_at", "created_at"),)  # retention

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Double)
    retry_requested_by: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    posted_version: Mapped[int] = mapped_column(Integer, default=0)
    posted_at: Mapped[float | None] = mapped_column(Double)
    post_lease_until: Mapped[float | None] = mapped_column(Double)
    post_claim: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    post_error: Mapped[str | None] = mapped_column(String(64))
    # Set on the digest(s) (one a channel) that sum up what a silence held back, when it ended.
    silence_id: Mapped[int | None] = mapped_column(Integer)


class Silence(Base):
    """Failures of a business, partner or cause not posted one by one until a time (bot.domain.silences)."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_open", "summarized_at", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))
    until: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Double)
    note: Mapped[str | None] = mapped_column(Text)
    # The alert it was silenced from, re-rendered when the silence starts and ends.
    origin_message_id: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[float | None] = mapped_column(Double)
    ended_by: Mapped[str | None] = mapped_column(String(32))
    # Set, once across replicas, by the transaction that groups the held alerts into the summary digest.
    summarized_at: Mapped[float | None] = mapped_column(Double)


class WebhookIntake(Base):
    """Signed Partoo deliveries counted per minute, for webhook health (the last hour is kept)."""

    __tablename__ = "webhook_intake"

    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # UNIX time // 60
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[float] = mapped_column(Double)


class WebhookWatch(Base):
    """One row: when the last delivery arrived, and the silence warning's state, shared by every replica."""

    __tablename__ = "webhook_watch"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    watch_started_at: Mapped[float] = mapped_column(Double)
    last_delivery_at: Mapped[float | None] = mapped_column(Double)
    # Set while the silence warning stands; cleared when deliveries come back.
    silent_since: Mapped[float | None] = mapped_column(Double)
    # The notice waiting to be posted ("silent" or "back"), claimed with a lease like an alert.
    notice_due: Mapped[str | None] = mapped_column(String(16))
    notice_lease_until: Mapped[float | None] = mapped_column(Double)
    notice_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoopLease(Base):
    """A job one replica does for all at a time (retention's pass), leased through bot.platform.leases."""

    __tablename__ = "loop_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    lease_until: Mapped[float | None] = mapped_column(Double)
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WeeklyReport(Base):
    """One occurrence of the weekly report: claimed with a lease and posted once, whichever replica gets there.

    The occurrence that was already due when the bot first ran is recorded as `skipped`: a new install (or
    an upgrade) starts with the next one instead of posting a report at once.
    """

    __tablename__ = "weekly_reports"

    # The occurrence's due time, UNIX seconds (whole: schedules are to the minute).
    due_at: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    channel_id: Mapped[str] = mapped_column(String(32))
    claim: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_until: Mapped[float | None] = mapped_column(Double)
    posted_at: Mapped[float | None] = mapped_column(Double)
    ts: Mapped[str | None] = mapped_column(String(32))
    skipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class BusinessName(Base):
    """What Partoo last called a business, learned from conversation checks and shared by every replica.

    Apart from the verdict cache, whose rows last a day: names are shown for as long as failures are
    (a week's report, App Home), and there is one row a business however many conversations it has.
    """

    __tablename__ = "businesses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Partoo's id as text (int or 24 hex)
    name: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    seen_at: Mapped[float] = mapped_column(Double)


class PlanState:
    OPEN = "open"
    RETRIED = "retried"
    CANCELLED = "cancelled"


class BulkPlan(Base):
    """What `/partoo-retry failed …` showed one person: its buttons carry only this row's id.

    The ids are stored when the plan is made, so Retry sends what the person saw (less what changed since,
    which admission refuses in the transaction that queues); the plan is taken by one conditional UPDATE
    in that same transaction, so it runs once however often its button is clicked.
    """

    __tablename__ = "bulk_plans"
    __table_args__ = (Index("ix_bulk_plans_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requested_by: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    filter_text: Mapped[str] = mapped_column(Text)
    message_ids: Mapped[str] = mapped_column(Text)  # JSON: the ids that can be retried, as the plan showed them
    anyway_ids: Mapped[str] = mapped_column(Text)  # JSON: closed or setup problem (the confirmed anyway step)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), default=PlanState.OPEN)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    anyway_requested_by: Mapped[str | None] = mapped_column(String(32))
    anyway_batch_id: Mapped[int | None] = mapped_column(Integer)

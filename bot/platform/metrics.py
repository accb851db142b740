"""Prometheus metrics: what an operator graphs and alerts on, exposed at /metrics.

Each Metrics owns its CollectorRegistry instead of using prometheus_client's global one: a process runs
one bot, but tests build many, and the global registry refuses a second metric with the same name.
Label values come from small fixed sets (outcomes, verdicts, Slack error codes, HTTP statuses), never
from ids or user input, so the number of series stays bounded.
"""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.domain.outcomes import OutcomeKind

WebhookVerdict = Literal["stored", "duplicate", "ignored", "tryout", "bad_signature", "bad_payload", "too_large"]
AlertKind = Literal["alert", "digest", "update"]
WEBHOOK_VERDICTS: tuple[WebhookVerdict, ...] = get_args(WebhookVerdict)
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)

# Partoo answers in tens of milliseconds to seconds; the client gives up after 15 s (read timeout).
PARTOO_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
# Prometheus servers of every version read the 0.0.4 text format, and our names need nothing newer;
# recent prometheus_client versions label their output 1.0.0 by default, which older servers do not know.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The bot's metrics, in a registry of their own; `render()` is what GET /metrics answers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # prometheus_client appends `_total` to counters; the names below are the exposed names without it.
        self.retries_total = Counter(
            "retries", "Retry requests finished, by outcome.", ["outcome"], registry=self.registry
        )
        self.partoo_request_seconds = Histogram(
            "partoo_request_seconds",
            "Duration of calls to Partoo's retry endpoint, answered or not.",
            buckets=PARTOO_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.partoo_responses_total = Counter(
            "partoo_responses",
            "Answers from Partoo's retry endpoint, by HTTP status (or timeout / connection_error).",
            ["status"],
            registry=self.registry,
        )
        self.webhook_events_total = Counter(
            "webhook_events",
            "Partoo webhook deliveries, by event type and what the bot did with them.",
            ["type", "verdict"],
            registry=self.registry,
        )
        self.alerts_posted_total = Counter(
            "alerts_posted", "Alert messages posted or updated in Slack, by kind.", ["kind"], registry=self.registry
        )
        self.queue_depth = Gauge("queue_depth", "Retry requests waiting or in progress.", registry=self.registry)
        self.slack_api_errors_total = Counter(
            "slack_api_errors", "Errors from Slack's Web API, by Slack error code.", ["error"], registry=self.registry
        )
        self.conversation_checks_total = Counter(
            "conversation_checks",
            "Calls to Partoo's conversation endpoint made to check a retry, by verdict.",
            ["verdict"],
            registry=self.registry,
        )
        # Series that exist from the start read as 0 rather than "no data", so rate() and alerts work at once.
        for outcome in OutcomeKind:
            self.retries_total.labels(outcome=outcome.value)
        for kind in ALERT_KINDS:
            self.alerts_posted_total.labels(kind=kind)

    def retry_finished(self, outcome: str) -> None:
        self.retries_total.labels(outcome=outcome).inc()

    def conversation_checked(self, verdict: str) -> None:
        self.conversation_checks_total.labels(verdict=verdict).inc()

    def partoo_answered(self, status: int | str, seconds: float) -> None:
        """One call to Partoo: its HTTP status, or "timeout" / "connection_error" when none came back."""
        self.partoo_request_seconds.observe(seconds)
        self.partoo_responses_total.labels(status=str(status)).inc()

    def webhook_event(self, event_type: str, verdict: WebhookVerdict) -> None:
        self.webhook_events_total.labels(type=event_type or "unknown", verdict=verdict).inc()

    def alert_posted(self, kind: AlertKind) -> None:
        self.alerts_posted_total.labels(kind=kind).inc()

    def slack_api_error(self, error: str) -> None:
        self.slack_api_errors_total.labels(error=error).inc()

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE

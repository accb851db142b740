"""Metrics: each bot has its own registry, and /metrics text says what happened."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.domain.outcomes import OutcomeKind
from bot.platform.metrics import ALERT_KINDS, WEBHOOK_VERDICTS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by (name, sorted labels)."""
    body, _ = metrics.render()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_render_returns_the_prometheus_text_format() -> None:
    body, content_type = Metrics().render()
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in (
        "retries_total",
        "partoo_request_seconds",
        "partoo_responses_total",
        "webhook_events_total",
        "alerts_posted_total",
        "queue_depth",
        "slack_api_errors_total",
    ):
        assert f"# TYPE {name} " in text, name


def test_two_bots_in_one_process_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.retry_finished("accepted")
    assert samples(first)[("retries_total", (("outcome", "accepted"),))] == 1
    assert samples(second)[("retries_total", (("outcome", "accepted"),))] == 0
    # Nothing leaks into prometheus_client's global registry either.
    assert REGISTRY.get_sample_value("retries_total", {"outcome": "accepted"}) is None


def test_known_outcomes_and_alert_kinds_start_at_zero() -> None:
    found = samples(Metrics())
    for outcome in OutcomeKind:
        assert found[("retries_total", (("outcome", outcome.value),))] == 0
    for kind in ALERT_KINDS:
        assert found[("alerts_posted_total", (("kind", kind),))] == 0


def test_every_metric_counts_what_it_is_told() -> None:
    metrics = Metrics()
    metrics.retry_finished("accepted")
    metrics.retry_finished("accepted")
    metrics.retry_finished("not_found")
    metrics.partoo_answered(200, 0.07)
    metrics.partoo_answered(429, 0.2)
    metrics.partoo_answered("timeout", 15.0)
    metrics.webhook_event("message_failed", "stored")
    metrics.webhook_event("message_failed", "duplicate")
    metrics.webhook_event("", "bad_payload")
    metrics.alert_posted("digest")
    metrics.slack_api_error("not_in_channel")
    metrics.set_queue_depth(7)

    found = samples(metrics)
    assert found[("retries_total", (("outcome", "accepted"),))] == 2
    assert found[("retries_total", (("outcome", "not_found"),))] == 1
    assert found[("partoo_request_seconds_count", ())] == 3
    assert found[("partoo_request_seconds_sum", ())] == pytest.approx(15.27)
    assert found[("partoo_request_seconds_bucket", (("le", "0.1"),))] == 1
    assert found[("partoo_request_seconds_bucket", (("le", "+Inf"),))] == 3
    for status in ("200", "429", "timeout"):
        assert found[("partoo_responses_total", (("status", status),))] == 1
    assert found[("webhook_events_total", (("type", "message_failed"), ("verdict", "stored")))] == 1
    assert found[("webhook_events_total", (("type", "message_failed"), ("verdict", "duplicate")))] == 1
    assert found[("webhook_events_total", (("type", "unknown"), ("verdict", "bad_payload")))] == 1
    assert found[("alerts_posted_total", (("kind", "digest"),))] == 1
    assert found[("alerts_posted_total", (("kind", "alert"),))] == 0
    assert found[("slack_api_errors_total", (("error", "not_in_channel"),))] == 1
    assert found[("queue_depth", ())] == 7


def test_the_verdicts_are_the_documented_ones() -> None:
    assert set(WEBHOOK_VERDICTS) == {
        "stored",
        "duplicate",
        "ignored",
        "tryout",
        "bad_signature",
        "bad_payload",
        "too_large",
    }

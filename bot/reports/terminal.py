"""The weekly report for people outside Slack: `partoo-retry-bot report` as text or JSON (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.domain.weekly_report import Report
from bot.rendering import mrkdwn


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "start": _iso(report.start),
            "end": _iso(report.end),
            "failures": report.failures,
            "failures_before": report.failures_before,
            "retried": report.retried,
            "retry_requests": report.retry_requests,
            "delivered_after_retry": report.delivered,
            "delivery_rate": report.delivery_rate,
            "median_seconds_to_delivery": report.median_to_delivery,
            "not_retryable": dict(report.not_retryable),
            "top_businesses": dict(report.top_businesses),
            "top_causes": dict(report.top_causes),
            "silences": list(report.silences),
        },
        indent=2,
    )


def as_text(report: Report) -> str:
    rate = "-" if report.delivery_rate is None else f"{report.delivery_rate:.0%}"
    median = "-" if report.median_to_delivery is None else mrkdwn.duration(report.median_to_delivery)
    lines = [
        f"Partoo retries, {_iso(report.start)} to {_iso(report.end)}",
        f"  failed messages        {report.failures:>7,}   (the period before: {report.failures_before:,})",
        f"  retried                {report.retried:>7,}   ({report.retry_requests:,} retries)",
        f"  delivered after retry  {report.delivered:>7,}   ({rate} of retried)",
        f"  median to delivery     {median:>7}",
    ]
    for title, ranked in (
        ("not retryable", report.not_retryable),
        ("most failures", report.top_businesses),
        ("causes", report.top_causes),
    ):
        if ranked:
            lines.append(f"  {title}:")
            lines.extend(f"    {name:<30} {count:>6,}" for name, count in ranked)
    lines.extend(f"  silenced: {silence}" for silence in report.silences)
    return "\n".join(lines)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")

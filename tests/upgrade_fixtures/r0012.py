"""Schema 0012 (2026-12-07): a plan's batch keeps the plan's filter and how many changed since the plan."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0011


def rows(now: float) -> list[Row]:
    return [
        *r0011.rows(now),
        Row(
            "retry_batches",
            "plan_batch",
            {
                "source": "command",
                "requested_by": "U112",
                "channel_id": "C112",
                "response_url": None,
                "total": 2,
                "skipped": "[]",
                "created_at": now - 800.0,
                "correlation_id": "plan-0012",
                "root_channel": "C112",
                "root_ts": "1700000012.000100",
                "announced_at": now - 799.5,
                "announce_lease_until": None,
                "uses_response_url": False,
                "alert_message_id": None,
                "digest_id": None,
                "progress_shown": 2,
                "progress_shown_at": now - 790.0,
                "finished_at": now - 790.0,
                "summary_lease_until": None,
                "summarized_at": now - 789.0,
                "retry_anyway": False,
                "plan_filter": "in the last 1 hour, partner whatsapp",
                "plan_changed": 1,
            },
        ),
    ]

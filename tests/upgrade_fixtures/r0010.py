"""Schema 0010 (2026-12-06): bulk_plans, what `/partoo-retry failed …` showed (one open, one retried)."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0009


def rows(now: float) -> list[Row]:
    plan = {
        "requested_by": "U123",
        "channel_id": "C123",
        "filter_text": "in the last 1 hour, partner whatsapp",
        "anyway_ids": "[]",
    }
    return [
        *r0009.rows(now),
        Row(
            "bulk_plans",
            "open_plan",
            {**plan, "message_ids": "[4567]", "created_at": now - 60.0, "expires_at": now + 540.0, "state": "open"},
        ),
        Row(
            "bulk_plans",
            "retried_plan",
            {**plan, "message_ids": "[4568]", "created_at": now - 900.0, "expires_at": now - 300.0, "state": "retried"},
        ),
    ]

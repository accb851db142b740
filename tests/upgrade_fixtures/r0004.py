"""Schema 0004 (2026-11-28): conversation checks, alert verdicts, "Retry anyway", "not confirmed"."""

from __future__ import annotations

import json

from tests.upgrade_fixtures import Row, r0002, r0003, with_columns
from tests.upgrade_fixtures.r0001 import attempt, finished_request

# A closed conversation's failure, retried anyway from its alert.
RETRIED_ANYWAY = 2011
RETRIED_ANYWAY_TS = "1764100000.000700"


def verdict(kind: str, at: float) -> str:
    """A verdict as the bot stored it on an alert and in the check cache."""
    return json.dumps(
        {
            "kind": kind,
            "checked_at": at,
            "issues": [],
            "expired": kind == "closed",
            "messaging_partner": "Whatsapp",
            "business_id": "42",
            "reason": "",
        }
    )


def rows(now: float) -> list[Row]:
    can_retry = verdict("can_retry", now - 1499.0)
    closed = verdict("closed", now - 999.0)
    earlier = with_columns(
        r0003.rows(now),
        {
            "fresh": {"verdict": can_retry},
            "clicked": {"verdict": can_retry},
            # An accepted retry that waited NOT_CONFIRMED_MINUTES without a delivery report.
            "click_request": {"not_confirmed_at": now - 490.0},
            "click": {"retry_anyway": False},
        },
    )
    alert = r0002.alert_row(
        "retried_anyway",
        RETRIED_ANYWAY,
        RETRIED_ANYWAY_TS,
        now - 1000.0,
        version=3,
        retry_requested_by="U105",
        retry_requested_at=now - 990.0,
        retries=1,
        last_outcome="accepted",
    )
    batch = r0002.batch_row(
        "anyway", "button", "U105", r0002.ALERT_CHANNEL, now - 990.0, 1, alert=RETRIED_ANYWAY, root=RETRIED_ANYWAY_TS
    )
    with_verdict = {"phase": "answered", "retry_source": "button", "post_claim": 3, "verdict": closed}
    return [
        *earlier,
        Row(
            "conversation_checks",
            "check_open",
            {"scope": "conversation:456", "verdict": can_retry, "checked_at": now - 30.0},
        ),
        Row(
            "conversation_checks",
            "check_closed",
            {"scope": "conversation:789", "verdict": closed, "checked_at": now - 999.0},
        ),
        Row(alert.table, alert.key, {**alert.columns, **with_verdict}),
        Row(batch.table, batch.key, {**batch.columns, "retry_anyway": True}),
        finished_request(
            "anyway_request", "anyway", RETRIED_ANYWAY, now - 990.0, "U105", outcome="accepted", status=200
        ),
        attempt("anyway_attempt", "anyway_request", now - 989.0, "accepted", 200),
    ]

"""Schema 0006 (2026-11-28): the message shortcut, whose batches answer in the thread of the message used on."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0005, with_columns
from tests.upgrade_fixtures.r0001 import attempt, finished_request

SHORTCUT_THREAD = "1764100000.000800"
SHORTCUT_ROOT = "1764100000.000900"
SHORTCUT_MESSAGE = 3001


def rows(now: float) -> list[Row]:
    earlier = with_columns(r0005.rows(now), {"finished_command": {"thread_ts": None}})
    return [
        *earlier,
        Row(
            "retry_batches",
            "shortcut",
            {
                "source": "shortcut",
                "requested_by": "U106",
                "channel_id": "C106",
                "response_url": None,
                "total": 1,
                "skipped": "[]",
                "created_at": now - 600.0,
                "correlation_id": "shortcut-0006",
                "root_channel": "C106",
                "root_ts": SHORTCUT_ROOT,
                "thread_ts": SHORTCUT_THREAD,
                "announced_at": now - 599.5,
                "announce_lease_until": None,
                "uses_response_url": False,
                "alert_message_id": None,
                "digest_id": None,
                "progress_shown": 1,
                "progress_shown_at": now - 590.0,
                "finished_at": now - 590.0,
                "summary_lease_until": None,
                "summarized_at": now - 589.0,
                "retry_anyway": False,
            },
        ),
        finished_request(
            "shortcut_request", "shortcut", SHORTCUT_MESSAGE, now - 600.0, "U106", outcome="not_found", status=404
        ),
        attempt("shortcut_attempt", "shortcut_request", now - 599.0, "not_found", 404),
    ]

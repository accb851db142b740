"""Schema 0007 (2026-12-05): weekly reports, one row an occurrence, posted once across replicas."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0006

WEEK = 7 * 24 * 3600


def rows(now: float) -> list[Row]:
    # Two weeks ago the bot skipped the occurrence it found due when first started; last week it posted one.
    skipped = int((now - 2 * WEEK) // 60) * 60
    posted = skipped + WEEK
    return [
        *r0006.rows(now),
        Row(
            "weekly_reports",
            "skipped_report",
            {
                "due_at": skipped,
                "channel_id": "CREPORTS",
                "claim": 0,
                "lease_until": None,
                "posted_at": skipped + 1.0,
                "ts": None,
                "skipped": True,
            },
        ),
        Row(
            "weekly_reports",
            "posted_report",
            {
                "due_at": posted,
                "channel_id": "CREPORTS",
                "claim": 1,
                "lease_until": None,
                "posted_at": posted + 2.0,
                "ts": "1764500000.000100",
                "skipped": False,
            },
        ),
    ]

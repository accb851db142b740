"""Schema 0005 (2026-11-28): retention indexes, webhook deliveries counted per minute, the silence watch."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0004


def rows(now: float) -> list[Row]:
    minute = int(now // 60)
    return [
        *r0004.rows(now),
        *(
            Row(
                "webhook_intake",
                f"minute_{back}",
                {"minute": minute - back, "deliveries": 3 + back, "last_at": (minute - back) * 60.0 + 30.0},
            )
            for back in (1, 2, 5)
        ),
        Row(
            "webhook_watch",
            "watch",
            {
                "name": "partoo",
                "watch_started_at": now - 86400.0,
                "last_delivery_at": now - 5.0,
                "silent_since": None,
                "notice_due": None,
                "notice_lease_until": None,
            },
        ),
    ]

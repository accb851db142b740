"""Schema 0011 (2026-12-05): silences, one active and one ended and summed up."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0010


def rows(now: float) -> list[Row]:
    # A business the earlier fixtures' failures are not of: the upgrade test's new failure must be posted.
    silence = {"scope": "business", "value": "1187", "created_by": "U0SILENT", "note": "page unlinked"}
    return [
        *r0010.rows(now),
        Row("silences", "active", {**silence, "until": now + 3600.0, "created_at": now - 600.0}),
        Row(
            "silences",
            "ended",
            {
                **silence,
                "until": now + 3600.0,
                "created_at": now - 7200.0,
                "ended_at": now - 3600.0,
                "ended_by": "U0SILENT",
                "summarized_at": now - 3599.0,
            },
        ),
    ]

"""Schema 0008 (2026-12-05): fencing tokens for every lease, log lines leased, and retention's pass leased.

The rows of 0007, with the new token columns as a bot of 0008 leaves them between rounds: tokens counted up
by earlier claims, no lease held (a held one would be taken over after it expires, as any other).
"""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0007, with_columns


def rows(now: float) -> list[Row]:
    return with_columns(
        r0007.rows(now),
        {
            "finished_command": {"announce_token": 2, "summary_token": 1},
            "accepted": {"report_token": 1, "log_token": 1, "log_lease_until": None},
            "refused": {"report_token": 3, "log_token": 0, "log_lease_until": None},
        },
    )

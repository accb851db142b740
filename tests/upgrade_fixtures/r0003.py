"""Schema 0003 (2026-11-28): alert phases, fencing tokens, post claims and errors, retry generations."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0002, with_columns
from tests.upgrade_fixtures.r0002 import CLICKED_ALERT, COMMANDED_ALERT, DIGESTED, RETRIED_ALL


def rows(now: float) -> list[Row]:
    accepted_retry = {"phase": "answered", "post_claim": 3}
    return with_columns(
        r0002.rows(now),
        {
            # Every claim of a request added one to its token; the dead worker's lease holds token 2.
            "accepted": {"lease_token": 1},
            "refused": {"lease_token": 2},
            "expired_running": {"lease_token": 2},
            "in_flight": {"lease_token": 1},
            "click_request": {"lease_token": 1},
            "fresh": {"phase": "failed", "post_claim": 1},
            "clicked": {**accepted_retry, "retry_source": "button"},
            "commanded": {**accepted_retry, "retry_source": "command"},
            **{f"digested_{n}": {"phase": "failed"} for n in DIGESTED},
            **{f"retried_all_{n}": {"phase": "answered", "retry_source": "retry_all"} for n in RETRIED_ALL},
            "quiet_digest": {"post_claim": 1},
            "retried_digest": {"post_claim": 2},
            # The event after a retry of the message counts that retry.
            f"event_{CLICKED_ALERT}": {"retry_generation": 0},
            f"event_{COMMANDED_ALERT}": {"retry_generation": 0},
            "event_delivered": {"retry_generation": 1},
        },
    )

"""Schema 0001 (2026-11-26): `/partoo-retry` only. Batches, their requests in every state, and the attempts."""

from __future__ import annotations

from tests.upgrade_fixtures import Ref, Row

# The ts of the root messages the command posted (fake Slack is told they exist).
FINISHED_ROOT = "1764100000.000100"
IN_PROGRESS_ROOT = "1764100000.000200"

# Accepted, then delivered: `/partoo-retry 1001` after the upgrade retries it again.
ACCEPTED = 1001
# Messages whose requests are still to be sent when the bot stops: the upgraded bot sends them.
QUEUED = 1003
EXPIRED_RUNNING = 1004
# Sent to Partoo when the bot stopped, answer unknown: the upgraded bot must never send it again.
IN_FLIGHT = 1005


def rows(now: float) -> list[Row]:
    return [
        # A command that is over: two messages, one accepted, one refused after a 429; reported and logged.
        Row(
            "retry_batches",
            "finished_command",
            {
                "source": "command",
                "requested_by": "U100",
                "channel_id": "C100",
                "response_url": "https://hooks.slack.com/commands/T0001/1/finished",
                "total": 2,
                "skipped": "[]",
                "created_at": now - 3000.0,
                "correlation_id": "cmd-finished-0001",
                "root_channel": "C100",
                "root_ts": FINISHED_ROOT,
                "announced_at": now - 2999.5,
                "announce_lease_until": None,
                "uses_response_url": False,
                "progress_shown": 2,
                "progress_shown_at": now - 2990.0,
                "finished_at": now - 2990.0,
                "summary_lease_until": None,
                "summarized_at": now - 2989.0,
            },
        ),
        finished_request("accepted", "finished_command", 1001, now - 3000.0, "U100", outcome="accepted", status=200),
        finished_request(
            "refused", "finished_command", 1002, now - 3000.0, "U100", outcome="refused", status=400, tries=2
        ),
        attempt("accepted_attempt", "accepted", now - 2999.0, "accepted", 200),
        attempt("refused_429", "refused", now - 2999.0, "rate_limited", 429),
        attempt("refused_attempt", "refused", now - 2991.0, "refused", 400),
        # A command the bot was working on when it stopped: one queued, one leased by a worker that died
        # before calling Partoo (after an earlier 503), one whose call was in flight.
        Row(
            "retry_batches",
            "open_command",
            {
                "source": "command",
                "requested_by": "U101",
                "channel_id": "C101",
                "response_url": "https://hooks.slack.com/commands/T0001/2/open",
                "total": 3,
                "skipped": "[]",
                "created_at": now - 120.0,
                "correlation_id": "cmd-open-0001",
                "root_channel": "C101",
                "root_ts": IN_PROGRESS_ROOT,
                "announced_at": now - 119.5,
                "announce_lease_until": None,
                "uses_response_url": False,
                "progress_shown": 0,
                "progress_shown_at": None,
                "finished_at": None,
                "summary_lease_until": None,
                "summarized_at": None,
            },
        ),
        Row(
            "retry_requests",
            "queued",
            {
                **REQUEST_DEFAULTS,
                "batch_id": Ref("open_command"),
                "message_id": QUEUED,
                "requested_by": "U101",
                "requested_at": now - 120.0,
                "state": "queued",
                "next_attempt_at": now - 110.0,
            },
        ),
        Row(
            "retry_requests",
            "expired_running",
            {
                **REQUEST_DEFAULTS,
                "batch_id": Ref("open_command"),
                "message_id": EXPIRED_RUNNING,
                "requested_by": "U101",
                "requested_at": now - 120.0,
                "state": "running",
                "next_attempt_at": now - 100.0,
                "lease_owner": "worker-gone",
                "lease_until": now - 90.0,
                "attempts": 1,
                "first_attempt_at": now - 118.0,
            },
        ),
        attempt("expired_running_503", "expired_running", now - 118.0, "unavailable", 503),
        Row(
            "retry_requests",
            "in_flight",
            {
                **REQUEST_DEFAULTS,
                "batch_id": Ref("open_command"),
                "message_id": IN_FLIGHT,
                "requested_by": "U101",
                "requested_at": now - 120.0,
                "state": "running",
                "next_attempt_at": now - 100.0,
                "lease_owner": "worker-gone",
                "lease_until": now - 90.0,
                "in_flight_since": now - 100.0,
                "attempts": 1,
                "first_attempt_at": now - 100.0,
            },
        ),
        Row(
            "retry_attempts",
            "in_flight_attempt",
            {"request_id": Ref("in_flight"), "worker": "worker-gone", "started_at": now - 100.0},
        ),
    ]


REQUEST_DEFAULTS = {
    "lease_owner": None,
    "lease_until": None,
    "in_flight_since": None,
    "attempts": 0,
    "first_attempt_at": None,
    "outcome": None,
    "http_status": None,
    "detail": None,
    "finished_at": None,
    "report_lease_until": None,
    "reported_at": None,
    "logged_at": None,
}


def finished_request(
    key: str, batch: str, message_id: int, at: float, by: str, *, outcome: str, status: int, tries: int = 1
) -> Row:
    """A finished request, reported in its thread and written to the log channel."""
    return Row(
        "retry_requests",
        key,
        {
            **REQUEST_DEFAULTS,
            "batch_id": Ref(batch),
            "message_id": message_id,
            "requested_by": by,
            "requested_at": at,
            "state": "done",
            "next_attempt_at": at,
            "attempts": tries,
            "first_attempt_at": at + 1.0,
            "outcome": outcome,
            "http_status": status,
            "detail": None if outcome == "accepted" else f"Partoo answered {status}",
            "finished_at": at + 10.0,
            "reported_at": at + 10.5,
            "logged_at": at + 11.0,
        },
    )


def attempt(key: str, request: str, at: float, outcome: str, status: int) -> Row:
    return Row(
        "retry_attempts",
        key,
        {
            "request_id": Ref(request),
            "worker": "worker-1",
            "started_at": at,
            "finished_at": at + 0.2,
            "outcome": outcome,
            "http_status": status,
            "detail": None if outcome == "accepted" else f"Partoo answered {status}",
            "latency_ms": 200.0,
        },
    )

"""Schema 0002 (2026-11-26, the first release with alerts): webhook events, alerts, digests, clicks.

What the issue's database held: alerts posted and in digests, a clicked Retry, a Retry all, and a command's
retry of an alerted message answered in the alert's thread; events applied, and one still waiting.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.upgrade_fixtures import Ref, Row, r0001, with_columns
from tests.upgrade_fixtures.r0001 import attempt, finished_request

ALERT_CHANNEL = "CALERTS"  # tests.harness.ALERT_CHANNEL: the channel the bot under test alerts in
# A posted alert nobody has retried yet: the upgraded bot's click on it updates this very message.
FRESH_ALERT = 2001
FRESH_ALERT_TS = "1764100000.000400"
CLICKED_ALERT = 2002
COMMANDED_ALERT = 2006
DIGESTED = (2003, 2004, 2005)
RETRIED_ALL = (2007, 2008, 2009)
# A failure stored but not yet turned into an alert when the bot stopped.
PENDING_FAILURE = 2010


def rows(now: float) -> list[Row]:
    earlier = with_columns(
        r0001.rows(now),
        {
            "accepted": {"delivery": "delivered", "delivery_at": now - 2900.0},
            "finished_command": {"alert_message_id": None, "digest_id": None},
            "open_command": {"alert_message_id": None, "digest_id": None},
        },
    )
    return [
        *earlier,
        digest_row("quiet_digest", "1764100000.000300", now - 2000.0, None),
        digest_row("retried_digest", "1764100000.000350", now - 1900.0, "U104"),
        alert_row("fresh", FRESH_ALERT, FRESH_ALERT_TS, now - 1500.0),
        alert_row(
            "clicked",
            CLICKED_ALERT,
            "1764100000.000500",
            now - 1400.0,
            version=3,
            retry_requested_by="U102",
            retry_requested_at=now - 1390.0,
            retries=1,
            last_outcome="accepted",
        ),
        *(alert_row(f"digested_{n}", n, None, now - 2000.0, digest=Ref("quiet_digest")) for n in DIGESTED),
        *(
            alert_row(
                f"retried_all_{n}",
                n,
                None,
                now - 1900.0,
                digest=Ref("retried_digest"),
                version=3,
                retry_requested_by="U104",
                retry_requested_at=now - 1880.0,
                retries=1,
                last_outcome="accepted",
            )
            for n in RETRIED_ALL
        ),
        alert_row(
            "commanded",
            COMMANDED_ALERT,
            "1764100000.000600",
            now - 1300.0,
            version=3,
            retry_requested_by="U103",
            retry_requested_at=now - 1290.0,
            retries=1,
            last_outcome="refused",
            last_detail="Partoo answered 400",
        ),
        # The Retry click on the `clicked` alert: answered in the alert's thread, the alert re-rendered.
        batch_row(
            "click", "button", "U102", ALERT_CHANNEL, now - 1390.0, 1, alert=CLICKED_ALERT, root="1764100000.000500"
        ),
        finished_request("click_request", "click", CLICKED_ALERT, now - 1390.0, "U102", outcome="accepted", status=200),
        attempt("click_attempt", "click_request", now - 1389.0, "accepted", 200),
        # Retry all on the digest.
        batch_row(
            "retry_all",
            "button",
            "U104",
            ALERT_CHANNEL,
            now - 1880.0,
            3,
            digest=Ref("retried_digest"),
            root="1764100000.000350",
        ),
        *(
            finished_request(f"retry_all_{n}", "retry_all", n, now - 1880.0, "U104", outcome="accepted", status=200)
            for n in RETRIED_ALL
        ),
        *(attempt(f"retry_all_attempt_{n}", f"retry_all_{n}", now - 1879.0, "accepted", 200) for n in RETRIED_ALL),
        # `/partoo-retry 2006` from another channel: the answer went to the alert, not to a root message.
        batch_row(
            "command_on_alert",
            "command",
            "U103",
            "C103",
            now - 1290.0,
            1,
            alert=COMMANDED_ALERT,
            root="1764100000.000600",
        ),
        finished_request(
            "command_on_alert_request",
            "command_on_alert",
            COMMANDED_ALERT,
            now - 1290.0,
            "U103",
            outcome="refused",
            status=400,
        ),
        attempt("command_on_alert_attempt", "command_on_alert_request", now - 1289.0, "refused", 400),
        # What Partoo delivered: each failure, the delivery of 1001, and a failure not applied yet.
        *(
            event_row(f"event_{n}", n, "Failed", at, processed=True)
            for n, at in [
                (FRESH_ALERT, now - 1500.0),
                (CLICKED_ALERT, now - 1400.0),
                (COMMANDED_ALERT, now - 1300.0),
                *((n, now - 2000.0) for n in DIGESTED),
                *((n, now - 1900.0) for n in RETRIED_ALL),
            ]
        ),
        event_row("event_delivered", r0001.ACCEPTED, "Success", now - 2900.0, processed=True),
        event_row("event_pending", PENDING_FAILURE, "Failed", now - 5.0, processed=False),
    ]


def failure(message_id: int) -> dict[str, Any]:
    """The alert's `failure` column as the bot wrote it: the MessageUpdate it parsed, as JSON."""
    return {
        "message_id": message_id,
        "conversation_id": 456,
        "status": "Failed",
        "is_deleted": False,
        "sender_type": "User",
        "sender_label": "Jane Doe",
        "content_type": "Text",
        "content": f"Your order {message_id} is ready",
        "date": "2026-11-26T16:22:17.327878+00:00",
        "messaging_partner": "Whatsapp",
        "consumer_name": "John Doe",
        "business_id": 42,
        "org_id": 7,
    }


def alert_row(
    key: str,
    message_id: int,
    ts: str | None,
    failed_at: float,
    *,
    digest: Ref | None = None,
    version: int = 1,
    retry_requested_by: str | None = None,
    retry_requested_at: float | None = None,
    retries: int = 0,
    last_outcome: str | None = None,
    last_detail: str | None = None,
) -> Row:
    return Row(
        "alerts",
        key,
        {
            "message_id": message_id,
            "channel_id": ALERT_CHANNEL,
            "ts": ts,
            "digest_id": digest,
            "failure": json.dumps(failure(message_id)),
            "failed_at": failed_at,
            "failed_again_at": None,
            "failures": 1,
            "retry_requested_by": retry_requested_by,
            "retry_requested_at": retry_requested_at,
            "retries": retries,
            "last_outcome": last_outcome,
            "last_detail": last_detail,
            "delivered_at": None,
            "version": version,
            "posted_version": version,
            "post_lease_until": None,
        },
    )


def digest_row(key: str, ts: str, created_at: float, retry_requested_by: str | None) -> Row:
    version = 2 if retry_requested_by else 1
    return Row(
        "alert_digests",
        key,
        {
            "channel_id": ALERT_CHANNEL,
            "ts": ts,
            "created_at": created_at,
            "retry_requested_by": retry_requested_by,
            "version": version,
            "posted_version": version,
            "posted_at": created_at + 1.0,
            "post_lease_until": None,
        },
    )


def batch_row(
    key: str,
    source: str,
    by: str,
    channel: str,
    at: float,
    total: int,
    *,
    root: str,
    alert: int | None = None,
    digest: Ref | None = None,
) -> Row:
    """A finished batch that answered in an alert's or a digest's thread."""
    return Row(
        "retry_batches",
        key,
        {
            "source": source,
            "requested_by": by,
            "channel_id": channel,
            "response_url": f"https://hooks.slack.com/actions/T0001/{key}",
            "total": total,
            "skipped": "[]",
            "created_at": at,
            "correlation_id": f"{key}-0002",
            "root_channel": ALERT_CHANNEL,
            "root_ts": root,
            "announced_at": at + 0.1,
            "announce_lease_until": None,
            "uses_response_url": False,
            "progress_shown": total,
            "progress_shown_at": at + 5.0,
            "finished_at": at + 5.0,
            "summary_lease_until": None,
            "summarized_at": at + 5.5,
            "alert_message_id": alert,
            "digest_id": digest,
        },
    )


def event_row(key: str, message_id: int, status: str, at: float, *, processed: bool) -> Row:
    body = {
        "type": "message_updated",
        "payload": {
            "message": {
                "id": message_id,
                "conversation_id": 456,
                "date": "2026-11-26 16:22:17.327878+00:00",
                "content_type": "Text",
                "sender_type": "User",
                "sender_label": "Jane Doe",
                "status": status,
                "is_deleted": False,
                "content": f"Your order {message_id} is ready",
                "user_id": "user-1",
                "custom_channel": None,
            },
            "conversation": {
                "id": 456,
                "consumer_img": "https://www.example.com/profile-picture.jpg",
                "consumer_name": "John Doe",
                "business": {"id": 42},
                "messaging_partner": "Whatsapp",
                "custom_channel": None,
            },
        },
    }
    payload = json.dumps(body)
    return Row(
        "webhook_events",
        key,
        {
            "dedupe_key": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
            "received_at": at,
            "type": "message_updated",
            "message_id": message_id,
            "status": status,
            "payload": payload,
            "processed_at": at + 0.5 if processed else None,
            "lease_until": None,
        },
    )

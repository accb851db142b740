"""Benchmark 2: webhook intake — not available yet.

It will send signed `message_updated` events (tests.signing.PartooSigner, message_updated_event) to the
bot's Partoo webhook endpoint as fast as they are answered, on SQLite and on PostgreSQL, and report the
sustained events per second answered 200 with the event stored, and the p99 latency (goal: 1,000 events/s
on SQLite with p99 under 100 ms). It joins `python -m bench` in the round after the first one.
"""

from __future__ import annotations

from bench.common import say

TITLE = "2. Webhook intake"
STATUS = "not yet available in `python -m bench`; `bench/webhooks.py` holds its place"


def run() -> str:
    say(f"{TITLE}: {STATUS}")
    return STATUS

"""Benchmark 4: a flood of 1,000 failures in 10 s — not available yet.

It will send 1,000 signed `message_updated` events with status Failed within 10 s, against a FakeSlack that
enforces Slack's posting rate (FakeSlack.enforce_post_rate), and report the messages posted to the alert
channel, the Slack 429s provoked (goal: zero) and the time until every failure is visible in Slack. It joins
`python -m bench` in the round after the first one.
"""

from __future__ import annotations

from bench.common import say

TITLE = "4. Flood of failures"
STATUS = "not yet available in `python -m bench`; `bench/flood.py` holds its place"


def run() -> str:
    say(f"{TITLE}: {STATUS}")
    return STATUS

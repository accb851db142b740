"""Leases and claims: the condition every claim in the store uses, and keeping a claim while work runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClaimLost(Exception):
    """Another replica took the claim over while the work ran; the work was cancelled."""


def lease_free(
    lease_until: InstrumentedAttribute[float | None] | ColumnElement[Any], now: float | ColumnElement[Any]
) -> ColumnElement[bool]:
    """True where the lease column is empty or already past `now`."""
    return or_(lease_until.is_(None), lease_until < now)


async def while_claimed(work: Awaitable[T], renew: Callable[[], Awaitable[bool]], every: float) -> T:
    """Run `work`, renewing its claim every `every` seconds until it ends.

    A Slack call can outlast any fixed claim (slack_sdk waits out a 429's Retry-After, however long), and
    a claim that expires mid-call lets another replica post the same message. So the claim is renewed
    while the call runs. When a renewal finds the claim taken over, the work is cancelled and ClaimLost
    raised: the other holder does the job. A renewal that fails (database hiccup) is tried again next
    time; the claim may well still be ours.
    """
    task = asyncio.ensure_future(work)
    # A cancelled call's own error (if it raced the cancellation) is of no interest to anyone.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        while True:
            done, _pending = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            try:
                still_ours = await renew()
            except Exception as error:
                log.warning("could not renew a claim: %s", type(error).__name__)
                continue
            if not still_ours:
                task.cancel()
                raise ClaimLost
    finally:
        if not task.done():
            task.cancel()

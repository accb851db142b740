"""Wait for a condition instead of sleeping for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Timeouts are bounds, never waits: generous, so that a loaded 2-core machine does not fail a test that is only
# slow. Polls start every few milliseconds, so a quick condition is seen at once, and slow down to this: a long wait
# (hundreds of retries, a lease to expire) must not take the CPU the bot under test needs to get there.
SLOWEST_POLL = 0.05


def _next(interval: float) -> float:
    return min(interval * 1.5, max(interval, SLOWEST_POLL))


def _failure(message: str, timeout: float, last: object, error: AssertionError | None) -> AssertionError:
    detail = f"last assertion: {error}" if error is not None else f"last value: {last!r}"
    return AssertionError(f"{message or 'condition not met'} (after {timeout} s; {detail})")


def _check(predicate: Callable[[], T]) -> tuple[T | None, AssertionError | None]:
    # A predicate may assert instead of returning False; that counts as "not yet".
    try:
        return predicate(), None
    except AssertionError as error:
        return None, error


# The `timeout` keyword is this helper's contract (tests read better with it than with asyncio.timeout).
async def eventually(
    predicate: Callable[[], T],
    *,
    timeout: float = 15.0,  # noqa: ASYNC109
    interval: float = 0.01,
    message: str = "",
) -> T:
    """Poll `predicate` until it returns something truthy (returned) or fail with AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value, error = _check(predicate)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value, error)
        await asyncio.sleep(interval)
        interval = _next(interval)


def wait_until(predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.01, message: str = "") -> T:
    """Sync twin of `eventually`, for threads and sync tests."""
    deadline = time.monotonic() + timeout
    while True:
        value, error = _check(predicate)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value, error)
        time.sleep(interval)
        interval = _next(interval)


async def eventually_async(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = 15.0,  # noqa: ASYNC109
    interval: float = 0.02,
    message: str = "",
) -> T:
    """`eventually` for conditions that must be awaited (a database read, an HTTP call)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value, error = await predicate(), None
        except AssertionError as failed:
            value, error = None, failed
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value, error)
        await asyncio.sleep(interval)
        interval = _next(interval)

"""The request id (correlation id) that ties together every log line caused by one Slack request.

It lives in a ContextVar: asyncio copies the context into every task created while it is bound, so the
work Bolt runs after `ack()` and anything it spawns log the same id without passing it around. Work that
crosses the database (a queue entry picked up by the worker) must store the id and bind it again.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_id() -> str:
    """A fresh request id: short enough to read in a log line, random enough never to collide in practice."""
    return uuid.uuid4().hex[:16]


def current() -> str | None:
    """The request id bound in this context, if any."""
    return correlation_id.get()


@contextlib.contextmanager
def bound(request_id: str | None = None) -> Iterator[str]:
    """Bind `request_id` (a new one when None) for the duration of the block, then restore the previous one."""
    value = request_id or new_id()
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)

"""When to try a transient failure again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.domain.outcomes import OutcomeKind, PartooAnswer


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for 5xx / no connection; Retry-After for 429; both bounded."""

    max_attempts: int = 6
    max_total_seconds: float = 600.0
    base_delay: float = 2.0
    max_delay: float = 120.0

    def next_attempt_at(
        self, answer: PartooAnswer, *, attempts: int, first_attempt_at: float, now: float
    ) -> float | None:
        """When to call Partoo again for this request, or None when the answer is its outcome."""
        if answer.is_final or attempts >= self.max_attempts:
            return None
        if answer.kind is OutcomeKind.RATE_LIMITED and answer.retry_after is not None:
            delay = answer.retry_after
        else:
            ceiling = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
            # Full jitter spreads replicas and requests apart after a shared outage; never zero.
            delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        if now + delay - first_attempt_at > self.max_total_seconds:
            return None
        return now + delay

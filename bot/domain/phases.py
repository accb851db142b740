"""The phases of a failed message's life (bot.domain.lifecycle), apart so that admission can read them too."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    FAILED = "failed"
    RETRY_REQUESTED = "retry_requested"
    SENDING = "sending"
    ANSWERED = "answered"
    DELIVERED = "delivered"
    FAILED_AGAIN = "failed_again"
    NOT_CONFIRMED = "not_confirmed"


# The phases in which a retry asked for after the latest failure is still the alert's news.
RETRY_PHASES = frozenset({Phase.RETRY_REQUESTED, Phase.SENDING, Phase.ANSWERED, Phase.NOT_CONFIRMED})

"""What a call to Partoo's retry endpoint can end in.

The taxonomy is deliberately small; each kind knows whether it is final and what a Slack user should read:

    PartooAnswer.kind
    ├── ACCEPTED       200: Partoo is sending the message again (delivery is reported later by webhook)
    ├── REFUSED        400: Partoo refused the request; `detail` says why
    ├── BAD_KEY        401: the API key is wrong or belongs to the other environment
    ├── FORBIDDEN      403: the key's user may not retry messages
    ├── NOT_FOUND      404: no such message for this key
    ├── RATE_LIMITED   429: transient; wait `retry_after`, then try again
    ├── UNAVAILABLE    5xx or no connection: transient; back off and try again
    ├── UNKNOWN        the request was sent but no answer came back: final, because sending it again
    │                  could deliver the message to the customer twice
    └── SKIPPED        not sent: the bot's check of the conversation says a retry cannot reach the customer
                       (closed, expired, or a channel setup problem); `detail` says which and what to do
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    BAD_KEY = "bad_key"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    # Stop on a bulk's progress message: the request was removed before it was sent (never one in flight).
    STOPPED = "stopped"

    @property
    def is_final(self) -> bool:
        """Whether Partoo's answer settles the request: a final request is never sent again."""
        return self not in _TRANSIENT

    @property
    def sentence(self) -> str:
        """The plain-words explanation a Slack user reads next to the message id."""
        return _SENTENCES[self]


_TRANSIENT = frozenset({OutcomeKind.RATE_LIMITED, OutcomeKind.UNAVAILABLE})

_SENTENCES: dict[OutcomeKind, str] = {
    OutcomeKind.ACCEPTED: (
        "Partoo accepted the retry: the message is being sent again. Its final delivery is reported later."
    ),
    OutcomeKind.REFUSED: "Partoo refused the retry.",
    OutcomeKind.BAD_KEY: (
        "Partoo did not accept the bot's API key. Check `PARTOO_API_KEY` and `PARTOO_ENV` "
        "(a sandbox key does not work in production, nor the reverse)."
    ),
    OutcomeKind.FORBIDDEN: "The Partoo user behind the bot's API key is not allowed to retry messages.",
    OutcomeKind.NOT_FOUND: "Partoo knows no such message for the bot's API key.",
    OutcomeKind.RATE_LIMITED: "Partoo is rate limiting the bot; the retry waits its turn.",
    OutcomeKind.UNAVAILABLE: "Partoo could not be reached or had an error.",
    OutcomeKind.UNKNOWN: (
        "Partoo did not answer in time, so the bot cannot tell whether the message was sent again. "
        "It was not retried automatically, to avoid sending it twice: check the conversation in Partoo "
        "before retrying again."
    ),
    OutcomeKind.SKIPPED: "Not sent: the bot checked the conversation first, and a retry cannot reach the customer.",
    OutcomeKind.STOPPED: "Not sent: the retry was stopped before its turn came.",
}


@dataclass(frozen=True)
class PartooAnswer:
    """One call to the retry endpoint, as the bot understood it."""

    kind: OutcomeKind
    http_status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    latency_ms: float = 0.0

    @property
    def is_final(self) -> bool:
        return self.kind.is_final

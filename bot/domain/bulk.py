"""Retrying many at once: the filter of `/partoo-retry failed …` and how a plan groups what it matched (pure).

    failed [since 2h|30m|1d|<ISO time>] [business <id>] [partner <name>] [cause closed|setup|open|unchecked]

Parsing is total: every text gives a Filter or a problem sentence. The grouping is admission's answer
(bot.domain.admission) on each message's stored state, then the stored verdict for the admitted ones: there is
no second rule here, only a finer label for what admission and the worker would do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bot.domain.admission import Asked, Reason, Refused, StoredState, admit
from bot.domain.verdict import Verdict, VerdictKind

SUBCOMMAND = "failed"
# Without `since`, a plan looks this far back: the span of an incident, not the whole history.
DEFAULT_SINCE_SECONDS = 24 * 3600.0
MAX_SINCE_SECONDS = 31 * 24 * 3600.0
_DURATION = re.compile(r"([0-9]{1,5})([mhd])")
_UNIT_SECONDS = {"m": 60.0, "h": 3600.0, "d": 86400.0}
_BUSINESS = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PARTNER = re.compile(r"[a-z_]{1,32}")
CAUSES: dict[str, VerdictKind] = {
    "closed": VerdictKind.CLOSED,
    "setup": VerdictKind.SETUP_PROBLEM,
    "open": VerdictKind.CAN_RETRY,
    "unchecked": VerdictKind.COULD_NOT_CHECK,
}


@dataclass(frozen=True)
class Filter:
    """Which failed messages a plan is about. `since_seconds` (relative) or `since_at` (absolute), not both."""

    since_seconds: float | None = DEFAULT_SINCE_SECONDS
    since_at: float | None = None
    business: str | None = None
    partner: str | None = None  # lower case
    cause: str | None = None  # a key of CAUSES

    def start(self, now: float) -> float:
        """The earliest failure time that matches, for a plan made at `now`."""
        return self.since_at if self.since_at is not None else now - (self.since_seconds or 0.0)

    def words(self) -> str:
        """The filter in plain words (plain text; every part came through the grammar's character sets)."""
        if self.since_at is not None:
            parts = [f"since {datetime.fromtimestamp(self.since_at, UTC):%Y-%m-%d %H:%M} UTC"]
        else:
            parts = [f"in the last {_span(self.since_seconds or 0.0)}"]
        if self.business:
            parts.append(f"business {self.business}")
        if self.partner:
            parts.append(f"partner {self.partner}")
        if self.cause:
            parts.append(f"cause {self.cause}")
        return ", ".join(parts)

    def matches(self, failure: Failure, start: float) -> bool:
        if failure.failed_at < start:
            return False
        if self.business is not None and failure.business_id != self.business:
            return False
        if self.partner is not None and (failure.partner or "").strip().lower() != self.partner:
            return False
        if self.cause is not None:
            kind = failure.verdict.kind if failure.verdict else VerdictKind.COULD_NOT_CHECK
            return kind is CAUSES[self.cause]
        return True


@dataclass(frozen=True)
class Failure:
    """One failed message as the bot's alerts record it."""

    message_id: int
    failed_at: float  # the latest failure
    business_id: str | None
    partner: str | None
    verdict: Verdict | None


def parse_filter(tokens: Sequence[str], now: float) -> Filter | str:
    """The filter written after `failed`, or the sentence that says what is wrong with it. Never raises."""
    values: dict[str, str] = {}
    rest = list(tokens)
    while rest:
        keyword = rest.pop(0).lower()
        if keyword not in ("since", "business", "partner", "cause"):
            return f"`failed` takes `since`, `business`, `partner` or `cause`; `{_shown(keyword)}` is none of them."
        if keyword in values:
            return f"`{keyword}` is given twice."
        if not rest:
            return f"`{keyword}` needs a value after it."
        values[keyword] = rest.pop(0)
    found = Filter()
    if "since" in values:
        since = _since(values["since"], now)
        if isinstance(since, str):
            return since
        found = since
    business = values.get("business")
    if business is not None and _BUSINESS.fullmatch(business) is None:
        return f"`{_shown(business)}` is not a business id (letters, digits, `-` and `_`)."
    partner = values.get("partner", "").lower() or None
    if partner is not None and _PARTNER.fullmatch(partner) is None:
        return f"`{_shown(partner)}` is not a messaging partner (such as whatsapp or facebook)."
    cause = values.get("cause", "").lower() or None
    if cause is not None and cause not in CAUSES:
        return f"`cause` is one of {', '.join(f'`{name}`' for name in CAUSES)}; not `{_shown(cause)}`."
    return Filter(found.since_seconds, found.since_at, business, partner, cause)


def _since(value: str, now: float) -> Filter | str:
    duration = _DURATION.fullmatch(value.lower())
    if duration is not None:
        seconds = int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
        if not 0 < seconds <= MAX_SINCE_SECONDS:
            return "`since` goes back at most 31 days, and more than 0."
        return Filter(since_seconds=seconds)
    if len(value) > 40:
        return "`since` takes a span (`30m`, `2h`, `1d`) or a time such as `2026-12-05T09:30`."
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"`since` takes a span (`30m`, `2h`, `1d`) or a time such as `2026-12-05T09:30`; not `{_shown(value)}`."
    at = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not now - MAX_SINCE_SECONDS <= at <= now:
        return "`since` must be in the last 31 days, and not in the future."
    return Filter(since_seconds=None, since_at=at)


class Group(StrEnum):
    """What the bot knows of a matched message, in the order a plan lists them."""

    CAN_RETRY = "can_retry"
    CLOSED = "closed"
    SETUP = "setup"
    WAITING = "waiting"  # already retried: under way, or Partoo accepted it and has not reported yet
    DELIVERED = "delivered"
    CAP = "cap"


# The groups the Retry anyway step may send: admission admits them, only the conversation check says no.
HOPELESS = (Group.CLOSED, Group.SETUP)

_REFUSED_GROUP = {
    Reason.UNDER_WAY: Group.WAITING,
    Reason.AWAITING_REPORT: Group.WAITING,
    Reason.DELIVERED: Group.DELIVERED,
    Reason.CAP_REACHED: Group.CAP,
}


def group_of(state: StoredState, verdict: Verdict | None, asked: Asked) -> Group:
    """Admission's answer, refined by the stored verdict when admission admits (as the worker would check)."""
    answer = admit(state, asked)
    if isinstance(answer, Refused):
        return _REFUSED_GROUP[answer.reason]
    if verdict is not None and verdict.kind is VerdictKind.CLOSED:
        return Group.CLOSED
    if verdict is not None and verdict.kind is VerdictKind.SETUP_PROBLEM:
        return Group.SETUP
    return Group.CAN_RETRY


def _span(seconds: float) -> str:
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(seconds // 60)} minutes"


def _shown(token: str) -> str:
    """A user's token made safe inside `code` in mrkdwn: cut, no backtick, `&<>` escaped (whole entities)."""
    return token[:40].replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""The weekly report: what failed, what the team got delivered by retrying, what could not be retried (pure).

The figures are defined here once, for Slack, App Home and the terminal alike:
- *failures*: messages with a Failed report in the window (a message that failed in two windows counts in each);
- *retried*: messages with at least one retry asked for in the window (`retry_requests` counts the asks);
- *delivered after retry*: retried messages whose retry Partoo later reported `Success`; the rate is over the
  retried messages;
- *not retryable*: failed messages whose conversation check found no retry could succeed, by cause;
- *median time to delivery*: from the failure a retry answered to the `Success` report that followed it;
- *top businesses and causes*: the failed messages, grouped.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.verdict import VerdictKind

WEEK_SECONDS = 7 * 24 * 3600.0
TOP = 5

# Causes as the report names them; a failure never checked has none.
CAUSE_LABELS: dict[str, str] = {
    VerdictKind.CAN_RETRY: "could be retried",
    VerdictKind.CLOSED: "conversation closed",
    VerdictKind.SETUP_PROBLEM: "channel setup problem",
    VerdictKind.COULD_NOT_CHECK: "could not be checked",
}
NOT_CHECKED = "not checked"
HOPELESS = frozenset({VerdictKind.CLOSED.value, VerdictKind.SETUP_PROBLEM.value})


@dataclass(frozen=True)
class FailureFact:
    """One failed message, as the report counts it."""

    message_id: int
    failed_at: float
    # Shown as is: a business's name where the bot knows it, else its id.
    business: str | None
    partner: str | None
    # The verdict kind of the latest conversation check (a VerdictKind value), None when never checked.
    cause: str | None


@dataclass(frozen=True)
class RetryFact:
    """One retry asked for, and what became of the message after it."""

    message_id: int
    requested_at: float
    # The failure this retry answered, and the Success report that followed it (None: none yet).
    failure_at: float | None
    delivered_at: float | None


@dataclass(frozen=True)
class Report:
    start: float
    end: float
    failures: int
    failures_before: int
    retried: int
    retry_requests: int
    delivered: int
    not_retryable: tuple[tuple[str, int], ...]
    median_to_delivery: float | None
    top_businesses: tuple[tuple[str, int], ...]
    top_causes: tuple[tuple[str, int], ...]
    silences: tuple[str, ...] = ()

    @property
    def delivery_rate(self) -> float | None:
        """Delivered after retry, over retried messages (None when nothing was retried)."""
        return self.delivered / self.retried if self.retried else None

    @property
    def trend(self) -> int:
        """Failures this window minus the window before (negative: fewer)."""
        return self.failures - self.failures_before


def build_report(
    start: float,
    end: float,
    failures: Iterable[FailureFact],
    failures_before: int,
    retries: Iterable[RetryFact],
    *,
    silences: Sequence[str] = (),
    top: int = TOP,
) -> Report:
    """The report of [start, end) from the facts of that window (facts outside it are ignored)."""
    failed = {fact.message_id: fact for fact in failures if start <= fact.failed_at < end}
    asked = [fact for fact in retries if start <= fact.requested_at < end]
    retried = {fact.message_id for fact in asked}
    delivered_facts = [fact for fact in asked if fact.delivered_at is not None]
    delivered = {fact.message_id for fact in delivered_facts}
    waits = [
        fact.delivered_at - fact.failure_at
        for fact in delivered_facts
        if fact.delivered_at is not None and fact.failure_at is not None and fact.delivered_at >= fact.failure_at
    ]
    causes = Counter(_cause_label(fact.cause) for fact in failed.values())
    hopeless = Counter(_cause_label(fact.cause) for fact in failed.values() if fact.cause in HOPELESS)
    businesses = Counter(fact.business or "unknown business" for fact in failed.values())
    return Report(
        start=start,
        end=end,
        failures=len(failed),
        failures_before=failures_before,
        retried=len(retried),
        retry_requests=len(asked),
        delivered=len(delivered),
        not_retryable=_ranked(hopeless, None),
        median_to_delivery=statistics.median(waits) if waits else None,
        top_businesses=_ranked(businesses, top),
        top_causes=_ranked(causes, top),
        silences=tuple(silences),
    )


def _cause_label(cause: str | None) -> str:
    return CAUSE_LABELS.get(cause, cause) if cause else NOT_CHECKED


def _ranked(counts: Counter[str], top: int | None) -> tuple[tuple[str, int], ...]:
    # Most first; ties by name, so the same history always reads the same.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ranked if top is None else ranked[:top])


# -- when it is posted ----------------------------------------------------------------------------

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ScheduleError(ValueError):
    """A REPORT_SCHEDULE that is not `<day> <HH:MM>`."""


@dataclass(frozen=True)
class Schedule:
    """A weekly time in a time zone: the report covers the seven days before each occurrence."""

    weekday: int  # Monday is 0
    hour: int
    minute: int
    zone: ZoneInfo

    def latest_due(self, now: float) -> float:
        """The latest occurrence at or before `now` (UNIX seconds), in the schedule's wall-clock time."""
        local = datetime.fromtimestamp(now, tz=self.zone)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        due = datetime(day.year, day.month, day.day, self.hour, self.minute, tzinfo=self.zone)
        if due.timestamp() > now:
            due -= timedelta(days=7)
            due = datetime(due.year, due.month, due.day, self.hour, self.minute, tzinfo=self.zone)
        return due.timestamp()

    def describe(self) -> str:
        return f"{WEEKDAYS[self.weekday].capitalize()}s at {self.hour:02d}:{self.minute:02d} ({self.zone.key})"


def parse_schedule(text: str, zone: ZoneInfo) -> Schedule:
    """`mon 09:00` (day names in English, three letters or whole; 24-hour time)."""
    parts = text.strip().lower().split()
    if len(parts) != 2:
        raise ScheduleError(f"{text!r} is not '<day> <HH:MM>', e.g. 'mon 09:00'")
    day, clock = parts
    weekday = next((index for index, name in enumerate(WEEKDAYS) if day in (name, name[:3])), None)
    hour_text, _, minute_text = clock.partition(":")
    if (
        weekday is None
        or not (hour_text.isascii() and hour_text.isdigit() and minute_text.isascii() and minute_text.isdigit())
        or not (0 <= int(hour_text) < 24 and 0 <= int(minute_text) < 60)
    ):
        raise ScheduleError(f"{text!r} is not '<day> <HH:MM>', e.g. 'mon 09:00'")
    return Schedule(weekday, int(hour_text), int(minute_text), zone)

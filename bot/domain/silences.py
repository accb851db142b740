"""Silences: "don't post failures of this business, partner or cause until then" (pure, no I/O).

A silence matches a failure by one thing it names:

    Scope
    ├── BUSINESS  the failure's business id (as text: Partoo spells ids as numbers or hex strings)
    ├── PARTNER   its messaging partner, whatever the case Partoo wrote it in
    └── CAUSE     the kind of the latest verdict on its conversation (none yet: no match)

It is active from its creation until `until`, or until someone ends it early (`ended_at`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.businesses import business_key
from bot.domain.message import MessageUpdate
from bot.domain.verdict import Verdict, VerdictKind

# The durations the modal offers, in seconds, by the value of their option.
DURATIONS = {"1h": 3600.0, "4h": 4 * 3600.0, "1d": 24 * 3600.0}
# A note longer than this is cut: it is shown on alerts, App Home and the weekly report.
NOTE_CHARS = 200
# A chosen end further away than this is refused (a silence should never outlive the problem by months).
MAX_SILENCE_SECONDS = 30 * 24 * 3600.0


class Scope(StrEnum):
    BUSINESS = "business"
    PARTNER = "partner"
    CAUSE = "cause"


@dataclass(frozen=True)
class Silence:
    id: int
    scope: Scope
    value: str
    until: float
    created_by: str
    created_at: float
    note: str | None = None
    ended_at: float | None = None
    ended_by: str | None = None

    def active(self, now: float) -> bool:
        return self.ended_at is None and now < self.until

    @property
    def ends_at(self) -> float:
        """When it stopped (or will stop) holding failures back."""
        return self.ended_at if self.ended_at is not None else self.until


def scope_value(scope: Scope, failure: MessageUpdate, verdict: Verdict | None) -> str | None:
    """What a failure is, for a scope: its business key, partner or cause; None when unknown."""
    if scope is Scope.BUSINESS:
        return business_key(failure.business_id)
    if scope is Scope.PARTNER:
        partner = (failure.messaging_partner or "").strip().lower()
        return partner or None
    return verdict.kind.value if verdict is not None else None


def matching(
    silences: Iterable[Silence], failure: MessageUpdate, verdict: Verdict | None, now: float
) -> Silence | None:
    """The first active silence that matches the failure (the oldest: silences come ordered by id)."""
    for silence in silences:
        if silence.active(now) and scope_value(silence.scope, failure, verdict) == silence.value:
            return silence
    return None


def is_cause(value: str) -> bool:
    return value in {kind.value for kind in VerdictKind}


def clean_note(note: str | None) -> str | None:
    """A note on one line, cut to NOTE_CHARS; None when empty (escaping is the builders' job)."""
    if note is None:
        return None
    one_line = " ".join(note.split())
    return one_line[:NOTE_CHARS] or None

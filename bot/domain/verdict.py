"""Whether a retry can reach the customer, judged from Partoo's view of the conversation (pure, no I/O).

Partoo never says why a message failed, but `GET /conversations/{id}` tells whether anything can be sent
in the conversation at all. The verdict is a pure function of that snapshot:

    Verdict.kind
    ├── CAN_RETRY        conversation Open, no issues: a retry can work
    ├── CLOSED           Closed or expired: a retry cannot reach the customer (blocks the plain Retry)
    ├── SETUP_PROBLEM    the channel has setup issues: fix them in Partoo first (blocks the plain Retry)
    └── COULD_NOT_CHECK  the check failed (timeout, 5xx, 404, unreadable answer): the retry goes ahead

Sentences here are plain text; an unknown issue value is Partoo's raw string, so builders escape it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

OPEN = "Open"
CLOSED_STATUS = "Closed"
WHATSAPP = "whatsapp"


class VerdictKind(StrEnum):
    CAN_RETRY = "can_retry"
    CLOSED = "closed"
    SETUP_PROBLEM = "setup_problem"
    COULD_NOT_CHECK = "could_not_check"


# Partoo documents one value (`facebook_no_page_linked`) and warns that others appear without notice.
# Only values whose meaning is documented are translated; any other is shown as Partoo spells it.
KNOWN_ISSUES: dict[str, str] = {
    "facebook_no_page_linked": "Facebook page not linked: no Facebook page is connected to this business in Partoo",
}


@dataclass(frozen=True)
class ConversationSnapshot:
    """What the bot needs from Partoo's "Conversation information" answer."""

    conversation_id: int
    status: str | None
    is_expired: bool
    is_solved: bool
    messaging_partner: str | None
    business_id: str | None
    issues: tuple[str, ...] = ()
    # What Partoo calls the business (kept apart from verdicts, by bot.failures.businesses).
    business_name: str | None = None
    business_city: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The bot's judgement of one conversation, and when it was made."""

    kind: VerdictKind
    checked_at: float
    issues: tuple[str, ...] = ()
    expired: bool = False
    messaging_partner: str | None = None
    business_id: str | None = None
    # Why the check could not be made (COULD_NOT_CHECK only), in plain words.
    reason: str = ""

    @property
    def blocks_retry(self) -> bool:
        """Whether a plain Retry is withheld (a "Retry anyway" stays possible)."""
        return self.kind in (VerdictKind.CLOSED, VerdictKind.SETUP_PROBLEM)

    @property
    def is_whatsapp(self) -> bool:
        return (self.messaging_partner or "").strip().lower() == WHATSAPP

    @property
    def cause(self) -> str:
        """A short label that groups failures by cause in a digest (plain text; may hold a raw issue)."""
        if self.kind is VerdictKind.SETUP_PROBLEM:
            return ", ".join(issue_label(issue) for issue in self.issues)
        if self.kind is VerdictKind.CLOSED:
            return "conversation expired" if self.expired else "conversation closed"
        if self.kind is VerdictKind.COULD_NOT_CHECK:
            return "could not check"
        return "can be retried"

    @property
    def sentence(self) -> str:
        """What the check found, in plain words."""
        if self.kind is VerdictKind.CAN_RETRY:
            return "The conversation is open and its channel has no setup problem: a retry can work."
        if self.kind is VerdictKind.CLOSED:
            if self.is_whatsapp:
                return (
                    "The conversation is closed: the customer's 24-hour WhatsApp window has passed, "
                    "so a retry cannot reach the customer."
                )
            state = "expired" if self.expired else "closed"
            return f"The conversation is {state} in Partoo, so a retry cannot reach the customer."
        if self.kind is VerdictKind.SETUP_PROBLEM:
            noun = "a setup problem" if len(self.issues) == 1 else "setup problems"
            return f"The channel has {noun} in Partoo, so no message can be sent in this conversation."
        return f"The bot could not check the conversation ({self.reason or 'no answer'}); the retry is allowed."

    @property
    def next_step(self) -> str:
        """What the team can do instead of (or before) retrying."""
        if self.kind is VerdictKind.CLOSED:
            if self.is_whatsapp:
                return "The customer must write first, or send an approved WhatsApp template message from Partoo."
            return "Wait for the customer to write again, or reach them another way; Partoo cannot reopen it."
        if self.kind is VerdictKind.SETUP_PROBLEM:
            return "Fix the channel's setup in Partoo first, then retry."
        if self.kind is VerdictKind.COULD_NOT_CHECK:
            return "If the retry fails again, check the conversation in Partoo."
        return "Retry it."

    @property
    def summary(self) -> str:
        """One plain-text line: the cause and the next step (stored as a skipped request's detail)."""
        if self.kind is VerdictKind.SETUP_PROBLEM:
            return f"channel setup problem: {self.cause}. {self.next_step}"
        return f"{self.sentence} {self.next_step}"


def issue_label(issue: str) -> str:
    """A known issue in words, or the raw value as Partoo spelled it (callers escape it before mrkdwn)."""
    known = KNOWN_ISSUES.get(issue)
    return known.split(":", 1)[0] if known else issue


def issue_sentence(issue: str) -> str | None:
    """The sentence for a known issue value, or None for a value Partoo added without notice."""
    return KNOWN_ISSUES.get(issue)


def verdict_for(snapshot: ConversationSnapshot, checked_at: float) -> Verdict:
    """Judge a conversation: issues first (they block every conversation of the channel), then its status."""
    base = Verdict(
        VerdictKind.CAN_RETRY,
        checked_at=checked_at,
        expired=snapshot.is_expired,
        messaging_partner=snapshot.messaging_partner,
        business_id=snapshot.business_id,
    )
    if snapshot.issues:
        return replace(base, kind=VerdictKind.SETUP_PROBLEM, issues=snapshot.issues)
    if snapshot.is_expired or snapshot.status == CLOSED_STATUS:
        return replace(base, kind=VerdictKind.CLOSED)
    if snapshot.status == OPEN:
        return base
    # A status Partoo added without notice: the bot cannot tell, so it does not stand in the way.
    shown = (snapshot.status or "none")[:40]
    reason = f"Partoo gave an unknown conversation status: {shown}"
    return replace(base, kind=VerdictKind.COULD_NOT_CHECK, reason=reason)


def could_not_check(reason: str, checked_at: float) -> Verdict:
    return Verdict(VerdictKind.COULD_NOT_CHECK, checked_at=checked_at, reason=reason)


def verdict_to_json(verdict: Verdict) -> str:
    return json.dumps(asdict(verdict))


def verdict_from_json(text: str | None) -> Verdict | None:
    """A stored verdict, or None when there is none (or it cannot be read: the bot then checks again)."""
    if not text:
        return None
    try:
        values: dict[str, Any] = json.loads(text)
        return Verdict(
            kind=VerdictKind(values["kind"]),
            checked_at=float(values["checked_at"]),
            issues=tuple(str(issue) for issue in values.get("issues") or ()),
            expired=bool(values.get("expired")),
            messaging_partner=values.get("messaging_partner"),
            business_id=values.get("business_id"),
            reason=str(values.get("reason") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None

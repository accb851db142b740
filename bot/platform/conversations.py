"""Partoo's "Conversation information" answer: what a check of a conversation can end in.

A check is a read, so unlike a retry it is always safe to make again; its outcomes only say whether the
bot learned the conversation's state:

    ConversationAnswer.outcome
    ├── FOUND          200 with a readable body: `snapshot` holds the conversation
    ├── NOT_FOUND      404: no such conversation for this key
    ├── REFUSED        another 4xx (bad key, forbidden, …)
    ├── RATE_LIMITED   429: `retry_after` says how long every call must wait
    ├── UNAVAILABLE    5xx, a timeout or no connection
    └── UNREADABLE     2xx whose body is not the documented shape
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.domain.businesses import ID_CHARS, clean_name
from bot.domain.verdict import ConversationSnapshot

MAX_ISSUES = 20
MAX_ISSUE_CHARS = 100


class CheckOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ConversationAnswer:
    """One call to `GET /conversations/{id}`, as the bot understood it."""

    outcome: CheckOutcome
    snapshot: ConversationSnapshot | None = None
    http_status: int | None = None
    # Why the conversation could not be read, in plain words (empty when FOUND).
    reason: str = ""
    retry_after: float | None = None
    latency_ms: float = 0.0


def answer_for(status: int, body: bytes | None, conversation_id: int) -> ConversationAnswer:
    """Classify an HTTP answer of the conversation endpoint."""
    if status == 404:
        return _failed(CheckOutcome.NOT_FOUND, status, "Partoo knows no such conversation")
    if status == 429:
        return _failed(CheckOutcome.RATE_LIMITED, status, "Partoo rate limited the check")
    if status >= 500:
        return _failed(CheckOutcome.UNAVAILABLE, status, f"Partoo answered HTTP {status}")
    if status >= 300:
        return _failed(CheckOutcome.REFUSED, status, f"Partoo answered HTTP {status}")
    snapshot = parse_conversation(body, conversation_id)
    if snapshot is None:
        return ConversationAnswer(
            CheckOutcome.UNREADABLE, http_status=status, reason="Partoo's answer was not a conversation"
        )
    return ConversationAnswer(CheckOutcome.FOUND, snapshot=snapshot, http_status=status)


def _failed(outcome: CheckOutcome, status: int, reason: str) -> ConversationAnswer:
    return ConversationAnswer(outcome, http_status=status, reason=reason)


def parse_conversation(body: bytes | None, conversation_id: int) -> ConversationSnapshot | None:
    """The fields the verdict needs, or None when the body is not the documented object."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    status = data.get("status")
    issues = data.get("issues")
    if status is not None and not isinstance(status, str):
        return None
    if issues is None:
        issues = []
    if not isinstance(issues, list):
        return None
    business = data.get("business")
    if not isinstance(business, dict):
        business = {}
    partner = data.get("messaging_partner")
    return ConversationSnapshot(
        conversation_id=conversation_id,
        status=status,
        is_expired=data.get("is_expired") is True,
        is_solved=data.get("is_solved") is True,
        messaging_partner=partner[:40] if isinstance(partner, str) else None,
        # Partoo's reference shows business ids as strings here and as integers in webhooks.
        business_id=_text(business.get("id"), ID_CHARS),
        issues=tuple(_issues(issues)),
        business_name=clean_name(business.get("name")),
        business_city=clean_name(business.get("city")),
    )


def _issues(values: list[Any]) -> list[str]:
    issues: list[str] = []
    for value in values[:MAX_ISSUES]:
        text = _text(value, MAX_ISSUE_CHARS)
        if text and text not in issues:
            issues.append(text)
    return issues


def _text(value: object, limit: int) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = " ".join(str(value).split())
        return text[:limit] or None
    return None

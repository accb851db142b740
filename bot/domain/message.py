"""One Partoo message as its webhooks report it, and what makes it a failure the team must see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SUCCESS = "Success"

FAILED = "Failed"


SENT_BY_BUSINESS = "User"


@dataclass(frozen=True)
class MessageUpdate:
    """One Partoo message as a `message_created` / `message_updated` delivery describes it."""

    message_id: int
    conversation_id: int | None
    status: str
    is_deleted: bool
    sender_type: str
    sender_label: str | None
    content_type: str
    content: str | None
    date: datetime | None
    messaging_partner: str | None
    consumer_name: str | None
    business_id: int | None
    org_id: int | None


def is_failure_alert(update: MessageUpdate) -> bool:
    """Whether the update is a message the business sent that Partoo could not deliver."""
    return update.status == FAILED and update.sender_type == SENT_BY_BUSINESS and not update.is_deleted

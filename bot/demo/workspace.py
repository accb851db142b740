"""The demo's Slack workspace: a few people (one not allowed to retry) and the channels they use."""

from __future__ import annotations

from dataclasses import dataclass

TEAM_ID = "TDEMO"
TEAM_DOMAIN = "partoo-retry-demo"
APP_ID = "ADEMO"
BOT_USER_ID = "UBOT"
BOT_ID = "BDEMO"
BOT_NAME = "partoo-retry"
COMMAND = "/partoo-retry"  # as in app_manifest.yaml


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    handle: str
    title: str
    may_retry: bool


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    purpose: str


PEOPLE = (
    Person("UALICE", "Alice Martin", "alice", "Support lead", may_retry=True),
    Person("UBOB", "Bob Diallo", "bob", "Operations", may_retry=True),
    Person("UCAROL", "Carol Nguyen", "carol", "Intern, not allowed to retry", may_retry=False),
)

ALERT_CHANNEL = Channel("CALERTS", "partoo-alerts", "Failed Partoo messages, posted by partoo-retry")
OPS_CHANNEL = Channel("COPS", "ops", "Where the team works: try /partoo-retry here")
SUPPORT_CHANNEL = Channel("CSUPPORT", "support", "Customer support")
LOG_CHANNEL = Channel("CRETRYLOG", "partoo-retry-log", "Every retry outcome, in batches (SLACK_LOG_CHANNEL)")
CHANNELS = (ALERT_CHANNEL, OPS_CHANNEL, SUPPORT_CHANNEL, LOG_CHANNEL)

ALLOWED_USERS = frozenset(person.id for person in PEOPLE if person.may_retry)

# Someone outside the team, writing in #support (a channel shared with a customer): the message the shortcut is for.
CUSTOMER = Person("UCUSTOMER", "Dana Leroy", "dana", "Customer, in a shared channel", may_retry=False)
CUSTOMER_MESSAGE_ID = 48024
CUSTOMER_MESSAGE = (
    f"Hello, our client says message {CUSTOMER_MESSAGE_ID} never arrived on WhatsApp. Could you look into it?"
)

# The message shortcut, as in app_manifest.yaml: what Slack lists in a message's "More actions" (⋯) menu.
SHORTCUT_NAME = "Retry Partoo messages"
SHORTCUT_CALLBACK_ID = "partoo_retry.retry_from_message"


def person(user_id: str) -> Person | None:
    return next((p for p in PEOPLE if p.id == user_id), None)


def channel(channel_id: str) -> Channel | None:
    return next((c for c in CHANNELS if c.id == channel_id), None)

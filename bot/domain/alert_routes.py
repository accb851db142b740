"""Where a failure's alert goes: ALERT_ROUTES sends a business's or a messaging partner's failures to its own
Slack channel; everything else goes to SLACK_ALERT_CHANNEL. Pure: parsing and lookup, no I/O.

    ALERT_ROUTES=business:42=C0123ABCD,partner:whatsapp=C0456EFGH

A business's route wins over its partner's: the team that owns business 42 sees all of its failures, the
WhatsApp team sees the WhatsApp failures of every other business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

BUSINESS = "business"
PARTNER = "partner"
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_PARTNER_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
K = TypeVar("K", int, str)


@dataclass(frozen=True)
class AlertRoutes:
    """Channels by business id and by messaging partner (lower case), besides the default alert channel."""

    businesses: Mapping[int, str] = field(default_factory=dict)
    partners: Mapping[str, str] = field(default_factory=dict)

    def channel_for(self, business_id: int | None, partner: str | None, default: str | None) -> str | None:
        """The channel a failure of this business on this partner goes to (None: nowhere)."""
        if business_id is not None and business_id in self.businesses:
            return self.businesses[business_id]
        if partner and partner.lower() in self.partners:
            return self.partners[partner.lower()]
        return default

    @property
    def channels(self) -> frozenset[str]:
        """Every channel a route names (for `check`, which verifies the bot can post there)."""
        return frozenset(self.businesses.values()) | frozenset(self.partners.values())

    def __bool__(self) -> bool:
        return bool(self.businesses or self.partners)


def parse_routes(text: str, name: str = "ALERT_ROUTES") -> tuple[AlertRoutes, list[str]]:
    """Read `kind:key=CHANNEL` entries separated by commas; also return every problem found, one per entry."""
    businesses: dict[int, str] = {}
    partners: dict[str, str] = {}
    problems: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        problem = _add(entry, businesses, partners)
        if problem:
            problems.append(f"{name}: `{entry}` {problem}")
    return AlertRoutes(businesses=businesses, partners=partners), problems


def _add(entry: str, businesses: dict[int, str], partners: dict[str, str]) -> str | None:
    """Add one entry to the routes, or say what is wrong with it."""
    target, equals, channel = entry.partition("=")
    kind, colon, key = (part.strip() for part in target.partition(":"))
    channel = channel.strip()
    if not equals or not colon:
        return "is not of the form business:<id>=<channel ID> or partner:<name>=<channel ID>."
    if not _CHANNEL_ID.match(channel):
        return "must end with a channel ID such as C0123ABCD (not a #name)."
    if kind.lower() == BUSINESS:
        if not key.isascii() or not key.isdigit() or int(key) <= 0:
            return "must name a business by its Partoo id, a positive whole number."
        return _put(businesses, int(key), channel)
    if kind.lower() == PARTNER:
        if not _PARTNER_NAME.match(key.lower()):
            return "must name a messaging partner such as whatsapp, google, facebook, instagram or sms."
        return _put(partners, key.lower(), channel)
    return f"starts with `{kind}`: routes are for a business or a partner."


def _put(routes: dict[K, str], key: K, channel: str) -> str | None:
    existing = routes.get(key)
    if existing is not None and existing != channel:
        return f"routes it again, to another channel than {existing}."
    routes[key] = channel
    return None

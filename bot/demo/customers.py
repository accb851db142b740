"""The simulated Partoo's made-up world: businesses, customers, what they were sent, and how Partoo reports it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PARTNERS = ("Whatsapp", "Facebook", "Instagram", "Google", "SMS")
# What the simulated "Conversation information" calls each business (the alerts show "Le Bistrot · Paris").
BUSINESS_NAMES = {
    1042: ("Le Bistrot", "Paris"),
    1187: ("Boulangerie Saint-Michel", "Lyon"),
    2210: ("Garage du Port", "Marseille"),
    3305: ("Chez Léon & Fils", "Bordeaux"),  # shows that a business name is escaped too
    4471: ("Optique Lumière", "Lille"),
    5120: ("Salon Belle Époque", "Nantes"),
}
BUSINESSES = tuple(BUSINESS_NAMES)
CUSTOMERS = (
    "John Doe", "Camille Laurent", "Hugo Bernard", "Chloé Petit", "Lucas Moreau", "Inès Dubois", "Nathan Roux",
    "Léa Fournier", "Mohamed Haddad", "Emma Girard", "Jules Lambert", "Sofia Rossi", "Noah Fontaine",
)  # fmt: skip
AGENTS = ("Jane Doe", "Marc (front desk)", "Sarah, store manager", "Automated reminder")
CONTENTS = (
    "Your order #{n} is ready for pickup.",
    "Your appointment is confirmed for tomorrow at 10:00.",
    "Thanks for your review! Here is 10% off your next visit: WELCOME10",
    "We are open until 8 pm today.",
    "Your table for 4 is booked for Friday, 8 pm.",
    "Promo <b>-20%</b> & free delivery this weekend *only*",  # shows that outside text is escaped
    "Hello!\nYour repair is done, you can come and get it.\nSee you soon",
)


@dataclass
class SimulatedMessage:
    id: int
    conversation_id: int
    business_id: int
    partner: str
    consumer: str
    agent: str
    content_type: str
    content: str
    date: str
    status: str = "Failed"


def made_up_message(
    rng: random.Random, message_id: int, partner: str, business_id: int | None = None
) -> SimulatedMessage:
    """A failed message to a random customer of `business_id` (default: a random business); one in ten is an image."""
    content_type = "Image" if rng.random() < 0.1 else "Text"
    content = rng.choice(CONTENTS).format(n=rng.randint(1000, 9999)) if content_type == "Text" else ""
    return SimulatedMessage(
        id=message_id,
        conversation_id=rng.randint(9_000, 99_999),
        business_id=business_id if business_id is not None else rng.choice(BUSINESSES),
        partner=partner,
        consumer=rng.choice(CUSTOMERS),
        agent=rng.choice(AGENTS),
        content_type=content_type,
        content=content,
        date=datetime.now(UTC).isoformat(sep=" "),
    )


def message_updated(message: SimulatedMessage) -> dict[str, Any]:
    """A `message_updated` delivery, shaped like the example in Partoo's documentation."""
    return {
        "type": "message_updated",
        "payload": {
            "message": {
                "id": message.id,
                "conversation_id": message.conversation_id,
                "date": message.date,
                "content_type": message.content_type,
                "sender_type": "User",
                "sender_label": message.agent,
                "status": message.status,
                "is_deleted": False,
                "content": message.content or None,
                "user_id": "demo-user",
                "custom_channel": None,
            },
            "conversation": {
                "id": message.conversation_id,
                "consumer_img": None,
                "consumer_name": message.consumer,
                "business": {"id": message.business_id},
                "messaging_partner": message.partner,
                "custom_channel": None,
            },
            "org_id": 7,
        },
    }

"""A Partoo business as people know it: "Le Bistrot · Paris" rather than `1187` (pure, no I/O).

Partoo's webhooks give business ids as integers, its other endpoints as strings (24 hex digits in business
search): the bot keys businesses by the id's text, clipped like every id it keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Longest business id kept (as the conversation check's channel scope clips it).
ID_CHARS = 64
# Longest name and city kept: a label is shown in one line of an alert's field.
NAME_CHARS = 100
SEPARATOR = " · "
# Lone surrogates (JSON escapes allow them) and NUL: PostgreSQL's UTF-8 text and Slack refuse both.
_UNSENDABLE = re.compile("[\ud800-\udfff\x00]")


@dataclass(frozen=True)
class Business:
    """A business id and what Partoo last said it is called (None: never said, or not asked)."""

    id: str
    name: str | None = None
    city: str | None = None

    @property
    def named(self) -> bool:
        return bool(self.name)

    @property
    def label(self) -> str:
        return business_label(self.id, self.name, self.city)


def business_key(business_id: object) -> str | None:
    """The text a business id is stored and looked up under (an int from a webhook, a string from Partoo)."""
    if business_id is None or isinstance(business_id, bool):
        return None
    text = " ".join(str(business_id).split())[:ID_CHARS]
    return text or None


def clean_name(value: object) -> str | None:
    """A name or city as Partoo sent it, made storable: text only, on one line, clipped (None: not text)."""
    if not isinstance(value, str):
        return None
    text = " ".join(_UNSENDABLE.sub("\ufffd", value).split())[:NAME_CHARS]
    return text or None


def business_label(business_id: object, name: str | None, city: str | None) -> str:
    """ "Name · City", the name alone, or the id when Partoo gave no name (plain text: builders escape it)."""
    if not name or not name.strip():
        return str(business_id)
    if city and city.strip():
        return f"{name.strip()}{SEPARATOR}{city.strip()}"
    return name.strip()

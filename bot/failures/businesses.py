"""Businesses' names, for every feature that shows a business: alerts, digests, `status`, App Home, reports.

Names are learned by the conversation check (Partoo's "Conversation information" carries `business.name`
and `city`), which already runs for every new alert and before every retry: showing a name costs no call of
its own. With CONVERSATION_CHECK=false nothing asks Partoo, and a business is shown by its id unless an
earlier check (or another replica's) named it. Kept in the database, shared by replicas, overwritten by
every check so that a business renamed in Partoo is shown by its new name.

    names = BusinessNames(engine)
    await names.labels(["1187", "5f3a…"])   # {"1187": "Le Bistrot · Paris", "5f3a…": "5f3a…"}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.businesses import Business, business_key
from bot.failures.state import failure_from_json
from bot.platform.models import Alert, BusinessName

# Ids read in one query (a digest of hundreds of failures names a few businesses; this is only a bound).
LOOKUP_CHUNK = 500


class BusinessNames:
    """Reads and writes of what Partoo calls each business."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def remember(self, business_ids: Iterable[object], name: str | None, city: str | None) -> None:
        """Record a business's name under each spelling of its id (a webhook's `42`, Partoo's `"42"` or hex)."""
        now = self.clock()
        for key in dict.fromkeys(filter(None, map(business_key, business_ids))):
            async with self.engine.begin() as connection:
                changed = await connection.execute(
                    update(BusinessName).where(BusinessName.id == key).values(name=name, city=city, seen_at=now)
                )
                if changed.rowcount == 1:
                    continue
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(insert(BusinessName).values(id=key, name=name, city=city, seen_at=now))
            except IntegrityError:
                pass  # another replica recorded it at the same moment, from the same answer of Partoo

    async def lookup(self, business_ids: Iterable[object]) -> dict[str, Business]:
        """Every id asked, by its text: with the name and city when known (else `name` is None)."""
        keys = list(dict.fromkeys(filter(None, map(business_key, business_ids))))
        found: dict[str, Business] = {key: Business(key) for key in keys}
        async with self.engine.connect() as connection:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                rows = await connection.execute(
                    select(BusinessName.id, BusinessName.name, BusinessName.city).where(
                        BusinessName.id.in_(keys[start : start + LOOKUP_CHUNK])
                    )
                )
                for row in rows:
                    found[row.id] = Business(row.id, row.name, row.city)
        return found

    async def labels(self, business_ids: Iterable[object]) -> dict[str, str]:
        """ "Le Bistrot · Paris" for each id asked, or the id itself when the name is unknown (plain text)."""
        return {key: business.label for key, business in (await self.lookup(business_ids)).items()}

    async def of_messages(self, message_ids: Sequence[int]) -> dict[int, Business]:
        """The business of each message whose failure the bot was told of (by its alert); others are left out."""
        if not message_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Alert.message_id, Alert.failure).where(Alert.message_id.in_(list(message_ids)))
            )
            ids = {row.message_id: business_key(failure_from_json(row.failure).business_id) for row in rows}
        businesses = await self.lookup(ids.values())
        return {message_id: businesses[key] for message_id, key in ids.items() if key is not None}

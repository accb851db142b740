"""The one way alert rows change: bump their version so that the alerter re-renders their Slack message.

Kept apart from bot.alerts.store so that the retry queue can change alerts in its own transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.platform.models import Alert, Digest


async def bump_alerts(connection: AsyncConnection, message_ids: Sequence[int], **values: Any) -> None:
    """Change the alerts of these messages (if any) and mark them, and their digests, for re-rendering."""
    if not message_ids:
        return
    changed = await connection.execute(
        update(Alert).where(Alert.message_id.in_(list(message_ids))).values(version=Alert.version + 1, **values)
    )
    if changed.rowcount == 0:
        return  # most retries are of messages without an alert: spare the digest update
    digest_ids = select(Alert.digest_id).where(Alert.message_id.in_(list(message_ids)), Alert.digest_id.is_not(None))
    await connection.execute(update(Digest).where(Digest.id.in_(digest_ids)).values(version=Digest.version + 1))

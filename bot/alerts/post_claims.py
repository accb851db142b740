"""Claims on the Slack posts of alerts and digests: one replica posts each version, once.

A claim is a lease (`post_lease_until`) plus a fencing token (`post_claim`, one more per claim), taken and
written through bot.platform.leases. The alerter renews the lease while Slack answers, and every later write
about the post names the token: a replica whose claim was taken over can no longer mark the post done, failed
or released.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.platform.leases import Held, Leases
from bot.platform.models import Alert, Digest, core_table


class PostClaims:
    """Claiming, renewing and settling the posts of alerts and digests."""

    engine: AsyncEngine
    clock: Callable[[], float]

    async def claim_alert(self, alert_id: int, lease_seconds: float, *, unposted: bool) -> int | None:
        """Take the job of posting or updating this alert's message (one replica at a time).

        Returns the claim's fencing token, which every later write about this post must name; None when
        another replica holds the claim (or the alert was grouped into a digest meanwhile).
        """
        conditions = []
        if unposted:
            conditions.append(Alert.digest_id.is_(None))  # not grouped into a digest meanwhile
        return await self._claim(Alert, alert_id, conditions, lease_seconds)

    async def renew_alert_claim(self, alert_id: int, claim: int, lease_seconds: float) -> bool:
        """Extend the claim while its Slack call is in flight; False when it was lost (taken over)."""
        return await self._fenced(Alert, alert_id, claim, post_lease_until=self.clock() + lease_seconds)

    async def mark_alert_posted(self, alert_id: int, version: int, ts: str | None, claim: int) -> bool:
        values: dict[str, Any] = {"posted_version": version, "post_lease_until": None, "post_error": None}
        if ts is not None:
            values["ts"] = ts
        return await self._fenced(Alert, alert_id, claim, **values)

    async def mark_alert_unpostable(self, alert_id: int, version: int, claim: int, error: str) -> bool:
        """Slack refuses this alert for good: keep why (for `status`) and stop trying until it changes."""
        return await self._fenced(
            Alert, alert_id, claim, posted_version=version, post_lease_until=None, post_error=error[:64]
        )

    async def release_alert(self, alert_id: int, claim: int, *, retry_in: float = 0.0) -> None:
        """Give the post back, to be tried again (by any replica) after `retry_in` seconds."""
        await self._fenced(Alert, alert_id, claim, post_lease_until=self.clock() + retry_in if retry_in else None)

    def _now(self) -> float:
        # Read at each call: tests move a store's clock after its leases were made.
        return self.clock()

    @cached_property
    def _leases(self) -> dict[type[Alert] | type[Digest], Leases]:
        return {
            model: Leases(self.engine, core_table(model), until="post_lease_until", fence="post_claim", clock=self._now)
            for model in (Alert, Digest)
        }

    async def _claim(
        self, table: type[Alert] | type[Digest], row_id: int, conditions: list[Any], lease_seconds: float
    ) -> int | None:
        held = await self._leases[table].claim(row_id, lease_seconds, *conditions)
        return None if held is None else held.token

    async def _fenced(self, table: type[Alert] | type[Digest], row_id: int, claim: int, **values: Any) -> bool:
        """Write `values` only while `claim` is still the row's latest claim."""
        return await self._leases[table].write(Held(row_id, claim), values) == 1

    async def claim_digest(self, digest_id: int, lease_seconds: float) -> int | None:
        """Take the job of posting or updating this digest; its fencing token, or None."""
        return await self._claim(Digest, digest_id, [], lease_seconds)

    async def renew_digest_claim(self, digest_id: int, claim: int, lease_seconds: float) -> bool:
        return await self._fenced(Digest, digest_id, claim, post_lease_until=self.clock() + lease_seconds)

    async def mark_digest_posted(self, digest_id: int, version: int, ts: str | None, claim: int) -> bool:
        values: dict[str, Any] = {
            "posted_version": version,
            "post_lease_until": None,
            "posted_at": self.clock(),
            "post_error": None,
        }
        if ts is not None:
            values["ts"] = ts
        return await self._fenced(Digest, digest_id, claim, **values)

    async def mark_digest_unpostable(self, digest_id: int, version: int, claim: int, error: str) -> bool:
        return await self._fenced(
            Digest, digest_id, claim, posted_version=version, post_lease_until=None, post_error=error[:64]
        )

    async def release_digest(self, digest_id: int, claim: int, *, retry_in: float = 0.0) -> None:
        await self._fenced(Digest, digest_id, claim, post_lease_until=self.clock() + retry_in if retry_in else None)

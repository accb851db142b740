"""The alerter: turns stored Partoo webhook events into Slack alerts, and keeps those alerts current.

Floods: a lone failure is posted at once; when failures pile up faster than the channel's pace of one
post per second, the waiting ones are grouped into a digest, which later failures join for a while.
So a bad minute at Partoo costs the channel a handful of messages, not hundreds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.alerts import digest_messages
from bot.alerts import messages as alert_messages
from bot.alerts.store import AlertStore, AlertView, DigestView
from bot.defaults import ALERT_CLAIM_SECONDS, DIGEST_REFRESH, DIGEST_THRESHOLD, DIGEST_WINDOW, POLL_INTERVAL
from bot.metrics import AlertKind
from bot.platform.loop import PollingLoop
from bot.platform.pace import SharedPace
from bot.platform.slack import SlackPoster, SlackPostError, SlackUnavailable

log = logging.getLogger(__name__)


class Alerter(PollingLoop):
    """Processes webhook events, posts alerts and digests, and re-renders them when their state changes."""

    name = "alerter"

    def __init__(
        self,
        store: AlertStore,
        poster: SlackPoster,
        channel_pace: SharedPace,
        *,
        alert_channel: str | None,
        poll_interval: float = POLL_INTERVAL,
        digest_threshold: int = DIGEST_THRESHOLD,
        digest_window: float = DIGEST_WINDOW,
        on_posted: Callable[[AlertKind], None] = lambda kind: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(poll_interval)
        self.store = store
        self.poster = poster
        self.channel_pace = channel_pace
        self.alert_channel = alert_channel
        self.digest_threshold = digest_threshold
        self.digest_window = digest_window
        self.on_posted = on_posted
        self.clock = clock

    async def tick(self) -> bool:
        for stored in await self.store.claim_events(ALERT_CLAIM_SECONDS):
            await self.store.apply(stored, self.alert_channel)
        if self.alert_channel:
            await self._post_new_alerts(self.alert_channel)
        for digest in await self.store.stale_digests():
            await self._render_digest(digest)
        for alert in await self.store.stale_alerts():
            await self._render_alert(alert)
        return False

    async def _post_new_alerts(self, channel: str) -> None:
        waiting = await self.store.new_alerts()
        if not waiting:
            return
        digest = await self.store.open_digest(channel, self.digest_window)
        if digest is not None or len(waiting) >= self.digest_threshold:
            grouped = await self.store.group([alert.id for alert in waiting], channel, digest.id if digest else None)
            if grouped is not None:
                log.info("grouped %d failures into digest %s", len(waiting), grouped)
            return
        for alert in waiting:
            await self._render_alert(alert)
            if self._stopping:
                return

    async def _render_alert(self, alert: AlertView) -> None:
        if not await self.store.claim_alert(alert, ALERT_CLAIM_SECONDS):
            return
        message = alert_messages.alert_message(alert.state)
        try:
            if alert.ts is None:
                # One post a second per channel, shared by every replica (Slack's chat.postMessage limit).
                await self.channel_pace.wait_for_slot()
                ts = await self.poster.post(alert.channel_id, message)
                self.on_posted("alert")
                log.info("alert posted for Partoo message %s", alert.message_id)
            else:
                ts = None
                await self.poster.update(alert.channel_id, alert.ts, message)
                self.on_posted("update")
        except SlackUnavailable as error:
            log.warning("alert for Partoo message %s not posted yet (%s); will retry", alert.message_id, error.error)
            await self.store.release_alert(alert.id)
            await self._back_off(error)
            return
        except SlackPostError as error:
            log.error("alert for Partoo message %s cannot be posted: %s", alert.message_id, error.error)
            await self.store.mark_alert_posted(alert.id, alert.version, None)
            return
        await self.store.mark_alert_posted(alert.id, alert.version, ts)

    async def _render_digest(self, digest: DigestView) -> None:
        if digest.ts is not None and digest.posted_at and self.clock() - digest.posted_at < DIGEST_REFRESH:
            return
        if not await self.store.claim_digest(digest.id, ALERT_CLAIM_SECONDS):
            return
        message = digest_messages.digest_message(await self.store.digest_state(digest))
        try:
            if digest.ts is None:
                await self.channel_pace.wait_for_slot()
                ts = await self.poster.post(digest.channel_id, message)
                self.on_posted("digest")
            else:
                ts = None
                await self.poster.update(digest.channel_id, digest.ts, message)
                self.on_posted("update")
        except SlackUnavailable as error:
            log.warning("digest %s not posted yet (%s); will retry", digest.id, error.error)
            await self.store.release_digest(digest.id)
            await self._back_off(error)
            return
        except SlackPostError as error:
            log.error("digest %s cannot be posted: %s", digest.id, error.error)
            await self.store.mark_digest_posted(digest.id, digest.version, None)
            return
        await self.store.mark_digest_posted(digest.id, digest.version, ts)

    async def _back_off(self, error: SlackUnavailable) -> None:
        """After slack_sdk's own retries gave up, pause this channel's posts for every replica."""
        await self.channel_pace.pause(5.0)

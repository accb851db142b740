"""The alerter: turns stored Partoo webhook events into Slack alerts, and keeps those alerts current.

Floods: a lone failure is posted at once; when failures pile up faster than the channel's pace of one
post per second, the waiting ones are grouped into a digest, which later failures join for a while.
So a bad minute at Partoo costs the channel a handful of messages, not hundreds.

Slack's failures are handled by kind (bot.platform.slack): a transient one or a refused token keeps the
post and tries again later; a permanent one (a channel that does not exist, blocks Slack refuses) is
recorded on the alert or digest, logged, and shown by `status`, and tried again only once the alert
changes. A post is claimed, and the claim renewed while Slack answers, so two replicas never post the
same alert.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from bot.alerts import digest_messages
from bot.alerts import messages as alert_messages
from bot.alerts.event_apply import StoredEvent
from bot.alerts.store import AlertStore
from bot.defaults import (
    ALERT_CHECK_MAX_AGE,
    ALERT_CHECK_WAIT,
    ALERT_CLAIM_SECONDS,
    DIGEST_REFRESH,
    DIGEST_THRESHOLD,
    DIGEST_WINDOW,
    POLL_INTERVAL,
)
from bot.domain.alert_routes import AlertRoutes
from bot.domain.businesses import Business, business_key
from bot.domain.silences import Silence, matching
from bot.failures.businesses import BusinessNames
from bot.failures.silences import SilenceStore
from bot.failures.store import AlertView, DigestView
from bot.platform.leases import ClaimLost, while_claimed
from bot.platform.loop import PollingLoop
from bot.platform.metrics import AlertKind
from bot.platform.slack import SlackPermanent, SlackPoster, SlackPostError

log = logging.getLogger(__name__)


class Alerter(PollingLoop):
    """Processes webhook events, posts alerts and digests, and re-renders them when their state changes."""

    name = "alerter"

    def __init__(
        self,
        store: AlertStore,
        poster: SlackPoster,
        *,
        alert_channel: str | None,
        routes: AlertRoutes | None = None,
        poll_interval: float = POLL_INTERVAL,
        digest_threshold: int = DIGEST_THRESHOLD,
        digest_window: float = DIGEST_WINDOW,
        on_posted: Callable[[AlertKind], None] = lambda kind: None,
        claim_seconds: float = ALERT_CLAIM_SECONDS,
        checks_enabled: bool = False,
        not_confirmed_minutes: int | None = None,
        names: BusinessNames | None = None,
        silences: SilenceStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(poll_interval)
        self.store = store
        self.poster = poster
        self.alert_channel = alert_channel
        self.routes = routes or AlertRoutes()
        self.digest_threshold = digest_threshold
        self.digest_window = digest_window
        self.on_posted = on_posted
        self.claim_seconds = claim_seconds
        self.checks_enabled = checks_enabled
        self.not_confirmed_minutes = not_confirmed_minutes
        # Businesses are shown by name where a conversation check learned it (bot.failures.businesses).
        self.names = names
        # Failures that match an active silence are held back, then summed up when it ends.
        self.silences = silences
        self.clock = clock

    async def tick(self) -> bool:
        await self.store.apply_claimed(await self.store.claim_events(self.claim_seconds), self._destination)
        # Before new alerts: a failure arriving as its silence ends then joins the summary, not a post of its own.
        await self._sum_up_ended_silences()
        await self._post_new_alerts()
        for digest in await self.store.stale_digests():
            await self._render_digest(digest)
        for alert in await self.store.stale_alerts():
            await self._render_alert(alert)
        return False

    def _destination(self, stored: StoredEvent) -> str | None:
        """The channel a new alert about this event goes to: its route, or the alert channel."""
        message = stored.event.message
        if message is None:
            return self.alert_channel
        return self.routes.channel_for(message.business_id, message.messaging_partner, self.alert_channel)

    async def _post_new_alerts(self) -> None:
        """Each destination channel floods on its own: its digest groups only its own failures."""
        by_channel: dict[str, list[AlertView]] = {}
        silences = await self.silences.active() if self.silences else []
        # Read after the active ones: a silence that ended since this round summed up the ended ones is in
        # one list or the other, never in neither.
        unsummed = {silence.id for silence in await self.silences.due_summaries()} if self.silences else set()
        for alert in await self.store.new_alerts():
            if self._awaits_summary(alert, unsummed):
                continue
            if silences and await self._held(alert, silences):
                continue
            by_channel.setdefault(alert.channel_id, []).append(alert)
        # Concurrently: a channel waiting for its next slot does not hold up the others.
        await asyncio.gather(*(self._post_new_alerts_in(channel, waiting) for channel, waiting in by_channel.items()))

    async def _post_new_alerts_in(self, channel: str, waiting: list[AlertView]) -> None:
        digest = await self.store.open_digest(channel, self.digest_window)
        if digest is not None or len(waiting) >= self.digest_threshold:
            grouped = await self.store.group([alert.id for alert in waiting], channel, digest.id if digest else None)
            if grouped is not None:
                log.info("grouped %d failures into digest %s", len(waiting), grouped)
            return
        for alert in waiting:
            if self._awaits_check(alert):
                continue
            await self._render_alert(alert)
            if self._stopping:
                return

    @staticmethod
    def _awaits_summary(alert: AlertView, unsummed: set[int]) -> bool:
        """Whether this alert was held by a silence that has ended and is not summed up yet.

        It changed since it was held (a conversation check's answer, say), so it counts as new again; posted
        now, it would be missing from the summary the next round makes. It waits for that summary instead,
        unless someone asked to retry it (that is always shown, as in `_held`).
        """
        return alert.silence_id in unsummed and alert.state.retries == 0

    async def _held(self, alert: AlertView, silences: list[Silence]) -> bool:
        """Whether a silence holds this alert back (and it was recorded so).

        Never once someone asked a retry for it (`retries`): the outcome of a retry a person asked for is
        always shown, silence or not.
        """
        if alert.state.retries > 0:
            return False
        silence = matching(silences, alert.state.failure, alert.state.verdict, self.clock())
        if silence is None:
            return False
        if await self.store.hold(alert, silence.id):
            log.info("alert for Partoo message %s held back by silence %s", alert.message_id, silence.id)
        return True

    async def _sum_up_ended_silences(self) -> None:
        if self.silences is None:
            return
        for silence in await self.silences.due_summaries():
            digests = await self.silences.summarize(silence)
            if digests:
                log.info("silence %s ended: its held failures are summed up in digest(s) %s", silence.id, digests)

    def _check_expected(self, alert: AlertView) -> bool:
        """Whether the diagnosis loop will check this alert (checks on, none yet, recent enough)."""
        if not self.checks_enabled or alert.state.verdict is not None:
            return False
        return self.clock() - alert.state.failed_at < ALERT_CHECK_MAX_AGE

    def _awaits_check(self, alert: AlertView) -> bool:
        """Hold a new alert back briefly while its conversation is checked, so its first post says what is known.

        Past ALERT_CHECK_WAIT (Partoo slow, or busy with retries that come first) it is posted as "checking".
        """
        if not self.checks_enabled or alert.state.verdict is not None:
            return False
        return self.clock() - alert.state.failed_at < ALERT_CHECK_WAIT

    async def _render_alert(self, alert: AlertView) -> None:
        claim = await self.store.claim_alert(alert.id, self.claim_seconds, unposted=alert.ts is None)
        if claim is None:
            return
        # What the rows cannot know: whether a check is on its way, and the "not confirmed" delay to quote.
        state = replace(
            alert.state,
            check_pending=self._check_expected(alert),
            not_confirmed_minutes=self.not_confirmed_minutes,
        )
        businesses = await self._businesses([state.failure.business_id])
        # "Silenced by … until …" on the alert a silence was started from, while it lasts.
        silenced = await self.silences.started_from(alert.message_id) if self.silences else []
        business = businesses.get(business_key(state.failure.business_id) or "")
        message = alert_messages.alert_message(state, business, silenced)
        what = f"alert for Partoo message {alert.message_id}"

        async def renew() -> bool:
            return await self.store.renew_alert_claim(alert.id, claim, self.claim_seconds)

        async def post() -> str | None:
            if alert.ts is not None:
                await self.poster.update(alert.channel_id, alert.ts, message)
                return None
            # The poster takes the channel's slot first: one post a second per channel, shared by every replica.
            return await self.poster.post(alert.channel_id, message)

        try:
            give_back = functools.partial(self.store.release_alert, alert.id, claim)
            ts = await while_claimed(post(), renew, self.claim_seconds / 3, give_back=give_back)
        except ClaimLost:
            log.warning("%s: another replica took the post over", what)
            return
        except SlackPermanent as error:
            log.error("%s cannot be posted in %s: %s", what, alert.channel_id, error.error)
            await self.store.mark_alert_unpostable(alert.id, alert.version, claim, error.error)
            return
        except SlackPostError as error:
            log.warning("%s not posted yet (%s); will retry", what, error.error)
            await self.store.release_alert(alert.id, claim, retry_in=self.poster.pause_seconds)
            return
        if await self.store.mark_alert_posted(alert.id, alert.version, ts, claim):
            self.on_posted("alert" if ts else "update")
            if ts:
                log.info("alert posted for Partoo message %s", alert.message_id)

    async def _render_digest(self, digest: DigestView) -> None:
        if digest.ts is not None and digest.posted_at and self.clock() - digest.posted_at < DIGEST_REFRESH:
            return
        claim = await self.store.claim_digest(digest.id, self.claim_seconds)
        if claim is None:
            return
        state = await self.store.digest_state(digest)
        businesses = await self._businesses([failure.business_id for failure in state.failures])
        message = digest_messages.digest_message(state, businesses)

        async def renew() -> bool:
            return await self.store.renew_digest_claim(digest.id, claim, self.claim_seconds)

        async def post() -> str | None:
            if digest.ts is not None:
                await self.poster.update(digest.channel_id, digest.ts, message)
                return None
            return await self.poster.post(digest.channel_id, message)

        try:
            give_back = functools.partial(self.store.release_digest, digest.id, claim)
            ts = await while_claimed(post(), renew, self.claim_seconds / 3, give_back=give_back)
        except ClaimLost:
            log.warning("digest %s: another replica took the post over", digest.id)
            return
        except SlackPermanent as error:
            log.error("digest %s cannot be posted in %s: %s", digest.id, digest.channel_id, error.error)
            await self.store.mark_digest_unpostable(digest.id, digest.version, claim, error.error)
            return
        except SlackPostError as error:
            log.warning("digest %s not posted yet (%s); will retry", digest.id, error.error)
            await self.store.release_digest(digest.id, claim, retry_in=self.poster.pause_seconds)
            return
        if await self.store.mark_digest_posted(digest.id, digest.version, ts, claim):
            self.on_posted("digest" if ts else "update")

    async def _businesses(self, business_ids: list[int | None]) -> dict[str, Business]:
        return await self.names.lookup(business_ids) if self.names else {}

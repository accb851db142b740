"""The diagnosis loop: checks the conversations of new alerts, and marks accepted retries "not confirmed".

Both jobs work from what is stored, claim before acting (so replicas never do them twice) and give way to
retries: alert checks only use pace slots no retry is waiting for (bot.failures.diagnosis).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.defaults import (
    ALERT_CHECK_MAX_AGE,
    ALERT_CLAIM_SECONDS,
    BACKGROUND_SLOT_WAIT,
    CHECKS_PER_ROUND,
    POLL_INTERVAL,
)
from bot.failures import verdict_messages
from bot.failures.diagnosis import ConversationChecker
from bot.failures.diagnosis_store import DiagnosisStore
from bot.platform.loop import PollingLoop
from bot.platform.slack import SlackPoster, SlackPostError

log = logging.getLogger(__name__)

# "Not confirmed" is about minutes: looking for overdue retries every few seconds is plenty.
NOT_CONFIRMED_SCAN_SECONDS = 5.0
CACHE_PRUNE_SECONDS = 3600.0
# Alert checks of one round made at once (each still waits for an idle slot of the shared pace).
CHECK_CONCURRENCY = 4


class DiagnosisLoop(PollingLoop):
    name = "diagnosis"

    def __init__(
        self,
        store: DiagnosisStore,
        checker: ConversationChecker | None,
        poster: SlackPoster,
        *,
        not_confirmed_minutes: int,
        not_confirmed_seconds: float | None = None,
        poll_interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.time,
        slot_wait: float = BACKGROUND_SLOT_WAIT,
    ) -> None:
        super().__init__(poll_interval)
        self.store = store
        self.checker = checker
        self.poster = poster
        self.not_confirmed_minutes = not_confirmed_minutes
        # Tests shorten the wait without changing what the message says.
        self.not_confirmed_seconds = (
            not_confirmed_minutes * 60.0 if not_confirmed_seconds is None else not_confirmed_seconds
        )
        self.clock = clock
        self.slot_wait = slot_wait
        self._last_scan = 0.0
        self._last_prune = 0.0

    async def tick(self) -> bool:
        more = False
        # The scan first: it must never wait behind checks, which may wait for pace slots (bounded).
        now = self.clock()
        if now - self._last_scan >= min(NOT_CONFIRMED_SCAN_SECONDS, self.poll_interval * 10):
            self._last_scan = now
            await self.mark_not_confirmed()
        # Taking in a flood of webhooks comes first (on SQLite they share one connection with the checks).
        if self.checker is not None and not await self.store.intake_busy():
            alerts = await self.store.claim_unchecked_alerts(CHECKS_PER_ROUND, ALERT_CLAIM_SECONDS, ALERT_CHECK_MAX_AGE)
            if alerts:
                await self.checker.check_alerts(
                    alerts, CHECK_CONCURRENCY, slot_wait=self.slot_wait, claim_seconds=ALERT_CLAIM_SECONDS
                )
                more = len(alerts) == CHECKS_PER_ROUND
        if self.checker is not None and now - self._last_prune >= CACHE_PRUNE_SECONDS:
            self._last_prune = now
            await self.store.forget_old()
        return more

    async def mark_not_confirmed(self) -> None:
        """Accepted retries with no Success nor Failed in time: say so on the alert (re-rendered) and thread."""
        cutoff = self.clock() - self.not_confirmed_seconds
        # One reply per thread: a "Retry all" of hundreds gets one line, not hundreds of posts.
        threads: dict[tuple[str, str], list[int]] = {}
        for item in await self.store.mark_not_confirmed(cutoff):
            log.info("retry of Partoo message %s not confirmed in time", item.message_id)
            if item.root_channel and item.root_ts:
                threads.setdefault((item.root_channel, item.root_ts), []).append(item.message_id)
        for (channel, ts), message_ids in threads.items():
            reply = verdict_messages.not_confirmed_reply(message_ids, self.not_confirmed_minutes)
            try:
                await self.poster.post(channel, reply, thread_ts=ts)
            except SlackPostError as error:
                # The alerts still say it (they are re-rendered from the database); only the thread misses it.
                log.warning("could not say in thread %s that %s are not confirmed: %s", ts, message_ids, error.error)

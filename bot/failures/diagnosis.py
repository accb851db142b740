"""Checking a conversation before a retry: is it open, and is its channel set up? (README: "Why a retry would fail")

One budget: every check takes a slot of the same shared pace as the retries (so checks can never push
the bot into Partoo's 429). Two priorities on that budget:
- a check *before a retry* is part of that retry: it takes the next slot like the retry itself;
- a check *of a new alert* (so the alert can say at once what it knows) only takes a slot nobody else
  is waiting for (SharedPace.reserve_if_idle), so a flood of checks never delays a queued retry. It waits
  for one only until a deadline: with no idle slot (a retry backlog, a 429 pause of up to 600 s) the round
  gives its alerts back rather than hold up the diagnosis loop, whose not-confirmed scan runs after it.

Cheap in a flood: verdicts are cached in the database for CONVERSATION_CHECK_CACHE_SECONDS (shared by
replicas), setup problems also under the business's channel (they concern every conversation of that
channel), and concurrent checks of one conversation in one process share a single call.

Each answer also names the conversation's business: the name and city are kept (bot.failures.businesses),
so alerts and the rest show "Le Bistrot · Paris" without a call of their own.

A check that fails (timeout, 5xx, 404, an unreadable answer) never blocks a retry: it is "could not check".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from enum import Enum

from bot.domain.retry_requests import RequestView
from bot.domain.verdict import ConversationSnapshot, Verdict, VerdictKind, could_not_check, verdict_for
from bot.failures.businesses import BusinessNames
from bot.failures.diagnosis_store import (
    AlertToCheck,
    ConversationRef,
    DiagnosisStore,
    channel_scope,
    conversation_scope,
    same_finding,
)
from bot.platform.conversations import CheckOutcome
from bot.platform.leases import ClaimLost, while_claimed
from bot.platform.pace import SharedPace
from bot.platform.partoo import PartooClient

log = logging.getLogger(__name__)

# Verdicts this process keeps in memory besides the database cache (cleared when full).
RECENT_VERDICTS = 10_000
NO_CONVERSATION = "Partoo's report of the failure names no conversation"


class NoIdleSlot(Exception):
    """A background check found no idle pace slot before its deadline; it made no call."""


class Priority(Enum):
    RETRY = "retry"  # the check stands in front of a retry someone asked for
    BACKGROUND = "background"  # a new alert's check: only slots that retries leave free


class ConversationChecker:
    """Finds the verdict on a conversation: from the cache, or by asking Partoo within the shared pace."""

    def __init__(
        self,
        store: DiagnosisStore,
        partoo: PartooClient,
        pace: SharedPace,
        *,
        cache_seconds: float,
        poll_interval: float,
        on_checked: Callable[[str], None] = lambda verdict: None,
        names: BusinessNames | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.partoo = partoo
        self.pace = pace
        self.cache_seconds = cache_seconds
        self.poll_interval = poll_interval
        self.on_checked = on_checked
        self.names = names
        self.clock = clock
        # Partoo calls this process made for checks (the bench reports what the checks cost).
        self.calls = 0
        # One background check at a time waits for an idle slot: the others wait here, not in the database.
        self._idle_turn = asyncio.Lock()
        self._in_flight: dict[tuple[int, Priority], asyncio.Task[Verdict]] = {}
        self._recent: dict[str, Verdict] = {}
        self._probes: dict[tuple[str | None, Priority], asyncio.Task[Verdict]] = {}

    async def before_retry(self, request: RequestView) -> Verdict | None:
        """The verdict that keeps this retry from being sent, or None to send it.

        Re-run for every request (a cached verdict counts only if made after the request was asked for),
        so a problem fixed in Partoo unlocks the retry. "Retry anyway" and messages the bot never saw in a
        webhook (it does not know their conversation) are sent as they are.
        """
        if request.retry_anyway:
            return None
        context = await self.store.retry_context(request.message_id)
        if context.ref is None:
            return None
        verdict = await self.verdict(context.ref, fresh_since=request.requested_at, priority=Priority.RETRY)
        # A Retry all re-checks hundreds of messages: only a verdict that says something new is written.
        if context.has_alert and not same_finding(verdict, context.alert_verdict):
            await self.store.set_alert_verdict(request.message_id, verdict)
        return verdict if verdict.blocks_retry else None

    async def check_alert(self, alert: AlertToCheck, *, slot_deadline: float | None = None) -> Verdict:
        """Check a new alert's conversation and store the verdict on it (the alert is re-rendered)."""
        if alert.ref is None:
            verdict = could_not_check(NO_CONVERSATION, self.clock())
        else:
            verdict = await self.verdict(
                alert.ref, fresh_since=0.0, priority=Priority.BACKGROUND, slot_deadline=slot_deadline
            )
        await self.store.set_alert_verdict(alert.message_id, verdict)
        return verdict

    async def verdict(
        self, ref: ConversationRef, *, fresh_since: float, priority: Priority, slot_deadline: float | None = None
    ) -> Verdict:
        since = max(fresh_since, self.clock() - self.cache_seconds)
        cached = await self._cached(ref, since)
        if cached is not None:
            return cached
        # The first check in a channel is a probe the others wait for: if the channel has a setup problem,
        # its verdict is cached for the whole channel and a flood from one business costs one call.
        channel = (ref.channel_scope, priority)
        probe = self._probes.get(channel) if ref.channel_scope else None
        if probe is not None:
            await asyncio.wait([probe])
            cached = await self._cached(ref, since)
            if cached is not None:
                return cached
        # Keyed by priority too: a retry must never wait behind a background check that waits for idle slots.
        key = (ref.conversation_id, priority)
        running = self._in_flight.get(key)
        if running is None:
            running = asyncio.create_task(self._check(ref, priority, slot_deadline))
            self._in_flight[key] = running
            running.add_done_callback(lambda _task: self._in_flight.pop(key, None))
            if ref.channel_scope and probe is None and channel not in self._probes:
                self._probes[channel] = running
                running.add_done_callback(lambda _task: self._probes.pop(channel, None))
        # Shielded: one caller cancelled (a retry given back on shutdown) must not cancel the others' check.
        return await asyncio.shield(running)

    async def _cached(self, ref: ConversationRef, since: float) -> Verdict | None:
        """A fresh enough verdict: this process's own memory first (a Retry all asks hundreds of times)."""
        remembered = [self._recent[scope] for scope in ref.scopes if scope in self._recent]
        fresh = [verdict for verdict in remembered if verdict.checked_at >= since]
        if fresh:
            return max(fresh, key=lambda verdict: verdict.checked_at)
        cached = await self.store.cached(ref.scopes, since)
        if cached is not None:
            self._remember_here(ref.scopes[:1], cached)
        return cached

    def _remember_here(self, scopes: list[str], verdict: Verdict) -> None:
        if len(self._recent) >= RECENT_VERDICTS:
            self._recent.clear()  # a crude bound: the database cache still answers
        for scope in scopes:
            self._recent[scope] = verdict

    async def _check(self, ref: ConversationRef, priority: Priority, slot_deadline: float | None) -> Verdict:
        if priority is Priority.RETRY:
            await self.pace.wait_for_slot()
        else:
            async with self._idle_turn:
                await self._idle_slot(slot_deadline)
        answer = await self.partoo.get_conversation(ref.conversation_id)
        self.calls += 1
        if answer.outcome is CheckOutcome.RATE_LIMITED:
            await self.pace.pause(answer.retry_after or 1.0)
        now = self.clock()
        if answer.outcome is CheckOutcome.FOUND and answer.snapshot is not None:
            verdict = verdict_for(answer.snapshot, now)
            # Before the verdict is stored: storing it re-renders the alert, which should show the name.
            await self._remember_business(ref, answer.snapshot)
        else:
            verdict = could_not_check(answer.reason, now)
        self.on_checked(verdict.kind.value)
        scopes = _scopes_for(ref, verdict)
        await self.store.remember(scopes, verdict)
        self._remember_here(scopes, verdict)
        log.info("conversation %s checked: %s", ref.conversation_id, verdict.kind.value)
        return verdict

    async def _remember_business(self, ref: ConversationRef, snapshot: ConversationSnapshot) -> None:
        if self.names is None:
            return
        # Under the webhook's spelling of the id (alerts look it up with it) and under Partoo's, which
        # its other endpoints use (a 24-hex string where webhooks show an integer).
        await self.names.remember(
            [ref.business_id, snapshot.business_id], snapshot.business_name, snapshot.business_city
        )

    async def _idle_slot(self, deadline: float | None) -> None:
        """Take an idle slot (see SharedPace.reserve_if_idle), or raise NoIdleSlot past `deadline`.

        Nothing is held while waiting: the slot is reserved only in the UPDATE that finds it free.
        """
        while not await self.pace.reserve_if_idle():
            if deadline is not None and self.clock() >= deadline:
                raise NoIdleSlot
            await self.pace.sleep(self.poll_interval)

    async def check_alerts(
        self, alerts: Iterable[AlertToCheck], concurrency: int, *, slot_wait: float, claim_seconds: float
    ) -> None:
        """Check many alerts, `concurrency` at a time (channels' probes keep a flood to one call per channel).

        Checks that find no idle slot within `slot_wait` (of the round's start) give their alerts back for a
        later round; a check that runs keeps its claim renewed, so no other replica checks the same alert.
        """
        deadline = self.clock() + slot_wait
        # Those the cache answers (most of a flood) are written in one transaction, the others as they come.
        known: list[tuple[int, Verdict]] = []
        unknown: list[AlertToCheck] = []
        for alert in alerts:
            if alert.ref is None:
                known.append((alert.message_id, could_not_check(NO_CONVERSATION, self.clock())))
            elif cached := await self._cached(alert.ref, self.clock() - self.cache_seconds):
                known.append((alert.message_id, cached))
            else:
                unknown.append(alert)
        await self.store.set_new_alert_verdicts(known)
        limit = asyncio.Semaphore(concurrency)

        async def one(alert: AlertToCheck) -> None:
            async with limit:
                try:
                    await self._check_claimed(alert, deadline, claim_seconds)
                except NoIdleSlot:
                    if alert.held is not None:
                        await self.store.checks.release(alert.held)
                except ClaimLost:
                    log.info("check of Partoo message %s: another replica took it over", alert.message_id)
                except Exception:
                    log.exception("check of the conversation of Partoo message %s failed", alert.message_id)

        await asyncio.gather(*(one(alert) for alert in unknown))

    async def _check_claimed(self, alert: AlertToCheck, deadline: float, claim_seconds: float) -> None:
        work = self.check_alert(alert, slot_deadline=deadline)
        if alert.held is None:
            await work
            return
        renew = self.store.checks.renewer(alert.held, claim_seconds)
        await while_claimed(work, renew, claim_seconds / 3)


def _scopes_for(ref: ConversationRef, verdict: Verdict) -> list[str]:
    """Where to cache a verdict: its conversation, and its channel too when the channel is what is wrong."""
    scopes = [conversation_scope(ref.conversation_id)]
    if verdict.kind is VerdictKind.SETUP_PROBLEM:
        # The webhook's spelling first: lookups are made with it (Partoo's reference shows other id formats).
        channel = channel_scope(
            ref.business_id or verdict.business_id, ref.messaging_partner or verdict.messaging_partner
        )
        if channel:
            scopes.append(channel)
    return scopes
